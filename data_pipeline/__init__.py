"""Everything that reads or writes data on disk for ifirnn-jax.

Modules: `image_io` (frames as uint8/float32 arrays), `layouts` (paired
sequences of the GOPRO, DVD, BSD and generic layouts), `eval_pipeline`
(whole frames for evaluation), `clip_sampler` (the random choices of each
training clip, drawn in numpy for both loaders), `input_pipeline` (the tf.data training
pipeline; imports TensorFlow), `numpy_pipeline` (the same batches without
TensorFlow), `loaders` (picks one of the two), `video` (video files),
`outputs` and `termination` (safe overwrites, SIGTERM), `synthesize` and
`default_data` (GOPRO-style blur and the embedded demo data), `tfds_builders`
(TFDS builders for GOPRO and DVD). Every bad input raises `DataError`.
Nothing here imports `ifirnn_jax`.

TensorFlow only reads, crops and flips here, so importing this package sets two of
its environment defaults, unless already set: TF_ENABLE_ONEDNN_OPTS=0 (oneDNN's custom
ops are for TensorFlow's convolutions and matmuls, which nothing here runs) and
TF_CPP_MIN_LOG_LEVEL=1. Together they keep TensorFlow's C++ start-up lines ("oneDNN
custom operations are on", the CPU feature notice) off stderr, where they came before
every run's output and every error message. Import it before anything that imports
TensorFlow (clu does).
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from data_pipeline.errors import DataError  # noqa: E402
from data_pipeline.image_io import read_image, to_float, write_image  # noqa: E402
from data_pipeline.layouts import Sequence, find_sequences, frames_folder  # noqa: E402

__all__ = ["DataError", "Sequence", "find_sequences", "frames_folder",
           "read_image", "to_float", "write_image"]
