"""Speed, FLOPs and memory of IFI-RNN: `python -m ifirnn_jax.benchmark [--mode inference|train]`.

Inference (default; docs/benchmarks.md): for each model, the streaming step (one frame
and h_{t-1} -> L_t, h_t) and a whole-clip call (`apply_sequence`, F_B / F_L batched over
all frames) are compiled ahead of time (compile time reported apart), then timed:
per-frame latency averaged over `--repeats` frames after `--warmup`, and clip throughput
in frames/s. FLOPs are reported twice: the spec's count (`spec_gflops`, multiply-adds of
the layer table, independent of XLA) and XLA's cost analysis of the compiled step (which
counts the layers as they are actually executed, see `spec_gflops`). Achieved GFLOP/s use
the spec's count (an effective rate: a fast algorithm such as Winograd, which does fewer
multiplies than the direct convolution, can exceed the matmul rate; `xla_gflops_per_s` is
the rate of the arithmetic actually done) and are compared with a measured float32 (and,
on GPU, bfloat16) matmul rate. On CPU the PyTorch reference (`torch_reference.TorchIFIRNN`, same weights, no_grad,
streaming) runs in the same process for an ours/torch ratio.

Train: the training step of `train.train_step` (Adam of `train.create_optimizer`, content
loss) for each `--scan-unroll` value, and `torch_reference.make_train_step`, from the same
initial weights and batch; steps/s, ratios, and peak memory, each variant in its own child
process by default (`--isolate`) so that one framework's peak does not hide the other's.
On CPU our step runs, as training runs it, over one XLA CPU device per core that
divides the batch, each single-threaded (`--cpu-devices`, ifirnn_jax/runtime/cpu_devices.py);
with `--processes N` as N processes pinned to one core each, data parallel over
`jax.distributed` on loopback, as `launch/cpu_processes.sh` trains.
With `--data DATASET` it also times the training input pipeline alone at the same batch,
frames and crop, and prints its clips/s next to each step's (the pipeline
must not be the bottleneck).

Timings on shared machines are noisy: compare ratios from one run, not absolute numbers
across runs. Results go to `--out` (JSON, written atomically, after every model).

Modules: `cli` (the command line, `BenchmarkSettings` from it, `run`), `settings` (BenchmarkSettings, models,
devices), `flops` (the spec's FLOP count), `probes` (memory, matmul rate, timing, XLA's
cost and memory analyses), `inference`, `train_step` (our and PyTorch's train-step
runners), `variants` (a runner in a child process or a group of processes),
`train_run` (--mode train), `memory` (--mode memory), `report` (the tables).
"""
