"""The default run: a small IFI-RNN trained on the embedded dataset, on a laptop CPU.

The embedded dataset (made by data_pipeline.default_data from photographs shipped in
scikit-image, no download) is generated at data/default on first use. The model is a
C1H1 (one cell, one iteration: the paper's baseline RNN) at widths 16/24/32, hidden 16,
3 ResBlocks; F_L's last conv starts at zero so the untrained model is the identity.
It trains for 3200 steps of 4 clips x 4 frames x 96x96 at lr 1e-3, halved every 800
steps, with Winograd 3x3 convolutions on CPU (conv_impl 'auto'), the frame scan rolled
(scan_unroll 0, auto), and each batch split over one CPU device per core (cpu_devices 0,
auto: 2 devices of 2 clips on a 2-core machine). 3200 steps keep the whole first
command within minutes on a 2-core CPU (docs/benchmarks.md has the timings).

Why this size: on 2 CPU cores in a run of minutes the single-iteration cell gained the
most per second of the C2H2 and C1H1 variants tried (docs/demo_experiments.md); the
intra-frame iterations pay off with the paper's longer GPU schedules.

  python -m ifirnn_jax.train --config configs/demo.py

Expected: the final table shows the model above the blurry input on the held-out
photographs (docs/benchmarks.md has the measured numbers).
Tiny variant for tests: --config configs/demo.py:tiny
"""

from ifirnn_jax.training import default_config


def get_config(arg=None):
  config = default_config.base_config()
  config.model.update(name="C1H1", n1=16, n2=24, n3=32, nh=16, num_resblocks=3,
                      zero_init_output=True, conv_impl="auto")
  config.data.update(layout="gopro", root="data/default", blur_dir="blur_gamma",
                     make_default_if_missing=True, cache_frames=True)
  config.update(clip_length=4, crop_size=96, batch_size=4, learning_rate=1e-3,
                grad_clip_norm=0.1, num_train_steps=3200, lr_halve_every_steps=800,
                log_every_steps=100, eval_every_steps=1200,
                checkpoint_every_steps=600, keep_checkpoints=2)
  config.eval.update(skip_first=4, skip_last=1, max_sequences=2, max_frames=12)
  return default_config.tiny(config) if arg == "tiny" else config
