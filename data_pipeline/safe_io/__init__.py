"""Files written safely, for both packages: atomic writes and renames, natural order and
progress lines (`files`), and what `--overwrite` may replace (`outputs`).

Imports nothing of the project but `data_pipeline.errors`.
"""
