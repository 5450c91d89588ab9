"""Behaviour of the network, the gate, the losses and weight files (independent facts:
the spec's parameter counts and formulas, hand-computed cases)."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ifirnn_jax as ifr
from ifirnn_jax.training import default_config
from ifirnn_jax.model.network import Cell, GateTrace
from tests.tiny_models import tiny_params

TINY = dict(n1=4, n2=6, n3=8, nh=4, num_resblocks=1)


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _video(shape, seed=0):
  return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


@pytest.mark.parametrize("cells,gated,expected", [
    (1, False, 864_623), (2, False, 1_663_683), (1, True, 864_623 + 370),
    (2, True, 1_663_683 + 370)])
def test_parameter_counts_equal_the_spec(cells, gated, expected):
  model = ifr.IFIRNN(cells=cells, iterations=3, gated=gated)
  assert _count(jax.eval_shape(model.init, jax.random.key(0))) == expected


@pytest.mark.parametrize("cells", [1, 2])
def test_blur_and_latent_branches_run_once_per_frame_whatever_n(cells):
  """F_B and F_L see each frame once; F_R runs N (C1) or N + 1 (C2) times per frame."""
  batch, frames = 2, 5
  for n in (1, 4):
    # One formulation: conv_impl 'auto' traces a CPU one and another (platforms.py).
    model = ifr.IFIRNN(cells=cells, iterations=n, conv_impl="xla", **TINY)
    params = model.init(jax.random.key(0))
    seen = {"blur_features": 0, "latent_residual": 0, "fuse": 0}

    def count(next_fun, args, kwargs, context):
      if context.method_name in seen and isinstance(context.module, Cell):
        rows = args[0].shape[0]
        seen[context.method_name] += rows
      return next_fun(*args, **kwargs)

    with nn.intercept_methods(count):
      # Unrolled, each iteration is traced once (the rolled loop traces its body once).
      jax.eval_shape(lambda p, v: model.apply_sequence(p, v, unroll_iterations=True), params,
                     jnp.zeros((batch, frames, 16, 16, 3)))
    assert seen["blur_features"] == cells * batch * frames
    assert seen["latent_residual"] == batch * frames
    # The frame step is traced once, on one frame of the batch at a time.
    assert seen["fuse"] == (n + cells - 1) * batch


def test_any_size_is_padded_and_cropped_back():
  model = ifr.IFIRNN(cells=2, iterations=2, **TINY)
  params = model.init(jax.random.key(1))
  for shape in [(2, 13, 9, 3), (1, 2, 50, 70, 3), (3, 4, 4, 3)]:
    assert model.deblur(params, _video(shape)).shape == shape


def test_global_residual_adds_the_input_to_f_l_by_hand():
  """L_t = B_t + F_L(f_R): with one frame and N = 1, f_R = F_R(F_B(B_1), h_0 = 0),
  computed here from the cell's layers; with residual_output off, L_t = F_L(f_R)."""
  model = ifr.IFIRNN(cells=1, iterations=1, conv_impl="xla", **TINY)
  params = tiny_params(model, seed=5)
  blur = _video((1, 1, 12, 8, 3), seed=6)
  cell = model.cell_modules()[0]
  cell_params = {"params": params["cells_0"]}
  features = cell.apply(cell_params, blur[:, 0], method=Cell.blur_features)
  fused = cell.apply(cell_params, features, jnp.zeros((1, 3, 2, TINY["nh"])),
                     method=Cell.fuse)
  latent = np.asarray(cell.apply(cell_params, fused, method=Cell.latent_residual))
  assert np.abs(latent).mean() > 1e-2  # F_L's path is not negligible
  out, _, _ = model.apply_sequence(params, jnp.asarray(blur))
  np.testing.assert_allclose(np.asarray(out)[:, 0], blur[:, 0] + latent, atol=1e-5)
  plain = dataclasses.replace(model, residual_output=False)
  out, _, _ = plain.apply_sequence(params, jnp.asarray(blur))
  np.testing.assert_allclose(np.asarray(out)[:, 0], latent, atol=1e-5)


def test_zero_last_layer_of_f_l_gives_back_the_input():
  """F_L's last conv at zero: L_t = B_t exactly, at any size (padded and cropped back),
  for the residual model the paper configs build; and L_t = 0 without the residual."""
  model = ifr.IFIRNN(cells=2, iterations=2, conv_impl="xla", **TINY)
  assert default_config.paper_config(model.name).model.residual_output is True
  params = tiny_params(model, seed=7)
  last = "cells_1"
  params[last]["F_L_2"] = jax.tree.map(jnp.zeros_like, params[last]["F_L_2"])
  video = _video((2, 3, 13, 10, 3), seed=8)
  np.testing.assert_allclose(np.asarray(model.deblur(params, video)), video, atol=1e-6)
  plain = dataclasses.replace(model, residual_output=False)
  np.testing.assert_array_equal(np.asarray(plain.deblur(params, video)), 0.0)


def test_streaming_equals_scan():
  model = ifr.IFIRNN(cells=2, iterations=3, **TINY)
  params = model.init(jax.random.key(2))
  video = _video((2, 6, 22, 30, 3), seed=3)
  whole = np.asarray(model.deblur(params, video))
  state = model.initial_state(22, 30, batch=2)
  for t in range(video.shape[1]):
    frame, state = model.step(params, video[:, t], state)
    np.testing.assert_allclose(frame, whole[:, t], rtol=0, atol=2e-6)
  # Unbatched streaming, too.
  state = model.initial_state(22, 30)
  for t in range(video.shape[1]):
    frame, state = model.step(params, video[1, t], state)
    np.testing.assert_allclose(frame, whole[1, t], rtol=0, atol=2e-6)


def test_hidden_state_starts_at_zero_and_carries_information():
  model = ifr.IFIRNN(cells=1, iterations=2, **TINY)
  params = model.init(jax.random.key(3))
  video = _video((4, 16, 16, 3), seed=4)
  out = np.asarray(model.deblur(params, video))
  # Frame 0 alone equals frame 0 in the clip (h_0 = 0), but a later frame depends on the past.
  np.testing.assert_allclose(model.deblur(params, video[:1])[0], out[0], atol=1e-6)
  assert np.abs(np.asarray(model.deblur(params, video[3:4])[0]) - out[3]).max() > 1e-4


def test_gate_is_exactly_binary_forward_with_soft_gradient():
  logits = jax.random.normal(jax.random.key(0), (64, 2)) * 2.0
  y = ifr.straight_through_gumbel(jax.random.key(1), logits)
  values = np.asarray(y)
  assert set(np.unique(values).tolist()) <= {0.0, 1.0}
  np.testing.assert_array_equal(values.sum(-1), 1.0)
  weights = jnp.arange(64.0)
  grad = jax.grad(lambda l: jnp.sum(weights * ifr.straight_through_gumbel(
      jax.random.key(1), l)[:, 1]))(logits)
  assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 1e-3


def _gated_with_bias(model, params, stop, cont):
  params = jax.tree.map(lambda x: x, params)
  params["gate"]["fc2"]["bias"] = jnp.array([stop, cont], jnp.float32)
  return params


def test_masked_loop_open_equals_fixed_n_and_closed_equals_one_iteration():
  model = ifr.IFIRNN(cells=2, iterations=3, gated=True, **TINY)
  params = model.init(jax.random.key(4))
  video = jnp.asarray(_video((2, 3, 16, 20, 3), seed=5))
  fixed_n, _, _ = model.apply_sequence(params, video)
  fixed_1, _, _ = model.apply_sequence(params, video, iterations=1)
  key = jax.random.key(9)

  opened = _gated_with_bias(model, params, -1e4, 1e4)
  out, _, trace = model.apply_sequence(opened, video, gate_mode="gumbel", gate_key=key)
  np.testing.assert_allclose(out, fixed_n, atol=1e-6)
  np.testing.assert_array_equal(trace.iterations, 3.0)

  closed = _gated_with_bias(model, params, 1e4, -1e4)
  out, _, trace = model.apply_sequence(closed, video, gate_mode="gumbel", gate_key=key)
  np.testing.assert_allclose(out, fixed_1, atol=1e-6)
  np.testing.assert_array_equal(trace.iterations, 1.0)
  assert trace.gate_values.shape == (3, 2, 2)  # [T, N-1, B]
  # Greedy (adaptive inference) follows the same gate deterministically.
  adaptive = model.deblur(closed, video, adaptive=True)
  np.testing.assert_allclose(adaptive, fixed_1, atol=1e-6)


def test_gate_decides_per_sample():
  """Samples of one batch stop after different numbers of iterations."""
  model = ifr.IFIRNN(cells=1, iterations=4, gated=True, **TINY)
  params = _gated_with_bias(model, model.init(jax.random.key(5)), 0.0, 0.0)  # p = 1/2
  video = jnp.asarray(_video((16, 2, 8, 8, 3), seed=6))
  _, _, trace = model.apply_sequence(params, video, gate_mode="gumbel",
                                     gate_key=jax.random.key(0))
  counts = np.asarray(trace.iterations)
  assert len(np.unique(counts)) >= 3 and counts.min() >= 1 and counts.max() <= 4


def test_gate_regularizer_hand_computed():
  # T = 2 frames, N - 1 = 2 decisions, B = 3 samples.
  g = np.array([[[1, 0, 1], [0, 1, 0]],
                [[0, 0, 0], [1, 1, 1]]], np.float32)
  alive = np.array([[[1, 1, 1], [1, 0, 1]],
                    [[1, 1, 1], [0, 0, 0]]], np.float32)
  trace = GateTrace(jnp.asarray(g), jnp.asarray(alive), jnp.ones((2, 3)))
  # t=0: E = 2/3 -> (2/3 - 3/4)^2 = 1/144; E over samples 0, 2 = 0 -> 9/16.
  # t=1: E = 0 -> 9/16; no sample still iterating -> dropped.
  expected = (1 / 144 + 9 / 16 + 9 / 16) / 2
  np.testing.assert_allclose(ifr.gate_regularizer(trace), expected, rtol=1e-6)


def test_content_loss_is_per_pixel_mse():
  a = jnp.zeros((1, 2, 2, 2, 3))
  b = a.at[0, 1, 0, 0, 2].set(0.5)
  np.testing.assert_allclose(ifr.content_loss(a, b), 0.25 / 24, rtol=1e-6)


def test_gradients_finite_through_twelve_frames_with_the_gate():
  model = ifr.IFIRNN(cells=2, iterations=3, gated=True, scan_unroll=1, **TINY)
  params = model.init(jax.random.key(6))
  blur = jnp.asarray(_video((2, 12, 16, 16, 3), seed=7))
  sharp = jnp.asarray(_video((2, 12, 16, 16, 3), seed=8))

  def loss(p):
    out, _, trace = model.apply_sequence(p, blur, gate_mode="gumbel",
                                         gate_key=jax.random.key(1))
    return ifr.total_loss(out, sharp, trace)[0]

  grads = jax.grad(loss)(params)
  leaves = jax.tree.leaves(grads)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
  assert float(jnp.abs(grads["gate"]["fc2"]["kernel"]).sum()) > 0  # soft path reaches the gate
  assert float(jnp.abs(grads["cells_0"]["F_B_0"]["kernel"]).sum()) > 0


def test_remat_and_unroll_do_not_change_the_result():
  base = ifr.IFIRNN(cells=2, iterations=2, **TINY)
  params = base.init(jax.random.key(7))
  video = jnp.asarray(_video((1, 4, 12, 12, 3), seed=9))
  ref = jax.grad(lambda p: jnp.sum(base.apply_sequence(p, video)[0]))(params)
  for variant in (dict(remat=True), dict(scan_unroll=True)):
    model = ifr.IFIRNN(cells=2, iterations=2, **TINY, **variant)
    got = jax.grad(lambda p: jnp.sum(model.apply_sequence(p, video)[0]))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), ref, got)


def test_bfloat16_compute_runs_close_to_float32():
  model = ifr.IFIRNN(cells=1, iterations=2, **TINY)
  params = model.init(jax.random.key(8))
  video = _video((3, 16, 16, 3), seed=10)
  out32 = model.deblur(params, video)
  out16 = ifr.IFIRNN(cells=1, iterations=2, compute_dtype="bfloat16", **TINY).deblur(params, video)
  assert out16.dtype == jnp.float32
  assert float(jnp.abs(out16 - out32).max()) < 0.1


@pytest.mark.parametrize("field,value", [("cells", 3), ("iterations", 0), ("n1", -1),
                                         ("compute_dtype", "float16"), ("iterations", 1.5)])
def test_bad_config_values_name_the_field(field, value):
  with pytest.raises(ValueError, match=field):
    ifr.IFIRNN(**{field: value})


def test_bad_inputs_are_refused_clearly():
  model = ifr.IFIRNN(cells=1, iterations=1, **TINY)
  params = model.init(jax.random.key(0))
  with pytest.raises(ValueError, match="iterations"):
    model.deblur(params, _video((2, 8, 8, 3)), iterations=0)
  with pytest.raises(ValueError, match="shape"):
    model.deblur(params, _video((2, 8, 8, 4)))
  with pytest.raises(ValueError, match="state"):
    model.step(params, _video((8, 8, 3)), model.initial_state(16, 16))
  with pytest.raises(ValueError, match="gate"):
    model.apply_sequence(params, jnp.zeros((1, 1, 8, 8, 3)), gate_mode="gumbel")


# --------------------------------------------------------------------------- weights
def test_weight_file_round_trip_is_lossless(tmp_path):
  model = ifr.IFIRNN(cells=2, iterations=4, gated=True, **TINY)
  params = model.init(jax.random.key(11))
  path = ifr.save_weights(params, tmp_path / "w.safetensors", model=model)
  loaded = ifr.load_weights(path)
  jax.tree.map(np.testing.assert_array_equal, params, loaded)
  inferred, params2 = ifr.load_model(path)
  assert inferred == model
  jax.tree.map(np.testing.assert_array_equal, params, params2)
  state = ifr.to_torch_state_dict(params)
  assert state["cells.1.F_L.0.weight"].shape == (8 + 4, 6, 4, 4)  # ConvTranspose [in, out, kh, kw]
  assert state["cells.0.F_B.1.weight"].shape == (6, 4, 5, 5)       # Conv2d [out, in, kh, kw]
  assert state["gate.fc1.weight"].shape == (16, 4)                 # Linear [out, in]
  assert "cells.0.F_L.0.weight" not in state                       # C2: cell 1 has no F_L


def test_load_weights_refuses_another_model(tmp_path):
  path = ifr.save_weights(ifr.IFIRNN(cells=1, **TINY).init(jax.random.key(0)),
                          tmp_path / "c1.safetensors")
  with pytest.raises(ifr.WeightsError, match=r"c1\.safetensors.*C2H3.*missing"):
    ifr.load_weights(path, ifr.IFIRNN(cells=2, **TINY))
  with pytest.raises(ifr.WeightsError, match="shape"):
    ifr.load_weights(path, ifr.IFIRNN(cells=1, **dict(TINY, n3=10)))
  bad = tmp_path / "junk.safetensors"
  bad.write_bytes(b"not a weight file at all")
  with pytest.raises(ifr.WeightsError, match="junk.safetensors"):
    ifr.load_weights(bad)
  with pytest.raises(ifr.WeightsError, match="not found"):
    ifr.load_weights(tmp_path / "missing.safetensors")


def test_adaptive_inference_stops_each_sample_on_its_own_gate():
  """Greedy gate in a batch equals each sample run alone, with per-sample counts."""
  model = ifr.IFIRNN(cells=1, iterations=4, gated=True, **TINY)
  params = model.init(jax.random.key(12))
  # continue iff relu(-100 * sum of pooled h) > threshold: a gate that depends on content.
  params["gate"]["fc1"]["kernel"] = -100 * jnp.ones_like(params["gate"]["fc1"]["kernel"])
  params["gate"]["fc1"]["bias"] = jnp.zeros_like(params["gate"]["fc1"]["bias"])
  params["gate"]["fc2"]["kernel"] = jnp.zeros((16, 2)).at[0, 1].set(1.0)
  video = jnp.asarray(np.stack([_video((2, 12, 12, 3), seed=s) * scale
                                for s, scale in enumerate([0.05, 1.0, 0.3, 0.8])]))
  greedy = jax.jit(lambda p, v: model.apply_sequence(p, v, gate_mode="greedy"))
  found_mixed = False
  for threshold in np.linspace(0, 40, 201):
    params["gate"]["fc2"]["bias"] = jnp.array([threshold, 0.0])
    out, _, trace = greedy(params, video)
    counts = np.asarray(trace.iterations)
    if len(np.unique(counts)) > 1:
      found_mixed = True
      break
  assert found_mixed, "no threshold gave different iteration counts"
  for b in range(video.shape[0]):
    alone, _, alone_trace = greedy(params, video[b:b + 1])
    np.testing.assert_allclose(out[b], alone[0], atol=1e-6)
    np.testing.assert_array_equal(counts[:, b], alone_trace.iterations[:, 0])
