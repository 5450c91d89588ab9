"""The JAX model against a PyTorch module written independently from the spec
(`ifirnn_jax/model/torch_reference.py`), weights exchanged through safetensors files in both
directions. Spec widths, an odd frame size, C1/C2 at several N."""

import re

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch comes with the [test] extra")
from ifirnn_jax.model import torch_reference as tr
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


# The spec's layer table (docs/architecture.md "PyTorch weight names") at widths where
# every layer's in and out channels differ, so a weight in another layer's layout has
# another shape.
LAYOUT_WIDTHS = dict(n1=3, n2=5, n3=7, nh=2, num_resblocks=2, gate_hidden=6)


def _spec_torch_layers(cells, n1, n2, n3, nh, num_resblocks, gate_hidden):
  """{PyTorch module name: torch.nn layer} of a gated model, built from the widths."""
  nn, fused = torch.nn, n3 + nh
  layers = {}
  for k in range(cells):
    p = f"cells.{k}."
    layers.update({p + "F_B.0": nn.Conv2d(3, n1, 5, padding=2),
                   p + "F_B.1": nn.Conv2d(n1, n2, 5, stride=2, padding=2),
                   p + "F_B.2": nn.Conv2d(n2, n3, 5, stride=2, padding=2)})
    for j in range(num_resblocks):
      for conv in ("conv1", "conv2"):
        layers[p + f"F_R.{j}.{conv}"] = nn.Conv2d(fused, fused, 3, padding=1)
    layers[p + "F_h.0"] = nn.Conv2d(fused, nh, 3, padding=1)
    layers[p + "F_h.1.conv1"] = nn.Conv2d(nh, nh, 3, padding=1)
    layers[p + "F_h.1.conv2"] = nn.Conv2d(nh, nh, 3, padding=1)
    layers[p + "F_h.2"] = nn.Conv2d(nh, nh, 3, padding=1)
  p = f"cells.{cells - 1}."
  layers.update({p + "F_L.0": nn.ConvTranspose2d(fused, n2, 4, stride=2, padding=1),
                 p + "F_L.1": nn.ConvTranspose2d(n2, n1, 4, stride=2, padding=1),
                 p + "F_L.2": nn.Conv2d(n1, 3, 5, padding=2),
                 "gate.fc1": nn.Linear(nh, gate_hidden),
                 "gate.fc2": nn.Linear(gate_hidden, 2)})
  return layers


def _jax_layer(name, layer, params):
  """The JAX layer for torch `layer` and its parameters in `params` (by the spec's name)."""
  import flax.linen
  from ifirnn_jax.model import layers
  node = params
  for part in re.sub(r"(cells|F_B|F_R|F_h|F_L)\.(\d+)", r"\1_\2", name).split("."):
    node = node[part]
  if isinstance(layer, torch.nn.ConvTranspose2d):
    module = layers.ConvTranspose(layer.out_channels)
  elif isinstance(layer, torch.nn.Conv2d):
    module = layers.Conv(layer.out_channels, layer.kernel_size[0], stride=layer.stride[0])
  else:
    module = flax.linen.Dense(layer.out_features)
  return lambda x: module.apply({"params": node}, x)


def test_exported_file_holds_every_layer_in_its_torch_layout(tmp_path):
  """Each tensor of `save_weights`' file has the shape of the torch.nn layer of that name,
  and that layer, loaded with it, computes what the JAX layer computes."""
  from safetensors.torch import load_file
  from tests.tiny_models import tiny_params
  model = ifr.IFIRNN(cells=2, iterations=1, gated=True, conv_impl="xla", **LAYOUT_WIDTHS)
  params = tiny_params(model, seed=9)
  state = load_file(ifr.save_weights(params, tmp_path / "w.safetensors", model=model))
  torch_layers = _spec_torch_layers(2, **LAYOUT_WIDTHS)
  expected = {f"{name}.{tensor}": tuple(value.shape) for name, layer in torch_layers.items()
              for tensor, value in layer.named_parameters()}
  assert {name: tuple(value.shape) for name, value in state.items()} == expected
  rng = np.random.default_rng(10)
  checked = set()
  for name, layer in torch_layers.items():
    if repr(layer) in checked:  # one layer of each kind and size computes
      continue
    checked.add(repr(layer))
    layer.load_state_dict({t: state[f"{name}.{t}"] for t in ("weight", "bias")})
    if isinstance(layer, torch.nn.Linear):
      x = rng.normal(size=(3, layer.in_features)).astype(np.float32)
      theirs = layer(torch.from_numpy(x)).detach().numpy()
    else:
      x = rng.normal(size=(2, 8, 12, layer.in_channels)).astype(np.float32)
      nchw = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
      theirs = layer(nchw).detach().numpy().transpose(0, 2, 3, 1)
    ours = np.asarray(_jax_layer(name, layer, params)(x))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5, err_msg=name)
