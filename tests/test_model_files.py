"""Weight files and checkpoints reproduce the model; their fields are bounded.

Independent facts: a model reloaded from its file computes what the original computes
(compared output to output, one changed field at a time); the intra-frame loop at
inference is one rolled loop, so the compiled program does not grow with N.
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

import ifirnn_jax as ifr
from ifirnn_jax import export
from ifirnn_jax.storage import checkpoint
from ifirnn_jax.model.network import MAX_ITERATIONS, MAX_WIDTH, RUNTIME_FIELDS
from tests.tiny_models import tiny_params

BASE = ifr.IFIRNN(cells=1, iterations=2, n1=4, n2=6, n3=8, nh=4, num_resblocks=1,
                  gate_hidden=5)
# One value per output-changing field, each different from BASE's.
CHANGED = dict(cells=2, iterations=3, n1=5, n2=7, n3=9, nh=3, num_resblocks=2, gated=True,
               gate_hidden=6, residual_output=False)


def _video(seed=0):
  return np.random.default_rng(seed).uniform(size=(3, 12, 8, 3)).astype(np.float32)


def test_every_output_changing_field_is_described():
  all_fields = {f.name for f in dataclasses.fields(ifr.IFIRNN) if f.init}
  assert set(RUNTIME_FIELDS) <= all_fields
  assert set(BASE.description()) == all_fields - set(RUNTIME_FIELDS) == set(CHANGED)


@pytest.mark.parametrize("field", sorted(CHANGED))
def test_weight_file_reproduces_the_model_one_field_at_a_time(tmp_path, field):
  model = dataclasses.replace(BASE, **{field: CHANGED[field]})
  assert getattr(model, field) != getattr(BASE, field)
  params = tiny_params(model, seed=3)
  path = ifr.save_weights(params, tmp_path / "w.safetensors", model=model)
  loaded, loaded_params = ifr.load_model(path)
  assert loaded == model
  video = _video()
  np.testing.assert_array_equal(np.asarray(loaded.deblur(loaded_params, video)),
                                np.asarray(model.deblur(params, video)))


def test_residual_output_false_survives_export_from_a_workdir(tmp_path):
  model = dataclasses.replace(BASE, residual_output=False)
  params = tiny_params(model, seed=4)
  run = checkpoint.RunCheckpoints(tmp_path / "run", keep=1)
  run.save(7, params, {"step": jnp.asarray(7)}, model)
  run.wait()
  run.close()
  out = tmp_path / "exported.safetensors"
  assert export.main(["--workdir", str(tmp_path / "run"), "--out", str(out)]) == 0
  from_workdir, workdir_params = ifr.load_checkpoint(tmp_path / "run")
  from_file, file_params = ifr.load_model(out)
  assert from_workdir == from_file == model
  video = _video(1)
  expected = np.asarray(model.deblur(params, video))
  np.testing.assert_array_equal(np.asarray(from_file.deblur(file_params, video)), expected)
  np.testing.assert_array_equal(np.asarray(from_workdir.deblur(workdir_params, video)), expected)
  # Without the residual, the output is far from B_t + something small.
  with_residual = dataclasses.replace(model, residual_output=True)
  assert np.abs(np.asarray(with_residual.deblur(params, video)) - expected).max() > 0.1


def _write_with_metadata(path, model, description):
  state = ifr.to_torch_state_dict(tiny_params(model))
  save_file(state, str(path), metadata={"format": "ifirnn-jax/1",
                                        "model": json.dumps(description)})
  return path


def test_an_older_file_without_a_field_gets_the_default(tmp_path):
  description = BASE.description()
  del description["residual_output"], description["iterations"]
  loaded, _ = ifr.load_model(_write_with_metadata(tmp_path / "old.safetensors", BASE,
                                                  description))
  assert loaded.residual_output is True and loaded.iterations == 3
  assert loaded == dataclasses.replace(BASE, iterations=3)


@pytest.mark.parametrize("field,value,message", [
    ("iterations", 100000, f"iterations must be an integer in 1..{MAX_ITERATIONS}, got 100000"),
    ("iterations", 0, f"iterations must be an integer in 1..{MAX_ITERATIONS}, got 0"),
    ("iterations", "3", "iterations must be an integer"),
    ("residual_output", "no", "residual_output must be true or false"),
])
def test_untrusted_metadata_is_bounded_naming_the_file(tmp_path, field, value, message):
  path = _write_with_metadata(tmp_path / "hostile.safetensors", BASE,
                              dict(BASE.description(), **{field: value}))
  with pytest.raises(ifr.WeightsError) as error:
    ifr.load_model(path)
  assert str(path) in str(error.value) and message in str(error.value)


def test_widths_and_resblocks_are_bounded():
  with pytest.raises(ValueError, match=f"n1 must be an integer in 1..{MAX_WIDTH}, got 4096"):
    ifr.IFIRNN(n1=4096)
  with pytest.raises(ValueError, match="num_resblocks must be an integer in 0..64, got 65"):
    ifr.IFIRNN(num_resblocks=65)
  params = tiny_params(BASE)
  with pytest.raises(ValueError, match=f"1..{MAX_ITERATIONS}"):
    BASE.deblur(params, _video(), iterations=MAX_ITERATIONS + 1)


def test_rolled_iterations_equal_the_unrolled_loop():
  model = dataclasses.replace(BASE, cells=2, iterations=5)
  params = tiny_params(model, seed=5)
  video = _video(2)[None]
  rolled, h_rolled, _ = jax.jit(model.apply_sequence)(params, video)
  unrolled, h_unrolled, _ = jax.jit(
      lambda p, v: model.apply_sequence(p, v, unroll_iterations=True))(params, video)
  np.testing.assert_allclose(np.asarray(rolled), np.asarray(unrolled), rtol=0, atol=1e-6)
  np.testing.assert_allclose(np.asarray(h_rolled), np.asarray(h_unrolled), rtol=0, atol=1e-6)
  # The rolled loop is reverse-mode differentiable too, with the same gradients.
  grads = [jax.jit(jax.grad(lambda p, u=u: jnp.sum(model.apply_sequence(
      p, video, unroll_iterations=u)[0] ** 2)))(params) for u in (False, True)]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), *grads)


def _program_size(model, params, video, iterations):
  lowered = jax.jit(lambda p, v: model.deblur(p, v, iterations=iterations)).lower(params, video)
  return len(lowered.as_text())


def test_inference_program_does_not_grow_with_iterations():
  model = dataclasses.replace(BASE, cells=2)
  params, video = tiny_params(model), _video()
  small, large = (_program_size(model, params, video, n) for n in (4, MAX_ITERATIONS))
  assert large <= 1.05 * small, (small, large)
  # The training form is unrolled: its program grows with N (what the rolled one avoids).
  def unrolled(n):
    return len(jax.jit(lambda p, v: model.apply_sequence(
        p, v, iterations=n, unroll_iterations=True)[0]).lower(params, video[None]).as_text())
  assert unrolled(32) > 2 * unrolled(4)
