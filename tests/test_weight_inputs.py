"""Odd weight files and API inputs: refused at load with one message naming the file and
the problem (on the command line: one `error:` line, status 2), or accepted where the
value is a valid one in another type (np.int64 iterations)."""

import json
import pickle

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import ifirnn_jax as ifr
from data_pipeline import image_io, layouts
from ifirnn_jax import deblur, evaluate
from ifirnn_jax.evaluation import protocol, reports
from tests.tiny_models import tiny_params

C1H1 = ifr.IFIRNN(cells=1, iterations=1, n1=4, n2=4, n3=4, nh=4, num_resblocks=1)
PARAMS = tiny_params(C1H1, seed=2)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  """A good C1H1 weight file, a folder of 6 frames and a 1-sequence GOPRO test split."""
  root = tmp_path_factory.mktemp("weights")
  good = ifr.save_weights(PARAMS, root / "c1h1.safetensors", model=C1H1)
  rng = np.random.default_rng(0)
  for folder in ("frames", "data/test/s/blur", "data/test/s/sharp"):
    (root / folder).mkdir(parents=True)
  for i in range(6):
    sharp = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    image_io.write_image(root / "frames" / f"{i:03d}.png", sharp)  # for deblur
    for folder in ("blur", "sharp"):
      image_io.write_image(root / "data" / "test" / "s" / folder / f"{i:03d}.png", sharp)
  return dict(root=root, good=good, state=load_file(good))


def _one_error_line(err):
  lines = [line for line in err.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: "), err
  return lines[0]


def test_broken_model_json_is_refused_not_read_as_the_defaults(files, tmp_path, capsys):
  description = json.dumps(C1H1.description())
  path = tmp_path / "broken.safetensors"
  save_file(files["state"], str(path), metadata={"format": "ifirnn-jax/1",
                                                 "model": description[:-5]})
  for load in (lambda: ifr.load_model(path), lambda: ifr.load_weights(path, C1H1)):
    with pytest.raises(ifr.WeightsError, match="metadata 'model' is not valid JSON") as e:
      load()
    assert str(path) in str(e.value)
  # The command line: one error line, nothing written. Without the check the file ran
  # as C1H3 (the defaults) and wrote a video.
  out = tmp_path / "out"
  assert deblur.main(["--input", str(files["root"] / "frames"), "--output", str(out),
                      "--weights", str(path)]) == 2
  line = _one_error_line(capsys.readouterr().err)
  assert str(path) in line and "JSON" in line and not out.exists()


@pytest.mark.parametrize("change,named", [
    (lambda a: a.astype(np.int32), "dtype int32"),
    (lambda a: np.where(np.arange(a.size).reshape(a.shape) == 3, np.nan, a), "1 NaN or infinite"),
    (lambda a: np.full_like(a, np.inf), "NaN or infinite"),
])
def test_integer_or_non_finite_tensors_are_refused_at_load(files, tmp_path, change, named):
  state = dict(files["state"])
  name = "cells.0.F_R.0.conv1.weight"
  state[name] = change(state[name])
  path = tmp_path / "w.safetensors"
  save_file(state, str(path))
  with pytest.raises(ifr.WeightsError) as e:
    ifr.load_model(path)
  assert str(path) in str(e.value) and name in str(e.value) and named in str(e.value)
  with pytest.raises(ifr.WeightsError, match=name):
    ifr.from_torch_state_dict(state, C1H1)


def test_half_precision_tensors_are_still_accepted(files, tmp_path):
  state = {k: v.astype(np.float16) for k, v in files["state"].items()}
  save_file(state, str(tmp_path / "half.safetensors"))
  model, params = ifr.load_model(tmp_path / "half.safetensors")
  assert model.shape_fields() == C1H1.shape_fields()


def test_a_scalar_tensor_is_named(files, tmp_path):
  state = dict(files["state"], **{"cells.0.F_B.0.weight": np.array(0.5, np.float32)})
  save_file(state, str(tmp_path / "scalar.safetensors"))
  with pytest.raises(ifr.WeightsError) as e:
    ifr.load_model(tmp_path / "scalar.safetensors")
  message = str(e.value)
  assert "cells.0.F_B.0.weight" in message and "shape ()" in message
  assert "index out of range" not in message


class _Marker:
  """Unpickling it would create the file `path`: proof that a pickle was never loaded."""

  def __init__(self, path):
    self.path = path

  def __reduce__(self):
    return (open, (str(self.path), "w"))


def test_pytorch_pickles_are_named_never_unpickled_and_the_hint_converts_them(files, tmp_path):
  torch = pytest.importorskip("torch")
  from safetensors.torch import save_file as torch_save_file
  state = {k: torch.from_numpy(v.copy()) for k, v in files["state"].items()}
  zipped, legacy, hostile = (tmp_path / n for n in ("w.pth", "w_legacy.pt", "evil.pt"))
  torch.save(state, zipped)
  torch.save(state, legacy, _use_new_zipfile_serialization=False)
  marker = tmp_path / "unpickled"
  hostile.write_bytes(pickle.dumps(_Marker(marker), protocol=2))
  for path in (zipped, legacy, hostile):
    with pytest.raises(ifr.WeightsError) as e:
      ifr.load_model(path)
    message = str(e.value)
    assert "PyTorch pickle" in message and "safetensors.torch import save_file" in message
    assert "header too large" not in message
  assert not marker.exists()
  # The hint, followed as written, gives a file that loads to the same parameters.
  converted = tmp_path / "model.safetensors"
  torch_save_file(torch.load(zipped, weights_only=True), str(converted))
  model, params = ifr.load_model(converted, iterations=1)
  assert model == C1H1
  for key, value in ifr.to_torch_state_dict(params).items():
    np.testing.assert_array_equal(value, files["state"][key])


def test_a_folder_given_as_weights_says_so_and_points_to_workdir(files, tmp_path, capsys):
  plain = tmp_path / "plain"
  plain.mkdir()
  with pytest.raises(ifr.WeightsError, match="is a folder, not a weight file") as e:
    ifr.load_model(plain)
  assert "--workdir" not in str(e.value)
  run = tmp_path / "run"
  (run / "checkpoints").mkdir(parents=True)
  assert evaluate.main(["--weights", str(run), "--data", str(files["root"] / "data"),
                        "--out", str(tmp_path / "eval")]) == 2
  line = _one_error_line(capsys.readouterr().err)
  assert str(run) in line and "is a folder" in line and "--workdir" in line
  assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize("name,reason", [("X9", "unknown model"),
                                         ("C1H65", "iterations must be an integer")])
def test_evaluate_names_the_model_flag(files, tmp_path, capsys, name, reason):
  assert evaluate.main(["--weights", str(files["good"]), "--model", name,
                        "--data", str(files["root"] / "data"),
                        "--out", str(tmp_path / "eval")]) == 2
  line = _one_error_line(capsys.readouterr().err)
  assert f"--model {name}" in line and reason in line and "config.model" not in line


def test_numpy_integers_are_accepted_where_ints_are(files):
  model = ifr.IFIRNN(cells=np.int64(1), iterations=np.int64(2), n1=np.int32(4), n2=4, n3=4,
                     nh=4, num_resblocks=np.int64(1))
  assert model == ifr.IFIRNN(cells=1, iterations=2, n1=4, n2=4, n3=4, nh=4, num_resblocks=1)
  assert model.name == "C1H2" and json.loads(json.dumps(model.description()))["iterations"] == 2
  video = np.random.default_rng(1).uniform(size=(2, 8, 12, 3)).astype(np.float32)
  expected = np.asarray(C1H1.deblur(PARAMS, video, iterations=2))
  np.testing.assert_array_equal(
      np.asarray(C1H1.deblur(PARAMS, video, iterations=np.int64(2))), expected)
  out, _ = C1H1.step(PARAMS, video[0], C1H1.initial_state(8, 12), iterations=np.int32(2))
  np.testing.assert_allclose(np.asarray(out), expected[0], atol=1e-6)
  for bad in (2.0, True, "2"):
    with pytest.raises(ValueError, match="iterations must be an integer"):
      C1H1.deblur(PARAMS, video, iterations=bad)
  # The evaluation API, down to a results.json, and a count of one printed as one.
  sequences = layouts.find_sequences(files["root"] / "data", "gopro", "test", blur_dir="blur")
  summary = protocol.evaluate_sequences(C1H1, PARAMS, sequences, iterations=np.int64(2),
                                          skip_first=1, skip_last=1)
  assert json.loads(json.dumps(summary.as_dict()))["iterations"] == 2
  table = reports.format_table(summary, "C1H1")
  assert "(4 frames, 1 sequence)" in table
