"""IFI-RNN C2H4-reg on GOPRO (the paper's Table 1).

Recipe of Section 4.2: Adam 1e-4 halved every 200 epochs, 500 epochs (about 22k steps
of 4 clips x 12 frames, 256x256 crops), blur_gamma frames, L_content + 10 L_reg with the stochastic gate.

  python -m ifirnn_jax.train --config configs/gopro_c2h4_reg.py \
      --config.data.root=/path/to/GOPRO_Large --workdir workdirs/gopro_c2h4_reg

Expected (paper, downsampled 960x540 GOPRO, PSNR / SSIM): 29.93 / 0.8943.
Tiny variant for tests: --config configs/gopro_c2h4_reg.py:tiny
"""

from ifirnn_jax.training import default_config


def get_config(arg=None):
  config = default_config.paper_config("C2H4-reg", "gopro")
  return default_config.tiny(config) if arg == "tiny" else config
