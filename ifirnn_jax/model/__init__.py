"""The model: IFI-RNN's network, layers, per-platform formulation and losses.

A pure description of what is computed: it imports nothing of training, evaluation,
storage, the runtime layer or the commands, and never asks which machine it runs on.
`torch_reference` is the independent PyTorch module of the same network (tests and
benchmarks only).
"""
