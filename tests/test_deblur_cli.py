"""The deblur command line, in-process, with a tiny model on a real (downscaled) clip."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

import ifirnn_jax as ifr
import real_clip
from data_pipeline.video import FrameSink, open_frames
from ifirnn_jax.evaluation import metrics
from ifirnn_jax.deblur import main
from tiny_models import tiny_params

NUM_FRAMES = 12
HEIGHT, WIDTH = 96, 160  # the frames the model sees: real ones, subsampled


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """A tiny model's weight file, a 12-frame 96x160 mp4 of the real clip, its frames."""
  root = tmp_path_factory.mktemp("deblur")
  model = ifr.IFIRNN(cells=2, iterations=2, n1=4, n2=6, n3=8, nh=4, num_resblocks=1)
  params = tiny_params(model)
  weights = ifr.save_weights(params, root / "tiny.safetensors", model=model)
  clip = root / "clip.mp4"
  with FrameSink(clip, fps=real_clip.facts().fps) as sink:
    for frame in real_clip.small_frames(NUM_FRAMES, HEIGHT, WIDTH):
      sink.write(frame)
  frames = np.stack(list(open_frames(clip)))  # what the CLI decodes
  return dict(root=root, model=model, params=params, weights=weights, clip=clip,
              frames=frames)


def _run(capsys, *args):
  status = main([str(a) for a in args])
  return status, capsys.readouterr().err


def _reference(setup, frames=None):
  frames = setup["frames"] if frames is None else frames
  out = setup["model"].deblur(setup["params"], frames.astype(np.float32) / 255)
  return np.asarray(metrics.quantize(out)).astype(np.uint8)


def test_video_to_video_keeps_count_size_fps(setup, capsys):
  out = setup["root"] / "out.mp4"
  status, err = _run(capsys, "--input", setup["clip"], "--output", out,
                     "--weights", setup["weights"])
  assert status == 0, err
  assert f"{NUM_FRAMES}/{NUM_FRAMES} frames" in err and "ETA" in err
  result = open_frames(out)
  assert (result.num_frames, result.height, result.width, result.fps) == (
      NUM_FRAMES, HEIGHT, WIDTH, real_clip.facts().fps)


def test_streaming_output_equals_whole_clip_deblur(setup, capsys):
  out = setup["root"] / "frames_out"
  status, err = _run(capsys, "--input", setup["clip"], "--output", out,
                     "--weights", setup["weights"])
  assert status == 0, err
  got = np.stack(list(open_frames(out)))
  want = _reference(setup)
  assert got.shape == want.shape == (NUM_FRAMES, HEIGHT, WIDTH, 3)
  assert np.abs(got.astype(int) - want).max() <= 1
  assert np.mean(got != want) < 1e-3
  assert np.abs(want.astype(int) - setup["frames"]).mean() > 1  # the model changed them


def test_compare_max_frames_and_iterations(setup, capsys):
  out = setup["root"] / "compare"
  status, err = _run(capsys, "--input", setup["clip"], "--output", out, "--weights",
                     setup["weights"], "--compare", "--max-frames", 5, "--iterations", 3)
  assert status == 0, err
  got = np.stack(list(open_frames(out)))
  assert got.shape == (5, HEIGHT, 2 * WIDTH, 3)
  # Each half is labelled in a dark box at its top-left; below it, the input as it was.
  np.testing.assert_array_equal(got[:, 24:, :WIDTH], setup["frames"][:5, 24:])
  assert got[:, :4, :4].max() < 30 and got[:, :4, WIDTH:WIDTH + 4].max() < 30
  want = setup["model"].deblur(setup["params"], setup["frames"][:5] / 255.0, iterations=3)
  want = np.asarray(metrics.quantize(want)).astype(np.uint8)
  assert np.abs(got[:, 24:, WIDTH:].astype(int) - want[:, 24:]).max() <= 1


def test_tiles_from_a_folder(setup, capsys):
  folder = setup["root"] / "in_frames"
  with FrameSink(folder) as sink:
    for frame in setup["frames"][:4]:
      sink.write(frame)
  out = setup["root"] / "tiled.mp4"
  status, err = _run(capsys, "--input", folder, "--output", out, "--weights",
                     setup["weights"], "--tile-size", 64, "--tile-overlap", 16)
  assert status == 0, err
  assert "6 tiles of 64x64" in err  # 2 rows x 3 columns cover 96x160
  result = open_frames(out)
  assert (result.num_frames, result.height, result.width) == (4, HEIGHT, WIDTH)
  assert result.fps == 30.0  # frames from a folder have none: the default
  decoded = np.stack(list(result)).astype(float)
  assert np.abs(decoded - _reference(setup, setup["frames"][:4])).mean() < 3  # H.264 + tiles


def test_existing_output_is_refused_and_kept(setup, capsys):
  out = setup["root"] / "exists.mp4"
  out.write_bytes(b"precious")
  status, err = _run(capsys, "--input", setup["clip"], "--output", out,
                     "--weights", setup["weights"])
  assert status == 2
  assert err.startswith("error: ") and "already exists" in err and str(out) in err
  assert out.read_bytes() == b"precious"
  status, err = _run(capsys, "--input", setup["clip"], "--output", out, "--weights",
                     setup["weights"], "--overwrite", "--max-frames", 2)
  assert status == 0, err
  assert open_frames(out).num_frames == 2


def test_bad_inputs_exit_2_with_one_message(setup, capsys):
  root, clip, weights = setup["root"], setup["clip"], setup["weights"]
  garbage = root / "garbage.mp4"
  garbage.write_bytes(b"\x00not a video" * 300)
  other = root / "other_model.safetensors"
  save_file({"encoder.weight": np.zeros((3, 3), np.float32)}, other)
  blocker = root / "blocker"
  blocker.write_text("a file")
  empty_run = root / "empty_run"
  empty_run.mkdir()
  cases = [
      (["--input", root / "missing.mp4", "--output", root / "bad1.mp4", "--weights", weights],
       f"{root / 'missing.mp4'}: no such"),
      (["--input", garbage, "--output", root / "bad2.mp4", "--weights", weights],
       f"{garbage}: cannot be read as a video"),
      (["--input", clip, "--output", root / "bad3.mp4", "--weights", root / "none.safetensors"],
       "weight file not found"),
      (["--input", clip, "--output", root / "bad4.mp4", "--weights", other],
       "not an IFI-RNN weight file"),
      (["--input", clip, "--output", blocker / "bad5.mp4", "--weights", weights],
       f"{blocker / 'bad5.mp4'}: cannot be created: {blocker} is a file, not a folder"),
      (["--input", clip, "--output", root / "bad6.mp4", "--weights", weights, "--iterations", 0],
       "--iterations must be an integer in 1..64, got 0"),
      (["--input", clip, "--output", root / "bad7.mp4", "--weights", weights,
        "--tile-size", 64, "--tile-overlap", 40], "tile overlap"),
      (["--input", clip, "--output", root / "bad8.mp4", "--workdir", root / "no_run"],
       f"{root / 'no_run'}: no such work directory"),
      (["--input", clip, "--output", root / "bad9.mp4", "--workdir", empty_run],
       f"{empty_run}: no periodic checkpoints"),
  ]
  for args, message in cases:
    status, err = _run(capsys, *args)
    assert status == 2, (args, err)
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], (args, err)
    assert "Traceback" not in err
  # Nothing was written for any of them.
  assert not any("bad" in p.name for p in root.iterdir())


def test_usage_errors_exit_2(setup, capsys):
  status, err = _run(capsys, "--input", setup["clip"], "--output", "x.mp4")
  assert status == 2 and "one of the arguments --weights --workdir is required" in err


def test_workdir_checkpoint_gives_same_output_as_weights(setup, capsys):
  from ifirnn_jax.storage.checkpoint import RunCheckpoints
  workdir = setup["root"] / "run"
  checkpoints = RunCheckpoints(workdir, keep=2)
  checkpoints.save(7, setup["params"], {"step": jnp.asarray(7)}, setup["model"])
  checkpoints.wait()
  checkpoints.close()
  outs = []
  for name, source in (("from_run", ["--workdir", workdir, "--step", 7]),
                       ("from_weights", ["--weights", setup["weights"]])):
    out = setup["root"] / name
    status, err = _run(capsys, "--input", setup["clip"], "--output", out, "--max-frames", 3,
                       *source)
    assert status == 0, err
    outs.append(np.stack(list(open_frames(out))))
  np.testing.assert_array_equal(outs[0], outs[1])
  status, err = _run(capsys, "--input", setup["clip"], "--output", setup["root"] / "bad_step",
                     "--workdir", workdir, "--step", 8)
  assert status == 2 and "no checkpoint at step 8" in err


def test_a_diverging_model_stops_with_a_message_and_writes_nothing(setup, capsys):
  """Non-finite output (here: F_L's last conv at float32's largest finite values, so its
  output overflows to inf) is an error, not a video of garbage; neither the output nor a
  temporary file is left behind. (NaN weights are refused at load, before any frame.)"""
  params = jax.tree.map(lambda x: x, setup["params"])
  last = params["cells_1"]["F_L_2"]
  params["cells_1"]["F_L_2"] = jax.tree.map(lambda x: jnp.full_like(x, 3e38), last)
  weights = ifr.save_weights(params, setup["root"] / "nan.safetensors", model=setup["model"])
  folder = setup["root"] / "diverged"
  folder.mkdir()
  status, err = _run(capsys, "--input", setup["clip"], "--output", folder / "out.mp4",
                     "--weights", weights)
  assert status == 2
  message = err.strip().splitlines()[-1]
  assert message.startswith("error: ") and "not finite at frame 1" in message
  assert "Traceback" not in err and list(folder.iterdir()) == []
