"""IFI-RNN C2H3-reg on BSD (real beam-splitter blur), not in the paper.

Trained from scratch on one exposure setting (BSD_2ms16ms by default; pass another
root for 1ms8ms or 3ms24ms) with the paper's GOPRO recipe.

  python -m ifirnn_jax.train --config configs/bsd_c2h3_reg.py \
      --config.data.root=/path/to/BSD_2ms16ms --workdir workdirs/bsd_c2h3_reg

Expected: no published IFI-RNN number; compare with the blurry input's PSNR that the
final evaluation prints.
"""

from ifirnn_jax.training import default_config


def get_config(arg=None):
  config = default_config.paper_config("C2H3-reg", "bsd")
  return default_config.tiny(config) if arg == "tiny" else config
