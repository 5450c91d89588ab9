"""Evaluation and its outputs: the paper's protocol (`protocol`), PSNR/SSIM (`metrics`),
reports and plots, image captions, and the spatial tiles `deblur` runs large frames in.

Computes and writes results; the commands (`evaluate`, `deblur`, `train`) call it.
"""
