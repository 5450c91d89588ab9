"""Weights and checkpoints on disk: safetensors weight files, orbax checkpoints, the one
loader of (model, params) behind `--weights` / `--workdir`, and a run's workdir lock.

Imports the model and `data_pipeline.safe_io`; nothing of training, evaluation, the
runtime layer or the commands.
"""
