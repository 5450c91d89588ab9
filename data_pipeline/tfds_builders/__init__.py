"""TFDS builders for the paired deblurring datasets (manual download).

    import tensorflow_datasets as tfds
    from data_pipeline import tfds_builders  # registers "gopro" and "dvd"
    builder = tfds_builders.Gopro(config="blur_gamma", data_dir="~/tfds")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir="/data/GOPRO_Large"))
    frames = builder.as_dataset(split="test")

Examples are single frames, not whole videos: {"sequence", "frame_index",
"frame_name", "blur", "sharp"}, uint8 [H, W, 3] PNG-encoded images (lossless,
so the pixels are those of `image_io.read_image`), in sequence order. Per-frame
examples keep each record small and let tf.data shuffle or shard by frame;
clips are regrouped by (sequence, frame_index). The training pipeline of this
project reads the files directly (`input_pipeline`); these builders are for
users who keep their data in TFDS.
"""

try:
  import tensorflow_datasets  # noqa: F401
except ImportError as error:
  raise ImportError(
      "data_pipeline.tfds_builders needs tensorflow-datasets, which is not installed: "
      "pip install -e \".[tfdata]\" (training reads the files without it)") from error

from data_pipeline.tfds_builders.dvd import Dvd  # noqa: E402
from data_pipeline.tfds_builders.gopro import Gopro  # noqa: E402

__all__ = ["Dvd", "Gopro"]
