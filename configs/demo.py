"""The default run: a small IFI-RNN trained on the embedded dataset, on a laptop CPU.

The embedded dataset (made by data_pipeline.default_data from photographs shipped in
scikit-image, no download) is generated at data/default on first use. The model is a
narrow C2H2 (widths 12/16/24, hidden 12, 2 ResBlocks; F_L's last conv starts at zero
so the untrained model is the identity) trained for 3000 steps of 4 clips x 6 frames x
64x64 at lr 2e-3, halved every 1200 steps: about 10 minutes on a 2-core CPU.

  python -m ifirnn_jax.train --config configs/demo.py

Expected: the final table shows the model above the blurry input on the held-out
photographs by more than 1 dB PSNR (README "Quick start" has the measured numbers).
Tiny variant for tests: --config configs/demo.py:tiny
"""

from ifirnn_jax import default_config


def get_config(arg=None):
  config = default_config.base_config()
  config.model.update(name="C2H2", n1=12, n2=16, n3=24, nh=12, num_resblocks=2,
                      zero_init_output=True)
  config.data.update(layout="gopro", root="data/default", blur_dir="blur_gamma",
                     make_default_if_missing=True, cache_frames=True)
  config.update(clip_length=6, crop_size=64, batch_size=4, learning_rate=2e-3,
                grad_clip_norm=0.1, num_train_steps=3000, lr_halve_every_steps=1200,
                log_every_steps=100,
                image_every_steps=1000, eval_every_steps=1000, checkpoint_every_steps=500,
                keep_checkpoints=2)
  config.eval.update(skip_first=4, skip_last=1, max_sequences=2, max_frames=12)
  return default_config.tiny(config) if arg == "tiny" else config
