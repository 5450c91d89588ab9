"""IFI-RNN C1H4 on GOPRO (the paper's Table 1).

Recipe of Section 4.2: Adam 1e-4 halved every 200 epochs, 500 epochs (about 22k steps
of 4 clips x 12 frames, 256x256 crops), blur_gamma frames.

  python -m ifirnn_jax.train --config configs/gopro_c1h4.py \
      --config.data.root=/path/to/GOPRO_Large --workdir workdirs/gopro_c1h4

Expected (paper, downsampled 960x540 GOPRO, PSNR / SSIM): 29.06 / 0.8730.
Tiny variant for tests: --config configs/gopro_c1h4.py:tiny
"""

from ifirnn_jax.training import default_config


def get_config(arg=None):
  config = default_config.paper_config("C1H4", "gopro")
  return default_config.tiny(config) if arg == "tiny" else config
