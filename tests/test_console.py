"""What a user reads on the console: no false warnings, no misleading messages."""

import subprocess
import sys
from pathlib import Path

import pytest

from ifirnn_jax import deblur
from ifirnn_jax.benchmark import cli as benchmark_cli

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_help_shows_no_none_default_and_no_double_default():
  text = " ".join(benchmark_cli.build_parser().format_help().split())
  assert "(default: None)" not in text
  assert "(default: benchmark.json)" in text  # a real default is still shown
  assert "(default: 15,150,1500)" in text
  # Help that states its defaults itself gets no second "(default: ...)".
  models_help = text.split("--models MODELS")[2].split(" --")[0]
  assert "inference default" in models_help and "(default:" not in models_help


def _deblur_args(*extra):
  return deblur.build_parser().parse_args(
      ["--input", "in.mp4", "--output", "/nonexistent/out.mp4", "--weights", "w", *extra])


def test_a_small_tile_size_alone_is_accepted_with_a_fitting_overlap():
  args = _deblur_args("--tile-size", "8")
  deblur._check_args(args)  # the default overlap (32) does not fit: shrunk, not refused
  assert args.tile_overlap == 4


def test_tile_size_errors_name_the_tile_size():
  with pytest.raises(ValueError, match="--tile-size must be >= 8, got 4"):
    deblur._check_args(_deblur_args("--tile-size", "4"))
  with pytest.raises(ValueError, match="--tile-overlap 40 does not fit --tile-size 64"):
    deblur._check_args(_deblur_args("--tile-size", "64", "--tile-overlap", "40"))


def test_starting_ffmpeg_from_a_jax_process_prints_no_fork_warning(tmp_path):
  script = ("import jax.numpy as jnp; jnp.ones(3).block_until_ready()\n"
            "import numpy as np\n"
            "from data_pipeline.video import FrameSink, probe_frames\n"
            f"with FrameSink({str(tmp_path / 'v.mp4')!r}, fps=5) as sink:\n"
            "  for _ in range(3): sink.write(np.zeros((16, 16, 3), np.uint8))\n"
            f"print(probe_frames({str(tmp_path / 'v.mp4')!r})[0])\n")
  result = subprocess.run([sys.executable, "-W", "default", "-c", script], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
                               "PATH": "/usr/bin:/bin"})
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "3"
  assert "os.fork" not in result.stderr, result.stderr


def test_loading_a_checkpoint_logs_no_read_only_warning(tmp_path, caplog):
  import logging

  import jax.numpy as jnp

  import ifirnn_jax as ifr
  from ifirnn_jax.storage import checkpoint
  from tests.tiny_models import tiny_params
  model = ifr.IFIRNN(cells=1, iterations=1, n1=4, n2=4, n3=4, nh=4, num_resblocks=1)
  run = checkpoint.RunCheckpoints(tmp_path / "run", keep=1)
  run.save(1, tiny_params(model), {"step": jnp.asarray(1)}, model)
  run.wait()
  run.close()
  with caplog.at_level(logging.WARNING):
    loaded, _ = ifr.load_checkpoint(tmp_path / "run")
  assert loaded == model
  assert not [r for r in caplog.records if "read only" in r.getMessage()], caplog.text
  # The filter is scoped to the load: the absl logger keeps no filter of ours.
  assert not logging.getLogger("absl").filters


def test_before_after_is_large_and_labelled(tmp_path):
  import imageio.v3 as iio
  import numpy as np

  from ifirnn_jax.evaluation import captions, reports
  rng = np.random.default_rng(0)
  sharp = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
  example = dict(sharp=sharp, output=np.clip(sharp.astype(int) + 3, 0, 255).astype(np.uint8),
                 blurry=np.roll(sharp, 2, axis=1))
  image = iio.imread(reports.write_before_after(example, tmp_path / "before_after.png"))
  scale = -(-captions.MIN_PANEL_HEIGHT // 40)  # 7: 280 px panels
  strip = image.shape[0] - 40 * scale
  assert strip >= 16 and image.shape[1] == 3 * 56 * scale + 2 * 8
  # Panels enlarged by pixel repetition: the top-left block is one sharp pixel's colour.
  first = image[strip:strip + scale, :scale]
  np.testing.assert_array_equal(first, np.broadcast_to(example["blurry"][0, 0], first.shape))
  for k in range(3):  # a label (dark text) above every panel
    left = k * (56 * scale + 8)
    assert image[:strip, left:left + 56 * scale].min() < 100
  # The labels differ: blurry and output carry their PSNRs, sharp only its name.
  texts = [image[:strip, k * (56 * scale + 8):][:, :56 * scale] for k in range(3)]
  assert (texts[0] < 128).sum() > 2 * (texts[2] < 128).sum()
