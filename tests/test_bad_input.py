"""Every command-line tool through its bad inputs, as a user runs it (`python -m ...`).

Each case must exit with status 2 and print exactly one `error:` line that names the
file or field, no traceback, and leave every file that existed before as it was.
"""

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import ifirnn_jax as ifr
from data_pipeline import image_io
from data_pipeline.video import FrameSink
from ifirnn_jax.storage import checkpoint
from tiny_models import tiny_params

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # about 25 processes, each starting Python and JAX
TINY = dict(cells=1, iterations=1, n1=4, n2=4, n3=4, nh=4, num_resblocks=1)
# A folder the process cannot create anything in, even as root (sysfs).
UNWRITABLE = Path("/sys/ifirnn_jax_test/out")


def _frames(count, height=40, width=56, seed=0):
  rng = np.random.default_rng(seed)
  return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def _png16(path, height=4, width=5):
  raw = b"".join(b"\0" + np.full(width * 3, 300, ">u2").tobytes() for _ in range(height))

  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
  header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
                   chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  """Inputs of every kind, good and bad, under one folder."""
  root = tmp_path_factory.mktemp("bad_input")
  model = ifr.IFIRNN(**TINY)
  params = tiny_params(model)
  weights = ifr.save_weights(params, root / "tiny.safetensors", model=model)
  state = load_file(weights)
  save_file(dict(state, **{"cells.x.weight": np.zeros(2, np.float32)}),
            root / "bad_name.safetensors")
  save_file(state, root / "bad_meta.safetensors", metadata={"model": "[1, 2]"})
  (root / "p").mkdir()
  with FrameSink(root / "p" / "video.mp4", fps=10) as sink:
    for frame in _frames(4):
      sink.write(frame)
  (root / "p" / "notes.txt").write_text("the user's notes")
  with FrameSink(root / "long.mkv", fps=10) as sink:
    for frame in _frames(20):
      sink.write(frame)
  data = (root / "long.mkv").read_bytes()
  (root / "cut.mkv").write_bytes(data[:len(data) // 2])
  (root / "frames16").mkdir()
  _png16(root / "frames16" / "000000.png")
  (root / "kept").mkdir()  # an output folder with more than frames
  (root / "kept" / "000000.png").write_bytes(b"not ours")
  (root / "kept" / "thesis.pdf").write_bytes(b"irreplaceable")
  for split, count, length in (("train", 2, 8), ("test", 1, 3)):  # test: shorter than 4+1
    for s in range(count):
      for folder in ("blur", "blur_gamma", "sharp"):
        (root / "gopro" / split / f"seq{s}" / folder).mkdir(parents=True)
        for t, frame in enumerate(_frames(length, seed=s)):
          image_io.write_image(root / "gopro" / split / f"seq{s}" / folder / f"{t:06d}.png",
                               frame)
  for s, name in enumerate(("a", "b")):  # synthesize's source frames
    (root / "X" / name).mkdir(parents=True)
    for t, frame in enumerate(_frames(3, seed=s)):
      image_io.write_image(root / "X" / name / f"{t:06d}.png", frame)
  runs = checkpoint.RunCheckpoints(root / "run", keep=3)  # a run of another model
  runs.save(2, params, {"step": jnp.int32(2)}, model)
  runs.wait()
  runs.close()
  (root / "run" / "config.json").write_text('{"the": "run config"}')
  shutil.copytree(root / "run", root / "damaged")
  for f in (root / "damaged" / "checkpoints" / "2" / "params").rglob("*"):
    if f.is_file() and f.parent.name == "d" and "ocdbt.process_0" in str(f):
      with open(f, "r+b") as handle:
        handle.truncate(5)
  (root / "afile").write_text("a file, not a folder")
  (root / "notes.safetensors.txt").write_text("not weights")
  return root


def _train(tree, *extra):
  return ["ifirnn_jax.train", "--config", "configs/demo.py:tiny",
          f"--config.data.root={tree / 'gopro'}", "--config.data.make_default_if_missing=False",
          *extra]


# (module and arguments, what the error line must name); {t} is the tree's folder.
CASES = {
    "deblur_output_holds_input": (
        ["ifirnn_jax.deblur", "--input", "{t}/p/video.mp4", "--output", "{t}/p",
         "--weights", "{t}/tiny.safetensors", "--overwrite"], "holds the input"),
    "deblur_output_is_cwd_above_input": (
        ["ifirnn_jax.deblur", "--input", "{t}/p/video.mp4", "--output", "{t}",
         "--weights", "{t}/tiny.safetensors", "--overwrite"], "holds the input"),
    "deblur_overwrite_foreign_folder": (
        ["ifirnn_jax.deblur", "--input", "{t}/p/video.mp4", "--output", "{t}/kept",
         "--weights", "{t}/tiny.safetensors", "--overwrite"], "thesis.pdf would be lost"),
    "deblur_damaged_workdir": (
        ["ifirnn_jax.deblur", "--input", "{t}/p/video.mp4", "--output", "{t}/o.mp4",
         "--workdir", "{t}/damaged"], "damaged/checkpoints/2"),
    "deblur_bad_tensor_name": (
        ["ifirnn_jax.deblur", "--input", "{t}/p/video.mp4", "--output", "{t}/o.mp4",
         "--weights", "{t}/bad_name.safetensors"], "bad_name.safetensors"),
    "deblur_bad_metadata": (
        ["ifirnn_jax.deblur", "--input", "{t}/p/video.mp4", "--output", "{t}/o.mp4",
         "--weights", "{t}/bad_meta.safetensors"], "bad_meta.safetensors: metadata 'model'"),
    "deblur_16_bit_png": (
        ["ifirnn_jax.deblur", "--input", "{t}/frames16", "--output", "{t}/o.mp4",
         "--weights", "{t}/tiny.safetensors"], "000000.png: image is 16-bit"),
    "deblur_truncated_mkv": (
        ["ifirnn_jax.deblur", "--input", "{t}/cut.mkv", "--output", "{t}/o.mp4",
         "--weights", "{t}/tiny.safetensors"], "cut.mkv: video file is truncated"),
    "synthesize_out_is_frames": (
        ["data_pipeline.synthesize", "--frames", "{t}/X", "--average", "3", "--out", "{t}/X",
         "--overwrite"], "holds the input"),
    "synthesize_unwritable_out": (
        ["data_pipeline.synthesize", "--frames", "{t}/X", "--average", "3",
         "--out", str(UNWRITABLE)], str(UNWRITABLE.parent)),
    "export_damaged": (
        ["ifirnn_jax.export", "--workdir", "{t}/damaged", "--out", "{t}/w.safetensors"],
        "damaged/checkpoints/2"),
    "export_overwrite_other_file": (
        ["ifirnn_jax.export", "--workdir", "{t}/run", "--out", "{t}/notes.safetensors.txt",
         "--overwrite"], "notes.safetensors.txt"),
    "export_out_is_workdir": (
        ["ifirnn_jax.export", "--workdir", "{t}/run", "--out", "{t}/run", "--overwrite"],
        "is the input"),
    "evaluate_all_sequences_too_short": (
        ["ifirnn_jax.evaluate", "--weights", "{t}/tiny.safetensors", "--data", "{t}/gopro",
         "--out", "{t}/eval_out"], "no frame was scored"),
    "evaluate_save_frames_over_data": (
        ["ifirnn_jax.evaluate", "--weights", "{t}/tiny.safetensors", "--data", "{t}/gopro",
         "--save-frames", "{t}/gopro", "--out", "{t}/eval_out"], "--save-frames"),
    "evaluate_damaged": (
        ["ifirnn_jax.evaluate", "--workdir", "{t}/damaged", "--data", "{t}/gopro"],
        "damaged/checkpoints/2"),
    "train_unknown_field": (
        ["ifirnn_jax.train", "--config", "configs/demo.py:tiny", "--config.nope=1"],
        "--config.nope"),
    "train_missing_config": (
        ["ifirnn_jax.train", "--config", "configs/no_such.py", "--workdir", "{t}/w"],
        "configs/no_such.py"),
    "train_workdir_is_a_file": (
        ["ifirnn_jax.train", "--config", "configs/demo.py:tiny", "--workdir", "{t}/afile"],
        "afile"),
    "train_resume_another_model": ("TRAIN", "another model"),
    "train_unwritable_demo_data_root": (
        ["ifirnn_jax.train", "--config", "configs/demo.py:tiny",
         f"--config.data.root={UNWRITABLE.parent / 'data'}", "--workdir", "{t}/w"],
        str(UNWRITABLE.parent)),
    "default_data_unwritable": (
        ["data_pipeline.default_data", "--out", str(UNWRITABLE)], str(UNWRITABLE.parent)),
    "pipeline_benchmark_missing_root": (
        ["data_pipeline.pipeline_benchmark", "--root", "{t}/nowhere", "--layout", "gopro"],
        "nowhere"),
    "benchmark_bad_widths": (
        ["ifirnn_jax.benchmark", "--widths", "1,2", "--out", "{t}/bench.json"], "--widths"),
}


def _snapshot(root):
  return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_error_line_and_loses_nothing(tree, case):
  args, named = CASES[case]
  if args == "TRAIN":
    # The config check passed on purpose: the checkpoint itself is another model's.
    args = _train(tree, "--workdir", str(tree / "run"), "--allow_config_change")
  args = [a.replace("{t}", str(tree)) for a in args]
  before = _snapshot(tree)
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT),
             TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
  err = result.stderr
  assert result.returncode == 2, (result.returncode, err[-3000:])
  assert "Traceback" not in err, err[-3000:]
  errors = [line for line in err.splitlines() if "error:" in line]
  assert len(errors) == 1, err[-3000:]
  assert named in errors[0], errors[0]
  after = _snapshot(tree)
  changed = sorted(k for k in before if after.get(k) != before[k])
  assert not changed, f"lost or changed: {changed}"
