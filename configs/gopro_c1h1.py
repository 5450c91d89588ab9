"""IFI-RNN C1H1 on GOPRO (the paper's Table 1).

Recipe of Section 4.2: Adam 1e-4 halved every 200 epochs, 500 epochs (about 22k steps
of 4 clips x 12 frames, 256x256 crops), blur_gamma frames.

  python -m ifirnn_jax.train --config configs/gopro_c1h1.py \
      --config.data.root=/path/to/GOPRO_Large --workdir workdirs/gopro_c1h1

Expected (paper, downsampled 960x540 GOPRO, PSNR / SSIM): 28.79 / 0.8647.
Tiny variant for tests: --config configs/gopro_c1h1.py:tiny
"""

from ifirnn_jax.training import default_config


def get_config(arg=None):
  config = default_config.paper_config("C1H1", "gopro")
  return default_config.tiny(config) if arg == "tiny" else config
