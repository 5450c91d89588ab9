"""The training recipe as the paper's configs build it (configs/gopro_*, dvd_*, bsd_*, not
the demo's or `:tiny`), against hand-computed values of docs/training.md and
docs/architecture.md: L_total = L_content + lambda * L_reg, the learning rate halved
every 200 epochs counted in optimizer updates, Adam with no clipping, and a few real
updates that lower the loss.
"""

import functools
import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ifirnn_jax as ifr
from ifirnn_jax import train
from ifirnn_jax.training import default_config
from ifirnn_jax.model.network import GateTrace

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PAPER_CONFIGS = sorted(p for p in CONFIGS.glob("*.py") if p.stem != "demo")


def _paper_config(stem: str):
  """The full config of configs/<stem>.py (get_config() with no argument)."""
  spec = importlib.util.spec_from_file_location(stem, CONFIGS / f"{stem}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


# ----------------------------------------------------------------- L_total


def test_total_loss_adds_lambda_times_the_regularizer_by_hand():
  config = _paper_config("gopro_c2h3_reg")
  assert (config.reg_lambda, config.reg_tau) == (10.0, 0.75)  # the paper's lambda, tau
  # B = 2 clips, T = 2 frames of 1x2 pixels; N - 1 = 2 gate decisions per frame.
  output = np.zeros((2, 2, 1, 2, 3), np.float32)
  sharp = np.zeros_like(output)
  sharp[0, 1, 0, 1, 2] = 0.6
  sharp[1, 0, 0, 0, 0] = -0.2
  g = np.array([[[1, 1], [0, 1]],       # t = 0: decisions i = 2, 3; samples b = 0, 1
                [[1, 0], [1, 0]]], np.float32)
  alive = np.array([[[1, 1], [1, 1]],
                    [[1, 1], [1, 0]]], np.float32)
  trace = GateTrace(jnp.asarray(g), jnp.asarray(alive), jnp.full((2, 2), 2.0))
  # L_content: mean over 2*2*1*2*3 = 24 values of (0.36 + 0.04).
  content = (0.6**2 + 0.2**2) / 24
  # L_reg = (1/T) sum_t sum_i (E[g_t^i] - tau)^2, E over the samples still iterating:
  # t=0: E = 1 and 1/2; t=1: E = 1/2 and 1 (only sample 0 still iterates).
  reg = ((1 - 0.75)**2 + (0.5 - 0.75)**2 + (0.5 - 0.75)**2 + (1 - 0.75)**2) / 2
  loss, terms = ifr.total_loss(jnp.asarray(output), jnp.asarray(sharp), trace,
                               config.reg_lambda, config.reg_tau)
  np.testing.assert_allclose(float(terms["content_loss"]), content, rtol=1e-6)
  np.testing.assert_allclose(float(terms["reg_loss"]), reg, rtol=1e-6)
  np.testing.assert_allclose(float(loss), content + 10.0 * reg, rtol=1e-6)
  # Without a gate (non-"-reg" models) the loss is L_content alone.
  plain, _ = ifr.total_loss(jnp.asarray(output), jnp.asarray(sharp), None)
  np.testing.assert_allclose(float(plain), content, rtol=1e-6)


# ----------------------------------------------------------------- learning rate

# Hand-computed from docs/training.md: steps per epoch = ceil(frames / (4 clips x 12)),
# GOPRO ceil(2103 / 48) = 44, DVD ceil(5708 / 48) = 119, BSD 6000 / 48 = 125.
# GOPRO and BSD: halved every 200 epochs for 500; DVD fine-tuning: every 50 for 100.
SCHEDULES = {
    "gopro": dict(halve_every=200 * 44, total=500 * 44),     # 8,800 and 22,000
    "dvd": dict(halve_every=50 * 119, total=100 * 119),      # 5,950 and 11,900
    "bsd": dict(halve_every=200 * 125, total=500 * 125),     # 25,000 and 62,500
}


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda p: p.stem)
def test_paper_learning_rate_halves_at_the_hand_computed_update(path):
  config = _paper_config(path.stem)
  expected = SCHEDULES[path.stem.split("_")[0]]
  halve = expected["halve_every"]
  assert default_config.num_train_steps(config) == expected["total"]
  lr_fn = train.create_learning_rate_fn(config)
  # lr_fn(state.step): state.step = k during update k + 1 (k = 0 is the first update).
  for step, lr in [(0, 1e-4), (halve - 1, 1e-4), (halve, 5e-5), (2 * halve - 1, 5e-5),
                   (2 * halve, 2.5e-5)]:
    np.testing.assert_allclose(float(lr_fn(step)), lr, rtol=1e-6, err_msg=f"step {step}")


def _adam_update_by_hand(grad: np.ndarray, lr: float, count: int) -> np.ndarray:
  """Adam's (b1 0.9, b2 0.999, eps 1e-8) update from zero moments after `count` earlier
  updates: m = 0.1 g, v = 0.001 g^2, bias-corrected with the (count + 1)-th powers."""
  m_hat = 0.1 * grad / (1 - 0.9**(count + 1))
  v_hat = 0.001 * grad**2 / (1 - 0.999**(count + 1))
  return -lr * m_hat / (np.sqrt(v_hat) + 1e-8)


def test_gopro_optimizer_applies_the_halved_rate_from_update_8800():
  """The optimizer's own update count, not only the logged lr_fn, halves the rate at
  8,800 GOPRO updates (200 epochs x 44)."""
  config = _paper_config("gopro_c2h4")
  tx = train.create_optimizer(config)
  params = {"w": jnp.array([3.0, -4.0, 0.5])}
  grad = {"w": jnp.array([0.3, -2.0, 1e-3])}
  state = tx.init(params)
  for count, lr in [(8799, 1e-4), (8800, 5e-5)]:
    at_count = optax.tree_utils.tree_set(state, count=jnp.asarray(count, jnp.int32))
    updates, _ = tx.update(grad, at_count, params)
    np.testing.assert_allclose(np.asarray(updates["w"]),
                               _adam_update_by_hand(np.asarray(grad["w"], np.float64),
                                                    lr, count), rtol=1e-5)


# ----------------------------------------------------------------- no clipping


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda p: p.stem)
def test_paper_optimizer_is_plain_adam(path):
  """grad_clip_norm 0 means no clipping: the first update is Adam's, -lr * g / |g|."""
  config = _paper_config(path.stem)
  assert config.grad_clip_norm == 0 and config.learning_rate == 1e-4
  params = {"a": jnp.zeros((2,)), "b": jnp.ones((1, 2))}
  grads = {"a": jnp.array([3.0, -4.0]), "b": jnp.array([[0.02, -50.0]])}  # norm ~50
  tx = train.create_optimizer(config)
  updates, _ = tx.update(grads, tx.init(params), params)
  reference = optax.adam(1e-4)
  expected, _ = reference.update(grads, reference.init(params), params)
  for name in params:
    by_hand = _adam_update_by_hand(np.asarray(grads[name], np.float64), 1e-4, 0)
    np.testing.assert_allclose(np.asarray(updates[name]), by_hand, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(updates[name]), np.asarray(expected[name]),
                               rtol=1e-6)


# ----------------------------------------------------------------- a few real updates


def test_paper_config_at_tiny_sizes_learns_a_fixed_batch():
  """gopro_c1h1's recipe (Adam 1e-4, no clipping, L_content), with tiny widths, crops,
  clips and batch: three updates change the weights and lower the loss on one batch."""
  config = _paper_config("gopro_c1h1")
  config.model.update(n1=4, n2=6, n3=8, nh=4, num_resblocks=1, conv_impl="xla")
  config.update(clip_length=2, crop_size=8, batch_size=2)
  model = train.create_model(config)
  tx = train.create_optimizer(config)
  lr_fn = train.create_learning_rate_fn(config)
  step = jax.jit(functools.partial(
      train.train_step, model=model, tx=tx, lr_fn=lr_fn, reg_lambda=config.reg_lambda,
      reg_tau=config.reg_tau))
  rng = np.random.default_rng(0)
  sharp = rng.uniform(size=(2, 2, 8, 8, 3)).astype(np.float32)
  batch = {"blur": jnp.asarray(0.5 * sharp + 0.25), "sharp": jnp.asarray(sharp)}
  params = train.initial_params(config, model, jax.random.key(config.seed))
  state = train.init_train_state(params, tx)
  first = jax.tree.map(np.asarray, params)
  losses = []
  for _ in range(4):
    state, metrics = step(state, batch, jax.random.key(0), jnp.zeros((), jnp.int32))
    losses.append(float(metrics["loss"]))
    assert float(metrics["learning_rate"]) == pytest.approx(1e-4)
  # losses[k] is the loss before update k + 1: three updates, three lower losses.
  assert losses[0] > losses[1] > losses[2] > losses[3], losses
  moved = [np.abs(np.asarray(b) - a).max()
           for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(state.params))]
  # Adam moves each parameter by about lr per update when its gradient keeps its sign.
  assert max(moved) == pytest.approx(4e-4, rel=0.05)
  assert float(np.median(moved)) == pytest.approx(4e-4, rel=0.1)
