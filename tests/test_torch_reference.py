"""Tests of the PyTorch reference against facts stated in docs/architecture.md."""

import numpy as np
import pytest
import torch

from ifirnn_jax.model import torch_reference as tr

TINY = dict(n1=4, n2=6, n3=8, nh=4, num_resblocks=1)


def spec_keys(cells: int, num_resblocks: int = 6, gated: bool = False) -> set[str]:
  """The interchange names, expanded by hand from the spec's list."""
  names = []
  for k in range(cells):
    names += [f"cells.{k}.F_B.{i}" for i in range(3)]
    for j in range(num_resblocks):
      names += [f"cells.{k}.F_R.{j}.conv1", f"cells.{k}.F_R.{j}.conv2"]
    names += [f"cells.{k}.F_h.0", f"cells.{k}.F_h.1.conv1", f"cells.{k}.F_h.1.conv2",
              f"cells.{k}.F_h.2"]
  last = cells - 1
  names += [f"cells.{last}.F_L.{i}" for i in range(3)]
  if gated:
    names += ["gate.fc1", "gate.fc2"]
  return {f"{n}.{p}" for n in names for p in ("weight", "bias")}


def tiny_model(cells: int = 2, iterations: int = 2, **kw) -> tr.TorchIFIRNN:
  torch.manual_seed(0)
  return tr.TorchIFIRNN(cells, iterations, **{**TINY, **kw}).eval()


@pytest.mark.parametrize("cells,gated,expected", [
    (1, False, 864_623), (2, False, 1_663_683), (1, True, 864_993), (2, True, 1_664_053)])
def test_parameter_counts_match_spec(cells, gated, expected):
  assert tr.count_parameters(tr.TorchIFIRNN(cells, 3, gated=gated)) == expected


@pytest.mark.parametrize("cells", [1, 2])
@pytest.mark.parametrize("gated", [False, True])
def test_state_dict_keys_match_spec(cells, gated):
  model = tr.TorchIFIRNN(cells, 1, gated=gated)
  assert set(model.state_dict()) == spec_keys(cells, gated=gated)


def test_weight_layouts_follow_pytorch_conventions():
  sd = tr.TorchIFIRNN(2, 1, gated=True).state_dict()
  assert sd["cells.0.F_B.1.weight"].shape == (40, 20, 5, 5)     # Conv2d [out, in, kh, kw]
  assert sd["cells.1.F_L.0.weight"].shape == (80, 40, 4, 4)     # ConvTranspose2d [in, out, ...]
  assert sd["cells.1.F_L.2.weight"].shape == (3, 20, 5, 5)
  assert sd["cells.1.F_h.0.weight"].shape == (20, 80, 3, 3)
  assert sd["gate.fc1.weight"].shape == (16, 20)                # Linear [out, in]
  assert sd["gate.fc2.weight"].shape == (2, 16)


@pytest.mark.parametrize("shape", [(3, 21, 27, 3), (2, 3, 18, 29, 3)])
def test_deblur_numpy_keeps_shape_for_odd_sizes(shape):
  video = np.random.default_rng(0).random(shape, dtype=np.float32)
  out = tr.deblur_numpy(tiny_model(), video)
  assert out.shape == shape and out.dtype == np.float32 and np.isfinite(out).all()


def test_deblur_numpy_matches_forward_on_multiple_of_4():
  model = tiny_model()
  video = np.random.default_rng(1).random((3, 20, 28, 3), dtype=np.float32)
  with torch.no_grad():
    ref = model(torch.from_numpy(video).permute(0, 3, 1, 2)[None])[0].permute(0, 2, 3, 1)
  np.testing.assert_allclose(tr.deblur_numpy(model, video), ref.numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("bad", [np.zeros((3, 20, 28, 4)), np.zeros((20, 28, 3)),
                                 np.zeros((3, 2, 28, 3))])
def test_deblur_numpy_rejects_bad_input(bad):
  with pytest.raises(tr.TorchReferenceError):
    tr.deblur_numpy(tiny_model(), bad)


def test_zero_hidden_is_default_initial_state():
  model = tiny_model()
  frame = torch.rand(2, 3, 20, 28)
  with torch.no_grad():
    out_none, h_none = model.step(frame, None)
    out_zero, h_zero = model.step(frame, torch.zeros(2, 4, 5, 7))
  assert h_none.shape == (2, 4, 5, 7)
  torch.testing.assert_close(out_none, out_zero, rtol=0, atol=0)
  torch.testing.assert_close(h_none, h_zero, rtol=0, atol=0)


@pytest.mark.parametrize("cells", [1, 2])
def test_forward_equals_repeated_step(cells):
  model = tiny_model(cells, iterations=3)
  video = torch.rand(2, 3, 3, 20, 28)
  with torch.no_grad():
    full = model(video, iterations=2)
    h, outs = None, []
    for t in range(3):
      out, h = model.step(video[:, t], h, iterations=2)
      outs.append(out)
  torch.testing.assert_close(full, torch.stack(outs, 1), rtol=0, atol=0)
  # The hidden state carries over: frame 2 differs from running it alone.
  with torch.no_grad():
    alone, _ = model.step(video[:, 2], None, iterations=2)
  assert not torch.allclose(alone, full[:, 2])


@pytest.mark.parametrize("cells,n,expected", [
    # Algorithm 1: F_B and F_L once per frame; C1 runs N passes of F_R, C2 runs 1 + N.
    (1, 3, {"cells.0.F_B.0": 1, "cells.0.F_R.0": 3, "cells.0.F_h.0": 3, "cells.0.F_L.0": 1}),
    (2, 2, {"cells.0.F_B.0": 1, "cells.0.F_R.0": 1, "cells.0.F_h.0": 1,
            "cells.1.F_B.0": 1, "cells.1.F_R.0": 2, "cells.1.F_h.0": 2, "cells.1.F_L.0": 1}),
])
def test_layer_calls_per_frame_follow_algorithm_1(cells, n, expected):
  model = tiny_model(cells, iterations=1)
  calls = {name: 0 for name in expected}
  modules = dict(model.named_modules())
  for name in expected:
    modules[name].register_forward_hook(
        lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
  with torch.no_grad():
    model(torch.rand(1, 2, 3, 20, 28), iterations=n)
  assert calls == {name: 2 * c for name, c in expected.items()}  # 2 frames


@pytest.mark.parametrize("residual", [True, False])
def test_zero_weights_give_identity_or_zero(residual):
  model = tiny_model(residual_output=residual)
  with torch.no_grad():
    for p in model.parameters():
      p.zero_()
    video = torch.rand(1, 2, 3, 20, 28)
    out = model(video)
  torch.testing.assert_close(out, video if residual else torch.zeros_like(video))


def test_iterations_override_changes_output_and_is_validated():
  model = tiny_model(1, iterations=1)
  video = torch.rand(1, 2, 3, 20, 28)
  with torch.no_grad():
    assert not torch.allclose(model(video), model(video, iterations=3))
  with pytest.raises(tr.TorchReferenceError):
    model(video, iterations=0)
  with pytest.raises(tr.TorchReferenceError):
    model.step(torch.rand(1, 3, 21, 28), None)


@pytest.mark.parametrize("cells,gated", [(1, False), (2, True)])
def test_safetensors_round_trip_is_lossless(tmp_path, cells, gated):
  model = tiny_model(cells, gated=gated)
  path = tmp_path / "w.safetensors"
  tr.save_safetensors(model, path)
  torch.manual_seed(1)
  other = tr.TorchIFIRNN(cells, 2, gated=gated, **TINY)
  tr.load_safetensors(other, path)
  for key, value in model.state_dict().items():
    assert torch.equal(other.state_dict()[key], value), key


def test_load_safetensors_rejects_mismatched_files(tmp_path):
  path = tmp_path / "w.safetensors"
  tr.save_safetensors(tiny_model(1), path)
  with pytest.raises(tr.TorchReferenceError, match="missing"):
    tr.load_safetensors(tiny_model(2), path)                     # cell 1 absent
  with pytest.raises(tr.TorchReferenceError, match="wrong shape"):
    tr.load_safetensors(tiny_model(1, nh=5), path)


def test_train_step_returns_pre_update_mse_and_updates_weights():
  model = tiny_model(1, iterations=1)
  blur, sharp = torch.rand(2, 2, 3, 20, 28), torch.rand(2, 2, 3, 20, 28)
  with torch.no_grad():
    expected = float(np.mean((model(blur).numpy() - sharp.numpy()) ** 2))
  before = [p.detach().clone() for p in model.parameters()]
  loss = tr.make_train_step(model, learning_rate=1e-3)(blur, sharp)
  assert loss == pytest.approx(expected, rel=1e-5)
  # Adam's first step moves every parameter with a nonzero gradient by about lr.
  deltas = [float((p.detach() - b).abs().max()) for p, b in zip(model.parameters(), before)]
  assert max(deltas) == pytest.approx(1e-3, rel=1e-2)
