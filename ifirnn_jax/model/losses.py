"""Losses of the paper (docs/architecture.md "The gate and L_reg"), as pure functions."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ifirnn_jax.model.network import GateTrace

Array = jax.Array

TAU = 0.75      # target continue-rate of the gate
LAMBDA = 10.0   # weight of L_reg


def content_loss(output: Array, sharp: Array) -> Array:
  """L_content = 1/(T*C*H*W) sum_t ||L_t - S_t||^2, averaged over the batch.

  output, sharp: [B, T, H, W, 3] in [0, 1]. Per-pixel mean squared error.
  """
  diff = output.astype(jnp.float32) - sharp.astype(jnp.float32)
  return jnp.mean(jnp.square(diff))


def gate_regularizer(trace: GateTrace, tau: float = TAU) -> Array:
  """L_reg = (1/T) sum_t sum_i (E[g_t^i] - tau)^2.

  E averages the (straight-through) gate value g_t^i over the mini-batch samples still
  iterating at decision (t, i); a term with no such sample is dropped.
  trace.gate_values, trace.still_iterating: [T, N-1, B].
  """
  g, alive = trace.gate_values, trace.still_iterating
  num_frames = g.shape[0]
  count = jnp.sum(alive, axis=-1)                                   # [T, N-1]
  mean_g = jnp.sum(g * alive, axis=-1) / jnp.maximum(count, 1.0)    # E[g_t^i]
  terms = jnp.where(count > 0, jnp.square(mean_g - tau), 0.0)
  return jnp.sum(terms) / num_frames


def total_loss(output: Array, sharp: Array, trace: GateTrace | None,
               lam: float = LAMBDA, tau: float = TAU) -> tuple[Array, dict[str, Array]]:
  """L_total = L_content + lambda * L_reg (L_reg only for gated training)."""
  content = content_loss(output, sharp)
  terms = {"content_loss": content}
  if trace is None:
    return content, terms
  reg = gate_regularizer(trace, tau)
  terms["reg_loss"] = reg
  terms["mean_iterations"] = jnp.mean(trace.iterations)
  return content + lam * reg, terms
