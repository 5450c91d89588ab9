"""Console text shared by the command-line tools: counted nouns and the `--help` layout."""

from __future__ import annotations

import argparse


def plural(count: int, noun: str, many: str | None = None) -> str:
  """'1 sequence', '2 sequences' (`many`: the plural when it is not noun + 's')."""
  return f"{count} {noun if count == 1 else many or noun + 's'}"


class HelpFormatter(argparse.RawDescriptionHelpFormatter,
                    argparse.ArgumentDefaultsHelpFormatter):
  """The description as written (its own line breaks); each option's help ends with
  "(default: X)", unless the help states its default itself, the option is required or
  a plain switch (off unless given), or X is None (the help then says what happens)."""

  def _get_help_string(self, action: argparse.Action) -> str:
    text = action.help or ""
    switch = action.nargs == 0 and action.default is False
    if action.default is None or action.required or switch or "default" in text:
      return text
    return super()._get_help_string(action)
