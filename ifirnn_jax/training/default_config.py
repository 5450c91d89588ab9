"""The base ConfigDict every experiment in `configs/` starts from, and its validation.

Defaults are the paper's recipe (Section 4.2, docs/training.md): Adam 1e-4 halved every
200 epochs for 500 epochs, 4 clips of 12 frames, 256x256 crops, flips and 90-degree
rotations, noise sigma = |s|, s ~ N(0, 2^2) (8-bit units) on the blurry input.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import ml_collections

from data_pipeline.layouts import LAYOUTS
from ifirnn_jax.model import losses
from ifirnn_jax.model.network import IFIRNN, SPEC_WIDTHS

MODEL_NAME = re.compile(r"^C([12])H([1-9]\d*)(-reg)?$")

# Training frames per dataset (one epoch = every frame seen once in a 12-frame clip).
TRAIN_FRAMES = {"gopro": 2103, "dvd": 5708, "bsd": 6000}


class ConfigError(ValueError):
  """A config value that cannot work; the message names the field."""


def base_config() -> ml_collections.ConfigDict:
  """Paper defaults; experiment files change the model, the data and the schedule."""
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.model = ml_collections.ConfigDict()
  c.model.name = "C2H3"          # C{1,2}H{N}[-reg]: cells, iterations, gated training
  # The spec's widths: n1, n2, n3 (F_B at full, 1/2, 1/4 resolution) = 20, 40, 60;
  # nh (hidden-state channels) = 20; num_resblocks (in F_R) = 6; gate_hidden = 16.
  c.model.update(SPEC_WIDTHS)
  c.model.residual_output = True
  c.model.compute_dtype = "float32"  # 'bfloat16' for GPUs
  c.model.scan_unroll = 0        # 0: auto (models.frame_scan_unroll); an int; True: full
  c.model.remat = False          # jax.checkpoint each frame step (bounds training memory)
  # 3x3 conv algorithm: 'auto' (Winograd for float32 on CPU where it
  # pays, XLA's convolution elsewhere; ifirnn_jax/model/layers.py). Same parameters either way.
  c.model.conv_impl = "auto"
  # Start F_L's last conv at zero, so the untrained network is the identity (L_t = B_t);
  # not in the paper (whose init is unpublished): used by the short demo schedule.
  c.model.zero_init_output = False

  c.data = ml_collections.ConfigDict()
  c.data.layout = "gopro"        # gopro | dvd | bsd | generic (docs/training.md layouts)
  c.data.root = ""               # the dataset's folder (the user downloads it)
  c.data.blur_dir = "blur_gamma"  # GOPRO only: 'blur' or 'blur_gamma' (the paper's)
  c.data.train_split = "train"
  c.data.eval_split = "test"
  c.data.make_default_if_missing = False  # demo: generate the embedded dataset at root
  # Size of that embedded dataset (data_pipeline.default_data.DatasetSpec fields).
  c.data.default_data = ml_collections.ConfigDict(dict(
      height=128, width=160, frames_per_sequence=24, train_sequences=14, test_sequences=4))
  c.data.cache_frames = False    # decode every training frame once into memory
  # Training input: 'tfdata' (TensorFlow), 'numpy' (worker threads, no TensorFlow; the
  # same batches) or 'auto' (tf.data when TensorFlow imports, else numpy).
  c.data.loader = "auto"

  c.clip_length = 12             # T frames per training clip
  c.crop_size = 256
  c.batch_size = 4               # global batch (clips), split over processes/devices
  # CPU, one process: train on this many XLA CPU devices, each running its share of the
  # batch on one core (ifirnn_jax/runtime/cpu_devices.py). 0: auto, one per core this process
  # may use, as many as divide batch_size; 1: one device using XLA's thread pool.
  c.cpu_devices = 0
  c.noise_std_sigma = 2.0        # sigma ~ |N(0, 2^2)| per clip, 8-bit units
  c.augment = True                # flips and 90-degree rotations (paper)
  c.augment_colour = False        # random RGB channel order per clip (not in the paper)

  c.learning_rate = 1e-4
  c.num_epochs = 500
  c.lr_halve_every_epochs = 200
  c.train_frames = TRAIN_FRAMES["gopro"]
  # -1: derived (the only value <= 0 allowed), num_epochs * steps_per_epoch with
  #     steps_per_epoch = ceil(train_frames / (batch_size * clip_length))   (GOPRO: 44)
  c.num_train_steps = -1
  c.lr_halve_every_steps = -1    # -1: lr_halve_every_epochs * steps_per_epoch
  c.init_from = ""               # fine-tuning: a workdir or weight file to start from
  c.grad_clip_norm = 0.0         # 0: off (the paper does not clip)
  c.reg_lambda = losses.LAMBDA   # lambda of L_total = L_content + lambda * L_reg
  c.reg_tau = losses.TAU         # tau of L_reg

  c.log_every_steps = 50
  c.eval_every_steps = 2200      # validation PSNR/SSIM (about every 50 GOPRO epochs)
  c.checkpoint_every_steps = 1100
  c.keep_checkpoints = 3         # the last K periodic checkpoints (+ the best one)

  c.eval = ml_collections.ConfigDict()
  c.eval.skip_first = 4          # the paper's protocol: skip the first 4 frames ...
  c.eval.skip_last = 1           # ... and the last frame of every sequence
  c.eval.max_sequences = 2       # validation during training: this many sequences (-1: all)
  c.eval.max_frames = 20         # ... and at most this many frames each (-1: all)
  c.final_eval = True            # full evaluation (all test sequences) when training ends
  return c


def model_fields(name: str) -> dict:
  """'C2H3-reg' -> dict(cells=2, iterations=3, gated=True)."""
  match = MODEL_NAME.match(name)
  if not match:
    raise ConfigError(f"config.model.name: unknown model {name!r}; expected C1HN or C2HN, "
                     "optionally with -reg (e.g. C2H3-reg)")
  return dict(cells=int(match.group(1)), iterations=int(match.group(2)),
              gated=bool(match.group(3)))


def model_named(name: str, **fields) -> IFIRNN:
  """The IFIRNN called `name` ('C2H3-reg': 2 cells, 3 iterations, gated) with the other
  IFIRNN `fields` (widths, compute_dtype, ...); ConfigError for an unknown name."""
  return IFIRNN(**model_fields(name), **fields)


def model_from_config(m: ml_collections.ConfigDict) -> IFIRNN:
  """The IFIRNN of `config.model`: cells, iterations and gate from its name, every other
  IFIRNN field from the config field of that name (`IFIRNN.from_fields`). ConfigError
  for an unknown name; the model's ValueError or TypeError for a bad field."""
  return IFIRNN.from_fields({**m.to_dict(), **model_fields(m.name)})


def paper_config(model_name: str, dataset: str = "gopro") -> ml_collections.ConfigDict:
  """A Table 1 (GOPRO) / Table 2 (DVD) / BSD experiment of the paper's recipe."""
  c = base_config()
  c.model.name = model_name
  c.data.layout = dataset
  c.data.blur_dir = "blur_gamma" if dataset == "gopro" else ""
  c.train_frames = TRAIN_FRAMES[dataset]
  return c


def tiny(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`runlocal`-style shrink of any config: tiny widths, crops and schedule (tests, CPU)."""
  c.model.update(n1=6, n2=8, n3=8, nh=6, num_resblocks=1, gate_hidden=4)
  c.update(clip_length=3, crop_size=16, batch_size=2, num_train_steps=4,
           lr_halve_every_steps=2, log_every_steps=1,
           eval_every_steps=2, checkpoint_every_steps=2, keep_checkpoints=2)
  c.eval.update(max_sequences=1, max_frames=6, skip_first=1, skip_last=1)
  c.data.default_data.update(height=32, width=48, frames_per_sequence=6, train_sequences=2,
                             test_sequences=1)
  if c.data.make_default_if_missing:  # never rebuild the full-size data with tiny sizes
    c.data.root = c.data.root.rstrip("/") + "_tiny"
  return c


def steps_per_epoch(c: ml_collections.ConfigDict) -> int:
  return max(1, math.ceil(c.train_frames / (c.batch_size * c.clip_length)))


def num_train_steps(c: ml_collections.ConfigDict) -> int:
  return c.num_train_steps if c.num_train_steps > 0 else c.num_epochs * steps_per_epoch(c)


def lr_halve_every_steps(c: ml_collections.ConfigDict) -> int:
  if c.lr_halve_every_steps > 0:
    return c.lr_halve_every_steps
  return c.lr_halve_every_epochs * steps_per_epoch(c)


def check_cpu_devices(c: ml_collections.ConfigDict) -> None:
  """config.cpu_devices: an integer >= 0 that divides batch_size (checked before JAX
  starts)."""
  if not isinstance(c.cpu_devices, int) or isinstance(c.cpu_devices, bool) or c.cpu_devices < 0:
    raise ConfigError(f"config.cpu_devices must be an integer >= 0 (0: one per core), "
                      f"got {c.cpu_devices!r}")
  if c.cpu_devices > 0 and c.batch_size > 0 and c.batch_size % c.cpu_devices:
    raise ConfigError(f"config.cpu_devices={c.cpu_devices} does not divide "
                      f"config.batch_size={c.batch_size}")


def validate(c: ml_collections.ConfigDict, process_count: int = 1) -> None:
  """Raises ValueError naming the config field, before anything is compiled."""
  try:  # the model's own checks of its fields are the one source
    model_from_config(c.model)
  except ConfigError:
    raise
  except (ValueError, TypeError) as e:
    field = str(e).split()[0]
    raise ConfigError(f"config.model.{e}" if field in c.model and field != "name"
                      else f"config.model.name: {c.model.name}: {e}") from None
  if c.data.layout not in LAYOUTS:
    raise ConfigError(f"config.data.layout must be one of {LAYOUTS}, got {c.data.layout!r}")
  if c.data.layout == "gopro" and c.data.blur_dir not in ("blur", "blur_gamma"):
    raise ConfigError(f"config.data.blur_dir must be 'blur' or 'blur_gamma', got {c.data.blur_dir!r}")
  if c.data.loader not in ("auto", "tfdata", "numpy"):
    raise ConfigError(f"config.data.loader must be 'auto', 'tfdata' or 'numpy', "
                      f"got {c.data.loader!r}")
  if not c.data.root:
    raise ConfigError("config.data.root is empty: give the dataset folder, e.g. "
                     "--config.data.root=/data/GOPRO_Large")
  if not c.data.make_default_if_missing and not Path(c.data.root).is_dir():
    raise ConfigError(f"config.data.root: {c.data.root} is not a folder")
  for field in ("learning_rate", "reg_lambda", "reg_tau", "noise_std_sigma",
                "grad_clip_norm"):
    if (isinstance(c[field], bool) or not isinstance(c[field], (int, float))
        or not math.isfinite(c[field])):
      raise ConfigError(f"config.{field} must be a finite number, got {c[field]!r}")
  for field in ("num_train_steps", "lr_halve_every_steps"):
    if not (c[field] == -1 or c[field] > 0):
      raise ConfigError(f"config.{field} must be > 0, or -1 (derived from the epochs), "
                        f"got {c[field]!r}")
  for field in ("clip_length", "batch_size", "learning_rate", "log_every_steps",
                "eval_every_steps", "checkpoint_every_steps", "keep_checkpoints"):
    if not c[field] > 0:
      raise ConfigError(f"config.{field} must be > 0, got {c[field]!r}")
  check_cpu_devices(c)
  if c.crop_size % 4 or c.crop_size < 4:
    raise ConfigError(f"config.crop_size must be a positive multiple of 4, got {c.crop_size}")
  if c.batch_size % process_count:
    raise ConfigError(f"config.batch_size={c.batch_size} must be divisible by the "
                     f"{process_count} processes")
  if c.noise_std_sigma < 0 or c.reg_lambda < 0 or not 0 <= c.reg_tau <= 1:
    raise ConfigError("config.noise_std_sigma and config.reg_lambda must be >= 0, "
                     "config.reg_tau in [0, 1]")
