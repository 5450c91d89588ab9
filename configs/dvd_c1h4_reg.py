"""IFI-RNN C1H4-reg fine-tuned on DVD (the paper's Table 2), from the GOPRO run.

The paper fine-tunes its GOPRO models on DVD's 61 training sequences and reports the
10 test sequences. The fine-tuning schedule is not in the paper; this config uses
Adam 1e-4 halved every 50 epochs for 100 epochs (about 12k steps).

  python -m ifirnn_jax.train --config configs/dvd_c1h4_reg.py \
      --config.data.root=/path/to/DeepVideoDeblurring_Dataset \
      --config.init_from=workdirs/gopro_c1h4_reg --workdir workdirs/dvd_c1h4_reg

Expected (paper, PSNR / SSIM): 30.10 / 0.8849.
"""

from ifirnn_jax.training import default_config


def get_config(arg=None):
  config = default_config.paper_config("C1H4-reg", "dvd")
  config.num_epochs = 100
  config.lr_halve_every_epochs = 50
  config.init_from = "workdirs/gopro_c1h4_reg"   # a GOPRO workdir or weight file
  return default_config.tiny(config) if arg == "tiny" else config
