"""IFI-RNN (Nah, Son, Lee, CVPR 2019): Flax cells driven by pure-JAX recurrences.

The cells are Flax modules used as pure functions (`Cell.apply(params, ..., method=...)`);
the recurrence over frames is a `jax.lax.scan`, and the intra-frame iterations are a
fixed-length loop (masked by the straight-through Gumbel gate when training "-reg"
models). F_B and F_L do not feed the recurrence, so they run once per frame, batched
over the whole clip outside the sequential scan; only F_R and F_h are sequential.
See docs/architecture.md (layer table, Algorithm 1, the gate, PyTorch weight names).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from typing import Any, NamedTuple

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from data_pipeline import pixels
from ifirnn_jax.model import platforms
from ifirnn_jax.model.layers import Conv, ConvTranspose, ResBlock, torch_fan_in, torch_init_bound

Array = jax.Array
Params = dict[str, Any]

GATE_MODES = (None, "gumbel", "greedy")

# Bounds on the fields that size the network: a weight file's metadata and the command
# line are untrusted, and these keep one model within a few GB to compile and run.
MAX_ITERATIONS = 64    # N, intra-frame iterations
MAX_WIDTH = 1024       # n1, n2, n3, nh, gate_hidden (channels)
MAX_RESBLOCKS = 64     # num_resblocks
COMPUTE_DTYPES = ("float32", "bfloat16")
# The spec's widths (docs/architecture.md): F_B at full, 1/2 and 1/4 resolution, the hidden
# state, F_R's residual blocks, and the gate's hidden Dense layer.
SPEC_WIDTHS = dict(n1=20, n2=40, n3=60, nh=20, num_resblocks=6, gate_hidden=16)
TRANSPOSED_CONV_LAYERS = ("F_L_0", "F_L_1")  # the 4x4 stride-2 ConvTranspose layers

# IFIRNN fields that choose how the network runs, not what it computes (up to float
# rounding; compute_dtype sets the precision). Every other field changes the outputs
# and is stored in weight files and checkpoints (`IFIRNN.description`).
RUNTIME_FIELDS = ("scan_unroll", "remat", "compute_dtype", "conv_impl")


class Cell(nn.Module):
  """One IFI-RNN cell: F_B (blur features), F_R (fusion), F_h (hidden), optional F_L."""

  n1: int
  n2: int
  n3: int
  nh: int
  num_resblocks: int
  with_latent: bool = True
  conv_impl: str = "xla"  # one of layers.LAYER_CONV_IMPLS

  def setup(self):
    fused, impl = self.n3 + self.nh, self.conv_impl
    self.F_B = [Conv(self.n1, 5, impl=impl), Conv(self.n2, 5, stride=2, impl=impl),
                Conv(self.n3, 5, stride=2, impl=impl)]
    self.F_R = [ResBlock(fused, impl=impl) for _ in range(self.num_resblocks)]
    self.F_h = [Conv(self.nh, 3, impl=impl), ResBlock(self.nh, impl=impl),
                Conv(self.nh, 3, impl=impl)]
    if self.with_latent:
      self.F_L = [ConvTranspose(self.n2, impl=impl), ConvTranspose(self.n1, impl=impl),
                  Conv(3, 5, impl=impl)]

  def blur_features(self, frames: Array) -> Array:
    """F_B: frames [N, H, W, 3] -> blur_features [N, H/4, W/4, n3]."""
    x = frames
    for conv in self.F_B:
      x = nn.relu(conv(x))
    return x

  def fuse(self, blur_features: Array, hidden: Array) -> Array:
    """F_R: concat(f_B, h) [N, H/4, W/4, n3 + nh] through the ResBlocks."""
    x = jnp.concatenate([blur_features, hidden], axis=-1)
    for block in self.F_R:
      x = block(x)
    return x

  def next_hidden(self, fused: Array) -> Array:
    """F_h: fused [N, H/4, W/4, n3 + nh] -> hidden [N, H/4, W/4, nh]."""
    x = self.F_h[0](fused)
    x = self.F_h[1](x)
    return self.F_h[2](x)

  def latent_residual(self, fused: Array) -> Array:
    """F_L: fused [N, H/4, W/4, n3 + nh] -> residual frame [N, H, W, 3]."""
    x = nn.relu(self.F_L[0](fused))
    x = nn.relu(self.F_L[1](x))
    return self.F_L[2](x)

  def __call__(self, frames: Array, hidden: Array) -> Array:
    """Touches every layer once (used only to initialise the parameters)."""
    fused = self.fuse(self.blur_features(frames), hidden)
    new_hidden = self.next_hidden(fused)
    return self.latent_residual(fused) if self.with_latent else new_hidden


class Gate(nn.Module):
  """g(h): global average pool of h -> Dense(16) -> ReLU -> Dense(2): logits [stop, continue]."""

  hidden_units: int = 16

  @nn.compact
  def __call__(self, hidden: Array) -> Array:
    pooled = jnp.mean(hidden, axis=(-3, -2))
    x = nn.relu(nn.Dense(self.hidden_units, name="fc1")(pooled))
    return nn.Dense(2, name="fc2")(x)


def straight_through_gumbel(key: Array, logits: Array, temperature: float = 1.0) -> Array:
  """Hard one-hot sample forward, Gumbel-softmax gradient backward. logits [B, 2] -> [B, 2].

  Written `hard + (soft - stop_gradient(soft))` so the forward value is exactly 0 or 1.
  """
  gumbel = jax.random.gumbel(key, logits.shape, logits.dtype)
  soft = jax.nn.softmax((logits + gumbel) / temperature, axis=-1)
  hard = jax.nn.one_hot(jnp.argmax(soft, axis=-1), logits.shape[-1], dtype=soft.dtype)
  return hard + (soft - jax.lax.stop_gradient(soft))


class GateTrace(NamedTuple):
  """What the gate did, for L_reg and the iteration statistics.

  gate_values: [T, N-1, B] straight-through g_t^i (exactly 0/1 forward) for decisions i = 2..N.
  still_iterating: [T, N-1, B] m_{i-1}: 1 where the sample was still iterating at that decision.
  iterations: [T, B] number of iterations that ran for each frame and sample.
  """

  gate_values: Array
  still_iterating: Array
  iterations: Array


def _pad_amount(size: int) -> int:
  return (-size) % 4


def pad_to_multiple_of_4(frames: Array) -> Array:
  """Reflect-pads the bottom and right of [..., H, W, 3] so H and W are multiples of 4."""
  ph, pw = _pad_amount(frames.shape[-3]), _pad_amount(frames.shape[-2])
  if ph == 0 and pw == 0:
    return frames
  pads = [(0, 0)] * (frames.ndim - 3) + [(0, ph), (0, pw), (0, 0)]
  return jnp.pad(frames, pads, mode="reflect")


@dataclasses.dataclass(frozen=True)
class IFIRNN:
  """The IFI-RNN video deblurring network of the spec (C1HN / C2HN, optional gate).

  Attributes:
    cells: 1 (C1: one cell with F_L) or 2 (C2: cell 1 without F_L, cell 2 with it).
    iterations: N, intra-frame iterations of the (last) cell; any N >= 1 at run time.
    n1, n2, n3: F_B widths at full, 1/2 and 1/4 resolution.
    nh: hidden-state channels (at 1/4 resolution).
    num_resblocks: ResBlocks in F_R.
    gated: has the "-reg" gate (trained with the stochastic gate; removed at inference).
    gate_hidden: width of the gate's hidden Dense layer.
    residual_output: L_t = B_t + F_L(f_R) (global residual).
    scan_unroll: `lax.scan` unroll factor over frames; an int >= 1, True for fully
      unrolled, or 0 (auto per platform, `platforms.frame_scan_unroll`; XLA:CPU's
      backward pass is much faster unrolled when the loop's convs are XLA's own).
    remat: rematerialise each frame step in the backward pass (bounds training memory).
    compute_dtype: 'float32' or 'bfloat16' (activations and weights in the forward pass;
      parameters stay float32).
    conv_impl: 3x3 convolution algorithm: 'auto' (default: Winograd F(4x4, 3x3) in JAX,
      layers.py, for float32 on CPU where it pays; XLA's convolution, i.e. cuDNN, on
      GPU), 'xla' or 'winograd'; same parameters. On CPU 'auto' is faster for inference
      and training, at the price of longer compiles and about twice the temporaries
      (docs/benchmarks.md). 'auto' is chosen for the platform the computation is
      lowered for, never from JAX's default backend (platforms.py).
  """

  cells: int = 2
  iterations: int = 3
  n1: int = SPEC_WIDTHS["n1"]
  n2: int = SPEC_WIDTHS["n2"]
  n3: int = SPEC_WIDTHS["n3"]
  nh: int = SPEC_WIDTHS["nh"]
  num_resblocks: int = SPEC_WIDTHS["num_resblocks"]
  gated: bool = False
  gate_hidden: int = SPEC_WIDTHS["gate_hidden"]
  residual_output: bool = True
  scan_unroll: int | bool = 1
  remat: bool = False
  compute_dtype: str = "float32"
  conv_impl: str = "auto"

  def __post_init__(self):
    if isinstance(self.cells, (bool, float)) or self.cells not in (1, 2):
      raise ValueError(f"cells must be 1 or 2 (C1 or C2), got {self.cells!r}")
    object.__setattr__(self, "cells", int(self.cells))
    for name, maximum in dict(iterations=MAX_ITERATIONS, n1=MAX_WIDTH, n2=MAX_WIDTH, n3=MAX_WIDTH,
                              nh=MAX_WIDTH, gate_hidden=MAX_WIDTH,
                              num_resblocks=MAX_RESBLOCKS).items():  # any integer type -> int
      object.__setattr__(self, name, check_count(name, getattr(self, name), maximum,
                                                  minimum=int(name != "num_resblocks")))
    for name in ("gated", "residual_output", "remat"):
      if not isinstance(getattr(self, name), bool):
        raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
    if self.compute_dtype not in COMPUTE_DTYPES:
      raise ValueError(f"compute_dtype must be one of {COMPUTE_DTYPES}, "
                       f"got {self.compute_dtype!r}")
    platforms.conv_impls(self.conv_impl, self.compute_dtype)  # ValueError if unknown

  # ----------------------------------------------------------------- structure
  @property
  def name(self) -> str:
    """The paper's name, e.g. 'C2H3' or 'C2H3-reg'."""
    return f"C{self.cells}H{self.iterations}" + ("-reg" if self.gated else "")

  def shape_fields(self) -> dict[str, Any]:
    """The fields that fix the parameter shapes (stored in weight files)."""
    return dict(cells=self.cells, n1=self.n1, n2=self.n2, n3=self.n3, nh=self.nh,
                num_resblocks=self.num_resblocks, gated=self.gated,
                gate_hidden=self.gate_hidden)

  def description(self) -> dict[str, Any]:
    """Every field that changes the outputs (all but RUNTIME_FIELDS), as JSON values.

    Stored in weight files and checkpoints, so a reloaded model computes what this one
    does; a field missing from an older file takes the dataclass default.
    """
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
            if f.init and f.name not in RUNTIME_FIELDS}

  @classmethod
  def from_fields(cls, fields: dict[str, Any]) -> IFIRNN:
    """The IFIRNN of the constructor `fields` in `fields` (other keys, e.g. from a newer
    file's description, are ignored); ValueError or TypeError for bad values."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**{k: v for k, v in fields.items() if k in names})

  def cell_modules(self, layer_impl: str = "xla") -> list[Cell]:
    """The cells, convolutions run as `layer_impl` (any gives the same parameters)."""
    return [Cell(self.n1, self.n2, self.n3, self.nh, self.num_resblocks,
                 with_latent=(k == self.cells - 1), conv_impl=layer_impl)
            for k in range(self.cells)]

  def gate_module(self) -> Gate:
    return Gate(self.gate_hidden)

  def init(self, key: Array) -> Params:
    """Parameters {'cells_0': ..., ['cells_1': ...], ['gate': ...]}, float32."""
    return _init(self, key)

  def _init_params(self, key: Array) -> Params:
    """PyTorch's default init (layers.torch_init_bound) of every weight and bias.

    Drawn as one uniform vector sliced per parameter: one RNG call keeps XLA's compile
    of `init` short (a threefry per parameter compiles slowly on CPU).
    """
    frames = jnp.zeros((1, 8, 8, 3), jnp.float32)
    hidden = jnp.zeros((1, 2, 2, self.nh), jnp.float32)

    def layer_shapes(dummy_key):
      shapes = {f"cells_{k}": cell.init(dummy_key, frames, hidden)["params"]
                for k, cell in enumerate(self.cell_modules())}
      if self.gated:
        shapes["gate"] = self.gate_module().init(dummy_key, hidden)["params"]
      return shapes

    flat = traverse_util.flatten_dict(jax.eval_shape(layer_shapes, jax.random.key(0)))
    total = sum(math.prod(s.shape) for s in flat.values())
    uniform = jax.random.uniform(key, (total,), jnp.float32, -1.0, 1.0)
    params, offset = {}, 0
    for path in sorted(flat):
      shape = flat[path].shape
      bound = torch_init_bound(torch_fan_in(flat[path[:-1] + ("kernel",)].shape,
                                            transposed=path[-2] in TRANSPOSED_CONV_LAYERS))
      size = math.prod(shape)
      params[path] = uniform[offset:offset + size].reshape(shape) * bound
      offset += size
    return traverse_util.unflatten_dict(params)

  def initial_state(self, height: int, width: int, batch: int | None = None) -> Array:
    """h_0 = 0 for frames of height x width: [(B,) ceil4(H)/4, ceil4(W)/4, nh]."""
    shape = ((height + _pad_amount(height)) // 4, (width + _pad_amount(width)) // 4, self.nh)
    if batch is not None:
      shape = (batch,) + shape
    return jnp.zeros(shape, self.compute_dtype)

  # ----------------------------------------------------------------- forward
  def apply_sequence(self, params: Params, blur: Array, *, hidden: Array | None = None,
                     iterations: int | None = None, gate_mode: str | None = None,
                     gate_key: Array | None = None, unroll_iterations: bool = False,
                     ) -> tuple[Array, Array, GateTrace | None]:
    """Runs the recurrence over a clip whose H and W are multiples of 4.

    Args:
      params: from `init` or `load_weights`.
      blur: B_t, [B, T, H, W, 3] float in [0, 1], H and W multiples of 4.
      hidden: h_{t-1} before the first frame, [B, H/4, W/4, nh]; None means h_0 = 0.
      iterations: N for this call (default `self.iterations`).
      gate_mode: None (fixed N, the paper's inference), 'gumbel' (training of "-reg"
        models: straight-through Gumbel gate, needs `gate_key`), or 'greedy'
        (adaptive inference: continue while p(continue) > 0.5).
      gate_key: jax.random key for the Gumbel noise (gate_mode='gumbel').
      unroll_iterations: without a gate, trace the N iterations as straight-line code
        (training: XLA:CPU's backward pass is faster unrolled) instead of a rolled
        `lax.fori_loop`, whose compile time and program size do not grow with N.
        Same outputs; the Gumbel gate's masked loop is always unrolled, the greedy
        gate's always a `lax.while_loop`.

    Returns:
      (L_t [B, T, H, W, 3] float32, h_T [B, H/4, W/4, nh], GateTrace or None).
    """
    num_iterations = check_count("iterations",
                                  self.iterations if iterations is None else iterations)
    if gate_mode not in GATE_MODES:
      raise ValueError(f"gate_mode must be one of {GATE_MODES}, got {gate_mode!r}")
    if gate_mode is not None and not self.gated:
      raise ValueError(f"gate_mode={gate_mode!r} needs a gated ('-reg') model; {self.name} has no gate")
    if gate_mode == "gumbel" and gate_key is None:
      raise ValueError("gate_mode='gumbel' needs a gate_key")
    b, t, h, w, _ = blur.shape
    if h % 4 or w % 4:
      raise ValueError(f"apply_sequence needs H and W multiples of 4, got {h}x{w}; use deblur()")
    on_cpu, elsewhere = platforms.choices(self.conv_impl, self.compute_dtype, self.scan_unroll,
                                          (b, h // 4, w // 4, self.n3 + self.nh))
    output, final_hidden, trace = platforms.per_platform(
        self._run_sequence, on_cpu, elsewhere, params, blur, hidden, gate_key,
        num_iterations=num_iterations, gate_mode=gate_mode, unroll_iterations=unroll_iterations)
    return output, final_hidden, (GateTrace(*trace) if gate_mode is not None else None)

  def _run_sequence(self, layer_impl, scan_unroll, params, blur, hidden, gate_key, *,
                    num_iterations, gate_mode, unroll_iterations):
    """apply_sequence run as `layer_impl`, unrolled by `scan_unroll`; GateTrace as a tuple."""
    b, t, h, w, _ = blur.shape
    dtype = jnp.dtype(self.compute_dtype)
    params = jax.tree.map(lambda p: p.astype(dtype), params)
    cells = self.cell_modules(layer_impl)
    frames = blur.astype(dtype).reshape(b * t, h, w, 3)

    def time_major(x):  # [B*T, ...] -> [T, B, ...]
      return jnp.swapaxes(x.reshape((b, t) + x.shape[1:]), 0, 1)

    # F_B once per frame, batched over the clip (it does not feed the recurrence).
    blur_features = [time_major(cell.apply({"params": params[f"cells_{k}"]}, frames,
                                           method=Cell.blur_features))
                     for k, cell in enumerate(cells)]
    if hidden is None:
      hidden = jnp.zeros((b, h // 4, w // 4, self.nh), dtype)
    hidden = hidden.astype(dtype)

    def apply_cell(k, method, *args):
      return cells[k].apply({"params": params[f"cells_{k}"]}, *args, method=method)

    last = self.cells - 1

    def frame_step(state, inputs):
      f_b, frame_index = inputs
      h_prev = state
      if self.cells == 2:  # cell 1 runs once per frame
        h_prev = apply_cell(0, Cell.next_hidden, apply_cell(0, Cell.fuse, f_b[0], h_prev))
      fused, h_new, trace = self._iterate(
          lambda hid: apply_cell(last, Cell.fuse, f_b[last], hid),
          lambda fu: apply_cell(last, Cell.next_hidden, fu),
          h_prev, num_iterations, params.get("gate"), gate_mode,
          None if gate_key is None else jax.random.fold_in(gate_key, frame_index),
          unroll_iterations)
      return h_new, (fused, trace)

    if self.remat:
      frame_step = jax.checkpoint(frame_step)
    final_hidden, (fused, trace) = jax.lax.scan(
        frame_step, hidden, (blur_features, jnp.arange(t)), unroll=scan_unroll)

    # F_L once per frame, batched over the clip.
    fused = jnp.swapaxes(fused, 0, 1).reshape((b * t,) + fused.shape[2:])
    residual = apply_cell(last, Cell.latent_residual, fused)
    output = frames + residual if self.residual_output else residual
    output = output.reshape(b, t, h, w, 3).astype(jnp.float32)
    return output, final_hidden, (tuple(trace) if gate_mode is not None else None)

  def _iterate(self, fuse, next_hidden, hidden, num_iterations, gate_params, gate_mode, key,
               unroll=False):
    """The N intra-frame iterations of the last cell; masked by the gate when one is used.

    m_1 = 1; before iteration i (2..N): m_i = m_{i-1} * g(h^{i-1});
    h^i = m_i * F_h(F_R(f_B, h^{i-1})) + (1 - m_i) * h^{i-1} (f_R likewise).
    """
    fused = fuse(hidden)
    hidden = next_hidden(fused)
    if gate_mode is None:
      def iteration(_, carry):
        fused = fuse(carry[1])
        return fused, next_hidden(fused)

      if unroll:
        for i in range(1, num_iterations):
          fused, hidden = iteration(i, (fused, hidden))
      elif num_iterations > 1:  # static bounds: a scan, reverse-mode differentiable
        fused, hidden = jax.lax.fori_loop(1, num_iterations, iteration, (fused, hidden))
      return fused, hidden, None

    gate = self.gate_module()
    if gate_mode == "greedy":
      return self._iterate_greedy(fuse, next_hidden, fused, hidden, num_iterations,
                                  lambda h: gate.apply({"params": gate_params}, h))
    batch = hidden.shape[0]
    mask = jnp.ones((batch,), hidden.dtype)
    gate_values, still_iterating = [], []
    for i in range(1, num_iterations):
      logits = gate.apply({"params": gate_params}, hidden).astype(jnp.float32)
      g = straight_through_gumbel(jax.random.fold_in(key, i), logits)[:, 1]
      g = g.astype(hidden.dtype)
      still_iterating.append(jax.lax.stop_gradient(mask))
      gate_values.append(g)
      mask = mask * g
      candidate_fused = fuse(hidden)
      candidate_hidden = next_hidden(candidate_fused)
      m = mask[:, None, None, None]
      fused = m * candidate_fused + (1 - m) * fused
      hidden = m * candidate_hidden + (1 - m) * hidden
    if num_iterations > 1:
      gate_values = jnp.stack(gate_values).astype(jnp.float32)
      still_iterating = jnp.stack(still_iterating).astype(jnp.float32)
    else:
      gate_values = still_iterating = jnp.zeros((0, batch), jnp.float32)
    iterations = 1.0 + jnp.sum(jax.lax.stop_gradient(gate_values * still_iterating), axis=0)
    return fused, hidden, (gate_values, still_iterating, iterations)

  @staticmethod
  def _iterate_greedy(fuse, next_hidden, fused, hidden, num_iterations, gate_logits):
    """Adaptive inference: a `lax.while_loop` that really stops early.

    Before iteration i, each sample continues while p(continue) > 0.5; the loop ends
    once no sample of the batch continues (or after N iterations), so easy frames
    cost fewer F_R / F_h passes. Same results as the masked loop with hard gates.
    """
    batch, decisions = hidden.shape[0], num_iterations - 1
    zeros = jnp.zeros((decisions, batch), jnp.float32)
    if decisions == 0:
      return fused, hidden, (zeros, zeros, jnp.ones((batch,), jnp.float32))

    def decide(i, hidden, mask, gate_values, still_iterating):
      """The gate before iteration i (2..N), recorded at row i - 2."""
      logits = gate_logits(hidden).astype(jnp.float32)
      g = (logits[:, 1] > logits[:, 0]).astype(jnp.float32)
      gate_values = gate_values.at[i - 2].set(g, mode="drop")
      still_iterating = still_iterating.at[i - 2].set(mask, mode="drop")
      return jnp.where(i <= num_iterations, mask * g, 0.0), gate_values, still_iterating

    def keep_going(carry):
      i, _, _, mask, _, _ = carry
      return (i <= num_iterations) & jnp.any(mask > 0)

    def iteration(carry):
      i, fused, hidden, mask, gate_values, still_iterating = carry
      candidate_fused = fuse(hidden)
      candidate_hidden = next_hidden(candidate_fused)
      m = mask.astype(hidden.dtype)[:, None, None, None]
      fused = m * candidate_fused + (1 - m) * fused
      hidden = m * candidate_hidden + (1 - m) * hidden
      mask, gate_values, still_iterating = decide(i + 1, hidden, mask, gate_values,
                                                  still_iterating)
      return i + 1, fused, hidden, mask, gate_values, still_iterating

    mask, gate_values, still_iterating = decide(
        2, hidden, jnp.ones((batch,), jnp.float32), zeros, zeros)
    _, fused, hidden, _, gate_values, still_iterating = jax.lax.while_loop(
        keep_going, iteration, (2, fused, hidden, mask, gate_values, still_iterating))
    iterations = 1.0 + jnp.sum(gate_values * still_iterating, axis=0)
    return fused, hidden, (gate_values, still_iterating, iterations)

  # ----------------------------------------------------------------- user API
  def deblur(self, params: Params, video: Array, iterations: int | None = None,
             adaptive: bool = False) -> Array:
    """Deblurs a whole clip. video [T, H, W, 3] or [B, T, H, W, 3], any H, W.

    The video is float in [0, 1], uint8 (divided by 255) or uint16 (divided by 65535);
    ValueError for other dtypes, NaN or infinite values, or floats outside [0, 1]
    (not checked on traced values, i.e. when called inside `jax.jit`).
    Returns L_t of the same shape, float32 (not clipped). `adaptive` keeps a gated
    model's gate (deterministic; frames stop iterating early when the gate says so).
    """
    video = as_unit_float(video, "video")
    if video.ndim not in (4, 5) or video.shape[-1] != 3:
      raise ValueError(f"video must be [T, H, W, 3] or [B, T, H, W, 3], got shape {video.shape}")
    n = check_count("iterations", self.iterations if iterations is None else iterations)
    return _deblur(self, params, video, n, adaptive)

  def step(self, params: Params, frame: Array, state: Array,
           iterations: int | None = None, adaptive: bool = False, *,
           with_iterations: bool = False) -> tuple[Array, ...]:
    """Streaming: one frame [H, W, 3] or [B, H, W, 3] and h_{t-1} -> (L_t, h_t).

    Memory is constant in the video's length; outputs equal `deblur` of the whole clip.
    `state` comes from `initial_state(H, W[, B])` for the first frame. `frame` takes
    the dtypes and values `deblur` takes (ValueError otherwise). `with_iterations`:
    also the iterations run, float32 [] or [B] (N, or fewer where the gate stopped).
    """
    frame = as_unit_float(frame, "frame")
    if frame.ndim not in (3, 4) or frame.shape[-1] != 3:
      raise ValueError(f"frame must be [H, W, 3] or [B, H, W, 3], got shape {frame.shape}")
    n = check_count("iterations", self.iterations if iterations is None else iterations)
    expected = self.initial_state(*frame.shape[-3:-1],
                                  batch=frame.shape[0] if frame.ndim == 4 else None).shape
    if tuple(state.shape) != tuple(expected):
      raise ValueError(f"state shape {tuple(state.shape)} does not fit frames of shape "
                       f"{frame.shape}: expected {expected} (use initial_state)")
    output, hidden, iterations_run = _step(self, params, frame, state, n, adaptive)
    return (output, hidden, iterations_run) if with_iterations else (output, hidden)


def as_unit_float(images: Any, what: str = "video") -> Array:
  """images -> float32 in [0, 1]: uint8 / 255, uint16 / 65535, floats as they are.

  Raises ValueError naming `what` for other dtypes (bool, signed or wider integers,
  complex), NaN or infinite values, or float values outside [0, 1]. Traced values
  (inside `jax.jit`) are converted but cannot be checked.
  """
  if not isinstance(images, jax.Array):
    images = np.asarray(images)
  dtype = images.dtype
  if pixels.is_levels(dtype):
    return pixels.to_unit_float(jnp.asarray(images))
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"{what} has dtype {dtype}: give float values in [0, 1], or uint8 "
                     f"(0..255) or uint16 (0..65535) images")
  images = jnp.asarray(images, jnp.float32)
  if isinstance(images, jax.core.Tracer) or images.size == 0:
    return images
  low, high = (float(v) for v in jax.device_get((jnp.min(images), jnp.max(images))))
  if not (np.isfinite(low) and np.isfinite(high)):
    bad = int(jnp.sum(~jnp.isfinite(images)))
    raise ValueError(f"{what} holds {bad} NaN or infinite values; every value must be "
                     f"a finite number in [0, 1]")
  if low < 0.0 or high > 1.0:
    raise ValueError(f"{what} has values in [{low:.6g}, {high:.6g}], outside [0, 1]: "
                     f"scale float images to [0, 1] (e.g. np.clip(x, 0, 1)), or pass "
                     f"uint8 / uint16 images")
  return images


def check_count(name: str, value: Any, maximum: int = MAX_ITERATIONS,
                minimum: int = 1) -> int:
  """The one check of N, widths and block counts (model fields, configs, command lines):
  `value` as an int: any integer type (int, np.int64, a concrete integer jax scalar),
  not bool; ValueError outside minimum..maximum or for other types."""
  try:
    number = None if isinstance(value, (bool, np.bool_)) else operator.index(value)
  except TypeError:  # floats, strings, traced values
    number = None
  if number is None or not minimum <= number <= maximum:
    raise ValueError(f"{name} must be an integer in {minimum}..{maximum}, got {value!r}")
  return number


@functools.partial(jax.jit, static_argnums=0)
def _init(model: IFIRNN, key: Array) -> Params:
  return model._init_params(key)


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _deblur(model: IFIRNN, params: Params, video: Array, iterations: int,
            adaptive: bool) -> Array:
  batched = video if video.ndim == 5 else video[None]
  h, w = batched.shape[-3:-1]
  out, _, _ = model.apply_sequence(params, pad_to_multiple_of_4(batched),
                                   iterations=iterations,
                                   gate_mode="greedy" if adaptive else None)
  out = out[:, :, :h, :w]
  return out if video.ndim == 5 else out[0]


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def _step(model: IFIRNN, params: Params, frame: Array, state: Array, iterations: int,
          adaptive: bool) -> tuple[Array, Array, Array]:
  batched = frame[:, None] if frame.ndim == 4 else frame[None, None]
  hidden = state if frame.ndim == 4 else state[None]
  h, w = batched.shape[-3:-1]
  out, new_hidden, trace = model.apply_sequence(params, pad_to_multiple_of_4(batched),
                                                hidden=hidden, iterations=iterations,
                                                gate_mode="greedy" if adaptive else None)
  out = out[:, 0, :h, :w]
  run = (trace.iterations[0].astype(jnp.float32) if trace is not None
         else jnp.full(out.shape[:1], iterations, jnp.float32))
  if frame.ndim == 3:
    return out[0], new_hidden[0], run[0]
  return out, new_hidden, run
