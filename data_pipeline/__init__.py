"""Everything that reads or writes data on disk for ifirnn-jax.

Modules: `image_io` (frames as uint8/float32 arrays), `layouts` (paired
sequences of the GOPRO, DVD, BSD and generic layouts), `eval_pipeline`
(whole frames for evaluation), `input_pipeline` (the tf.data training
pipeline; imports TensorFlow), `video` (video files), `synthesize` and
`default_data` (GOPRO-style blur and the embedded demo data),
`tfds_builders` (TFDS builders for GOPRO and DVD). Every bad input raises
`DataError`. Nothing here imports `ifirnn_jax`.
"""

from data_pipeline.errors import DataError
from data_pipeline.image_io import read_image, to_float, write_image
from data_pipeline.layouts import Sequence, find_sequences, frames_folder

__all__ = ["DataError", "Sequence", "find_sequences", "frames_folder",
           "read_image", "to_float", "write_image"]
