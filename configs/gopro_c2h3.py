"""IFI-RNN C2H3 on GOPRO (the paper's Table 1).

Recipe of Section 4.2: Adam 1e-4 halved every 200 epochs, 500 epochs (about 22k steps
of 4 clips x 12 frames, 256x256 crops), blur_gamma frames.

  python -m ifirnn_jax.train --config configs/gopro_c2h3.py \
      --config.data.root=/path/to/GOPRO_Large --workdir workdirs/gopro_c2h3

Expected (paper, downsampled 960x540 GOPRO, PSNR / SSIM): 29.80 / 0.8900.
Tiny variant for tests: --config configs/gopro_c2h3.py:tiny
"""

from ifirnn_jax.training import default_config


def get_config(arg=None):
  config = default_config.paper_config("C2H3", "gopro")
  return default_config.tiny(config) if arg == "tiny" else config
