"""The Colab notebooks: committed without outputs, and run top to bottom at TINY size.

Each notebook is executed with nbclient after a cell setting its parameters (TINY = True,
output folders in tmp_path) is inserted below its "parameters" cell, the papermill
convention. The checks are on what the notebooks wrote and showed: videos with the input's
frame count, the PSNR table, the sweep's figures, the paper's number beside ours.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAMES = ("quickstart", "reproduce_gopro")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _read(name: str) -> nbformat.NotebookNode:
  return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def _parameters_index(nb: nbformat.NotebookNode) -> int:
  tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
  assert len(tagged) == 1, f"expected one cell tagged 'parameters', found {len(tagged)}"
  return tagged[0]


# ------------------------------------------------------------------ committed notebooks
@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs(name):
  nb = _read(name)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert all(c.outputs == [] and c.execution_count is None for c in code), (
      f"{name}.ipynb holds outputs: clear them (python notebooks/make_notebooks.py)")
  index = _parameters_index(nb)
  assert nb.cells[index] is code[0], "the parameters cell must be the first code cell"
  assert re.search(r"^TINY = False\b", nb.cells[index].source, re.M)
  assert nb.metadata.kernelspec.name == "python3"


def test_notebooks_match_their_generator(tmp_path):
  spec = importlib.util.spec_from_file_location("make_notebooks",
                                                NOTEBOOKS / "make_notebooks.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  for path in module.write_notebooks(tmp_path):
    committed = (NOTEBOOKS / path.name).read_text()
    assert path.read_text() == committed, (
        f"notebooks/{path.name} differs from make_notebooks.py's: run it and commit both")


# ------------------------------------------------------------------ running them
@pytest.fixture
def python3_kernel(tmp_path, monkeypatch):
  """Kernel 'python3' = this interpreter (the venv's), whatever `python` is on PATH."""
  from ipykernel.kernelspec import write_kernel_spec
  write_kernel_spec(tmp_path / "jupyter" / "kernels" / "python3")
  monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
  return "python3"


def _execute(name: str, kernel: str, **parameters) -> nbformat.NotebookNode:
  """Runs the notebook (cwd: notebooks/) with `parameters` set; returns it with outputs."""
  nb = _read(name)
  cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in parameters.items()))
  cell.metadata["tags"] = ["injected-parameters"]
  nb.cells.insert(_parameters_index(nb) + 1, cell)
  NotebookClient(nb, timeout=600, kernel_name=kernel,
                 resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
  return nb


def _text(nb: nbformat.NotebookNode) -> str:
  """Everything the cells printed or displayed as text."""
  parts = []
  for cell in nb.cells:
    for out in cell.get("outputs", []):
      if out.output_type == "stream":
        parts.append(out.text)
      elif out.output_type in ("display_data", "execute_result"):
        parts.append(out.data.get("text/markdown", out.data.get("text/plain", "")))
      elif out.output_type == "error":
        parts.append("\n".join(out.traceback))
  return "\n".join(parts)


def _images(nb: nbformat.NotebookNode) -> int:
  return sum("image/png" in out.get("data", {}) for cell in nb.cells
             for out in cell.get("outputs", []))


def _video(path: Path) -> tuple[int, int, int]:
  """(frames counted by decoding, height, width) of a video file."""
  from data_pipeline.video import open_frames
  with open_frames(path) as source:
    return sum(1 for _ in source), source.height, source.width


@pytest.mark.slow
def test_quickstart_runs(tmp_path, python3_kernel):
  from data_pipeline.video import FrameSink
  from skimage import data
  photo = data.astronaut()
  mine = tmp_path / "mine.mp4"  # the "own video" of the upload cell: 5 frames, 64x48
  with FrameSink(mine, fps=10) as sink:
    for t in range(5):
      sink.write(np.ascontiguousarray(photo[100 + 3 * t:148 + 3 * t, 150:214]))
  root = tmp_path / "out"

  nb = _execute("quickstart", python3_kernel, TINY=True, OUTPUT_ROOT=str(root),
                MY_VIDEO=str(mine), MAX_FRAMES=4)

  text = _text(nb)
  outputs = root / "outputs" / "quickstart_tiny"
  workdir = root / "workdirs" / "demo_tiny"
  data = root / "data" / "default_tiny"
  # The embedded data's test sequence, as a video, deblurred with --compare.
  (blurry,) = outputs.glob("*_blurry.mp4")
  sequence = blurry.name.removesuffix("_blurry.mp4")
  num_frames = len(list((data / "test" / sequence / "blur_gamma").glob("*.png")))
  frames, height, width = _video(blurry)
  assert frames == num_frames > 0
  assert _video(outputs / f"{sequence}_compare.mp4") == (frames, height, 2 * width)
  # The user's video: the first MAX_FRAMES frames, input | output.
  assert _video(outputs / "mine_compare.mp4") == (4, 48, 128)
  # The run's PSNR table, the curve's data and the exported weights.
  with open(workdir / "eval" / "results.csv") as f:
    rows = {r["sequence"]: r for r in csv.DictReader(f)}
  assert "ALL" in rows and float(rows["ALL"]["psnr"]) > 0
  assert "PSNR (dB)" in text and "| ALL |" in text
  assert list(workdir.glob("events.out.tfevents.*"))
  assert (outputs / "demo.safetensors").stat().st_size > 0
  assert re.search(rf"{sequence}, all {num_frames} frames: PSNR blurry [\d.]+ dB -> model "
                   r"[\d.]+ dB", text)
  # Dataset example, training curve, before/after, two deblurred frames.
  assert _images(nb) >= 5
  assert "step skipped" not in text
  assert not (REPO / "outputs" / "quickstart_tiny").exists()


@pytest.mark.slow
def test_reproduce_gopro_runs(tmp_path, python3_kernel):
  root = tmp_path / "out"

  nb = _execute("reproduce_gopro", python3_kernel, TINY=True, OUTPUT_ROOT=str(root),
                GOPRO_ROOT=str(tmp_path / "no_gopro_here"))

  text = _text(nb)
  workdir = root / "workdirs" / "gopro_c2h3_tiny"
  # The paper's protocol on the 8-frame toy sequence: frames 4..6 are scored.
  ours = json.loads((workdir / "eval_paper_protocol" / "results.json").read_text())
  assert ours["model"] == "C2H3" and ours["frames"] == 3
  assert "| paper (Table 1) | 29.80 | 0.8900 |" in text
  assert f"ours {ours['psnr']:.2f} dB / {ours['ssim']:.4f} vs paper 29.80 dB / 0.8900" in text
  # The sweep: N = 1..3 (the model's N, TINY), Fig. 4 and Fig. 5 written and shown.
  sweep = json.loads((workdir / "sweep" / "sweep.json").read_text())
  assert [s["setting"] for s in sweep["settings"]] == ["N=1", "N=2", "N=3"]
  for name in ("fig4_best_iterations.png", "fig5_psnr_time.png"):
    assert (workdir / "sweep" / name).read_bytes()[:8] == PNG_MAGIC
  assert _images(nb) >= 2
  assert (workdir / "C2H3.safetensors").stat().st_size > 0
