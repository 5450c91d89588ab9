"""The JAX model against a PyTorch module written independently from the spec
(`ifirnn_jax/torch_reference.py`), weights exchanged through safetensors files in both
directions. Spec widths, an odd frame size, C1/C2 at several N."""

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch comes with the [test] extra")
from ifirnn_jax import torch_reference as tr  # noqa: E402
import ifirnn_jax as ifr  # noqa: E402


def _relative_l2(a, b):
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("cells,iterations", [(1, 1), (1, 3), (2, 1), (2, 3)])
def test_jax_weights_in_torch_give_the_same_frames(tmp_path, cells, iterations):
  model = ifr.IFIRNN(cells=cells, iterations=iterations)
  params = model.init(jax.random.key(cells * 10 + iterations))
  path = ifr.save_weights(params, tmp_path / "w.safetensors", model=model)
  reference = tr.TorchIFIRNN(cells=cells, iterations=iterations)
  tr.load_safetensors(reference, path)
  video = np.random.default_rng(iterations).uniform(size=(3, 50, 70, 3)).astype(np.float32)
  ours = np.asarray(model.deblur(params, video))
  theirs = tr.deblur_numpy(reference, video)
  assert ours.shape == theirs.shape == video.shape
  assert _relative_l2(ours, theirs) < 1e-5
  # The network does something: its output is not the input.
  assert np.abs(ours - video).mean() > 1e-3


@pytest.mark.parametrize("cells,iterations,gated", [(1, 2, False), (2, 4, True)])
def test_torch_weights_in_jax_give_the_same_frames(tmp_path, cells, iterations, gated):
  torch.manual_seed(cells + iterations)
  reference = tr.TorchIFIRNN(cells=cells, iterations=iterations, gated=gated)
  path = tmp_path / "torch.safetensors"
  tr.save_safetensors(reference, path)
  model, params = ifr.load_model(path, iterations=iterations)
  assert model.cells == cells and model.gated == gated
  video = np.random.default_rng(5).uniform(size=(2, 2, 37, 45, 3)).astype(np.float32)
  ours = np.asarray(model.deblur(params, video))
  theirs = tr.deblur_numpy(reference, video)
  assert _relative_l2(ours, theirs) < 1e-5
  # And back: JAX -> file -> torch keeps every tensor bit for bit.
  back = tmp_path / "back.safetensors"
  ifr.save_weights(params, back, model=model)
  again = tr.TorchIFIRNN(cells=cells, iterations=iterations, gated=gated)
  tr.load_safetensors(again, back)
  for name, tensor in reference.state_dict().items():
    assert torch.equal(tensor, again.state_dict()[name]), name


def test_torch_module_refuses_weights_of_another_model(tmp_path):
  path = ifr.save_weights(ifr.IFIRNN(cells=1).init(jax.random.key(0)), tmp_path / "c1.safetensors")
  with pytest.raises(tr.TorchReferenceError):
    tr.load_safetensors(tr.TorchIFIRNN(cells=2, iterations=1), path)


def test_initialisation_draws_pytorchs_default_layer_by_layer():
  """Each tensor of `init` is uniform within PyTorch's own default bound for that layer
  (1/sqrt(fan_in), fan_in as torch computes it from its weight layout) and, where the
  tensor is large enough to say, has the spread of the tensor torch itself draws."""
  model = ifr.IFIRNN(cells=2, iterations=1, gated=True)  # every layer type, spec widths
  ours = ifr.to_torch_state_dict(model.init(jax.random.key(0)))
  torch.manual_seed(0)
  reference = tr.TorchIFIRNN(cells=2, iterations=1, gated=True)
  theirs = reference.state_dict()
  assert set(ours) == set(theirs)
  for name, value in theirs.items():
    weight = theirs[name.rsplit(".", 1)[0] + ".weight"]
    fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(weight)
    bound = 1 / fan_in**0.5
    assert np.abs(ours[name]).max() <= bound * (1 + 1e-6), name
    if value.numel() >= 2000:  # std of a uniform sample, to a few per cent
      assert np.std(ours[name]) == pytest.approx(float(value.std()), rel=0.08), name
