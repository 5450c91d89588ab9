"""Tests of ifirnn_jax.benchmark: the spec's FLOP table, XLA's count, and tiny runs of the CLI."""

import json
import os

import jax
import jax.numpy as jnp
import pytest

from ifirnn_jax.benchmark import cli, flops, probes
from ifirnn_jax.benchmark.report import inference_table
from ifirnn_jax.model.network import IFIRNN

import data_trees

TINY_WIDTHS = dict(n1=4, n2=6, n3=8, nh=4, num_resblocks=1)

# docs/architecture.md "Size and cost": forward GFLOP per 960x540 frame.
SPEC_TABLE = {"C1H1": 65.2, "C1H2": 111.7, "C1H3": 158.1, "C1H4": 204.5,
              "C2H1": 122.3, "C2H2": 168.7, "C2H3": 215.1, "C2H4": 261.6}


def _model(name, **fields):
  cells, iterations = int(name[1]), int(name[3])
  return IFIRNN(cells=cells, iterations=iterations, **fields)


@pytest.mark.parametrize("name", sorted(SPEC_TABLE))
def test_spec_gflops_equals_the_spec_table(name):
  assert round(flops.spec_gflops(_model(name), 540, 960), 1) == SPEC_TABLE[name]


def test_spec_gflops_by_hand_for_one_layer_kinds():
  # C1H1, one ResBlock, widths 1: every layer's multiply-adds written out on an 8x8 frame.
  model = IFIRNN(cells=1, iterations=1, n1=1, n2=1, n3=1, nh=1, num_resblocks=1)
  full, half, quarter = 64, 16, 4
  f_b = full * 25 * 3 + half * 25 + quarter * 25
  f_r = 2 * quarter * 9 * 2 * 2       # ResBlock(2): two 3x3 convs 2 -> 2
  f_h = quarter * 9 * 2 + 3 * quarter * 9
  f_l = quarter * 16 * 2 + half * 16 + full * 25 * 3
  assert flops.spec_gflops(model, 8, 8) == pytest.approx(2 * (f_b + f_r + f_h + f_l) / 1e9)
  # Sizes pad up to multiples of 4, as the model does.
  assert flops.spec_gflops(model, 6, 7) == flops.spec_gflops(model, 8, 8)
  # Not counting padding: a 3x3 conv on a 4x4 map reads 3 + 3 + 3 + 3 - 2 = 10 rows x 10 cols.
  macs = flops._conv_macs(4, 4, 3, 1, 1, count_padding=False)
  assert macs == 10 * 10


def _xla_gflops(model, height, width):
  params = jax.eval_shape(model.init, jax.random.key(0))  # shapes suffice to compile
  frame = jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32)
  state = jax.ShapeDtypeStruct(model.initial_state(height, width, batch=1).shape, jnp.float32)
  step = jax.jit(lambda p, f, s: model.apply_sequence(
      p, f[:, None], hidden=s, unroll_iterations=True)[:2])
  return probes.xla_flops(step.lower(params, frame, state).compile()) / 1e9


@pytest.mark.parametrize("widths,height,width", [(TINY_WIDTHS, 16, 24), ({}, 128, 192)],
                         ids=["tiny-16x24", "spec-widths-128x192"])
def test_xla_flops_are_the_spec_count_plus_what_the_formulation_adds(widths, height, width):
  """With XLA's own convolutions (conv_impl='xla', the direct algorithm the spec's count
  describes), XLA counts the layers as executed: taps on padding are skipped, bias adds,
  ReLUs and the structural zero taps of the re-expressed strided / transposed convs are
  counted. (Winograd, the CPU default, does ~4x fewer multiplies: not compared here.)

  So XLA >= the spec's count without padding taps, and within 15% of the spec's count;
  one more intra-frame iteration (F_R + F_h: plain stride-1 convs) adds exactly its
  multiply-adds plus the elementwise ops (bias, ReLU, residual add: a few %).
  """
  c2h2, c2h3 = (_model(name, conv_impl="xla", **widths) for name in ("C2H2", "C2H3"))
  xla2, xla3 = _xla_gflops(c2h2, height, width), _xla_gflops(c2h3, height, width)
  spec2 = flops.spec_gflops(c2h2, height, width)
  valid2 = flops.spec_gflops(c2h2, height, width, count_padding=False)
  assert valid2 <= xla2 <= 1.15 * spec2
  assert abs(xla2 / spec2 - 1) < 0.15
  iteration_valid = (flops.spec_gflops(c2h3, height, width, count_padding=False) - valid2)
  assert 1.0 <= (xla3 - xla2) / iteration_valid < 1.03


def _run(tmp_path, *args, widths="4,6,8,4,1"):
  out = tmp_path / "bench.json"
  argv = ["--widths", widths, "--height", "16", "--width", "24", "--repeats", "1",
          "--matmul-size", "256", "--torch-threads", "1", "--conv-impl", "xla",
          "--out", str(out), *args]
  assert cli.main(argv) == 0
  return json.loads(out.read_text())


def test_tiny_inference_run_writes_the_report(tmp_path, capsys, monkeypatch):
  monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")  # as the launch scripts set
  report = _run(tmp_path, "--models", "C1H1,C2H2-reg", "--batch", "1", "--frames", "2")
  assert report["environment"]["glibc_tunables"] == "glibc.malloc.hugetlb=1"
  assert report["environment"]["matmul_precision"] == jax.config.jax_default_matmul_precision
  assert report["mode"] == "inference" and report["settings"]["conv_impl"] == "xla"
  assert set(report["matmul_gflops_per_s"]) >= {"float32"}
  assert report["matmul_gflops_per_s"]["float32"] > 0
  assert [r["model"] for r in report["results"]] == ["C1H1", "C2H2-reg"]
  for r in report["results"]:
    model = _model(r["model"][:4], **TINY_WIDTHS)
    assert r["spec_gflop_per_frame"] == flops.spec_gflops(model, 16, 24)
    for key in ("xla_gflop_per_frame", "stream_fps", "batch_fps", "achieved_gflops_per_s",
                "fraction_of_matmul_peak", "peak_memory_bytes"):
      assert r[key] > 0, key
    assert r["compile_s"]["stream_step"] > 0 and r["compile_s"]["sequence"] > 0
    assert r["latency_s"]["runs"] == 1
    assert r["clip_s"]["runs"] == 1                    # ceil(1 repeat / 2 frames)
    # PyTorch ran the same weights on the same frames: same output.
    assert r["torch"]["stream_fps"] > 0 and r["ours_over_torch_fps"] > 0
    assert r["torch"]["rel_l2_error_first_frame"] < 1e-5
  table = capsys.readouterr().out
  assert "C2H2-reg" in table and "ours/torch" in table
  assert "pages: 2 MiB (glibc.malloc.hugetlb=1)" in table


def test_tiny_train_run_writes_the_report(tmp_path, capsys, monkeypatch):
  monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
  report = _run(tmp_path, "--mode", "train", "--models", "C1H1", "--batch", "2",
                "--frames", "1", "--scan-unroll", "full", "--cpu-devices", "1",
                widths="4,6,8,4,0")
  assert report["mode"] == "train"
  assert [r["variant"] for r in report["results"]] == ["jax scan_unroll=full", "torch"]
  for r in report["results"]:
    assert r["steps_per_s"] > 0 and r["steps_per_s_best"] >= r["steps_per_s"]
    assert r["step_s"]["runs"] == 1
    # Each variant ran in its own process: its peak is its own, and above its baseline.
    assert r["peak_memory_method"] == "peak RSS of its own child process"
    assert 0 < r["rss_growth_bytes"] < r["peak_memory_bytes"]
  ours, theirs = report["results"]
  assert ours["xla_gflop_per_step"] > 0 and theirs["threads"] == 1
  # Same initial weights and batch: the first loss agrees across frameworks.
  assert ours["first_loss"] == pytest.approx(theirs["first_loss"], rel=1e-5)
  assert ours["first_loss_rel_diff_vs_torch"] < 1e-5
  ratio = report["ratios_steps_per_s"]["jax scan_unroll=full / torch"]
  assert ratio == pytest.approx(ours["steps_per_s"] / theirs["steps_per_s"])
  assert report["ratios_steps_per_s_best"].keys() == report["ratios_steps_per_s"].keys()
  table = capsys.readouterr().out
  assert "steps/s ratios" in table and "pages: glibc default" in table
  assert report["environment"]["glibc_tunables"] is None


def test_titles_say_which_float32_precision_an_accelerator_ran():
  report = {"environment": {"backend": "gpu", "device_kind": "NVIDIA H200",
                            "glibc_tunables": None, "matmul_precision": None},
            "settings": {"width": 960, "height": 540, "dtype": "float32", "conv_impl": "auto",
                         "batch": 1, "frames": 4},
            "matmul_gflops_per_s": {"float32": 1.0}, "results": []}
  assert "float32 precision: JAX's default (TF32" in inference_table(report)
  report["environment"]["matmul_precision"] = "highest"
  assert "float32 precision: highest" in inference_table(report)
  report["environment"]["backend"] = "cpu"  # XLA:CPU: float32 is always full float32
  assert "precision" not in inference_table(report)


def test_runners_take_turns_in_blocks_each_after_an_untimed_call():
  calls = []

  class Runner:
    def __init__(self, name):
      self.name = name

    def step(self):
      calls.append(self.name)
      return float(len(calls))  # the call's position: which calls were kept as timings

  times = probes.interleave([Runner("a"), Runner("b")], warmup=1, repeats=7, block=5)
  # warm-up a b; then a (untimed) a*5, b (untimed) b*5; then a (untimed) a*2, b b*2.
  assert "".join(calls) == "ab" + "a" * 6 + "b" * 6 + "aaa" + "bbb"
  assert times == [[4, 5, 6, 7, 8, 16, 17], [10, 11, 12, 13, 14, 19, 20]]


def test_train_variants_can_share_this_process(tmp_path, monkeypatch):
  from ifirnn_jax import train
  built = []  # every step the benchmark times comes from train.make_train_step
  make_train_step = train.make_train_step
  monkeypatch.setattr(train, "make_train_step",
                      lambda *a, **k: built.append(a[0]) or make_train_step(*a, **k))
  report = _run(tmp_path, "--mode", "train", "--models", "C1H1", "--batch", "1",
                "--frames", "1", "--scan-unroll", "full,1", "--no-torch", "--no-isolate",
                widths="4,6,8,4,0")
  assert [r["variant"] for r in report["results"]] == ["jax scan_unroll=full",
                                                       "jax scan_unroll=1"]
  for r in report["results"]:
    assert r["steps_per_s"] > 0
    assert r["peak_memory_method"] == "process peak RSS (shared process: not isolated)"
  assert set(report["ratios_steps_per_s"]) == {"jax scan_unroll=full / scan_unroll=1"}
  assert [model.scan_unroll for model in built] == [True, 1]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to pin 2 processes")
def test_train_step_as_two_single_core_processes(tmp_path, capsys):
  report = _run(tmp_path, "--mode", "train", "--models", "C1H1", "--batch", "2",
                "--frames", "2", "--scan-unroll", "1", "--processes", "2", widths="4,6,8,4,0")
  ours, theirs = report["results"]
  assert ours["variant"] == "jax scan_unroll=1, 2 processes x 1 core"
  assert theirs["variant"] == "torch" and theirs["threads"] == 1
  assert ours["peak_memory_method"] == "sum of the peak RSS of its 2 processes"
  # One clip per process, averaged over the processes: the loss of the whole batch.
  assert ours["first_loss"] == pytest.approx(theirs["first_loss"], rel=1e-5)
  assert set(report["ratios_steps_per_s"]) == {
      "jax scan_unroll=1, 2 processes x 1 core / torch"}
  assert "2 processes x 1 core" in capsys.readouterr().out


def test_train_step_over_two_single_core_cpu_devices_in_one_process(tmp_path, capsys):
  report = _run(tmp_path, "--mode", "train", "--models", "C1H1", "--batch", "2",
                "--frames", "2", "--scan-unroll", "1", "--cpu-devices", "2",
                widths="4,6,8,4,0")
  ours, theirs = report["results"]
  assert ours["variant"] == "jax scan_unroll=1, 2 CPU devices x 1 core"
  assert ours["peak_memory_method"] == "peak RSS of its own child process"
  assert ours["first_loss"] == pytest.approx(theirs["first_loss"], rel=1e-5)
  assert report["settings"]["cpu_devices"] == 2
  assert "2 CPU devices x 1 core / torch" in capsys.readouterr().out


def test_train_run_times_the_input_pipeline_next_to_the_step(tmp_path, capsys):
  root = data_trees.gopro_tree(tmp_path / "gopro")   # 24x32 frames, 6 per sequence
  report = _run(tmp_path, "--mode", "train", "--models", "C1H1", "--batch", "2",
                "--frames", "3", "--height", "16", "--width", "16", "--scan-unroll", "1",
                "--no-torch", "--no-isolate", "--data", str(root), widths="4,6,8,4,0")
  pipe = report["pipeline"]
  assert pipe["sequences"] == 2 and pipe["clips_per_s"] > 0
  assert pipe["clips_per_s"] == pytest.approx(2 / pipe["batch_s"])
  (step,) = report["results"]
  assert step["clips_per_s"] == pytest.approx(2 * step["steps_per_s"])
  assert step["pipeline_clips_per_s_over_step_clips_per_s"] == pytest.approx(
      pipe["clips_per_s"] / step["clips_per_s"])
  out = capsys.readouterr().out
  assert "input pipeline on" in out and "pipeline / step" in out


@pytest.mark.parametrize("args,message", [
    (["--data", "/nonexistent"], "--mode train"),
    (["--mode", "train", "--models", "C1H1", "--height", "16", "--width", "24",
      "--data", "/nonexistent"], "--height equal to --width"),
    (["--models", "C3H1"], "unknown model"),
    (["--widths", "4,6,8"], "--widths"),
    (["--height", "18"], "multiples of 4"),
    (["--mode", "train", "--models", "C1H1,C2H2"], "one model"),
    (["--scan-unroll", "0"], "--scan-unroll"),
    (["--torch-threads", "-1"], "--torch-threads"),
    (["--mode", "train", "--processes", "0"], "--processes must be >= 1"),
    (["--processes", "2"], "--processes is for --mode train"),
    (["--mode", "train", "--processes", "4096"], "cores"),
    (["--mode", "train", "--batch", "3", "--processes", "2"], "divisible by --processes"),
    (["--mode", "train", "--cpu-devices", "-1"], "--cpu-devices must be >= 0"),
    (["--mode", "train", "--cpu-devices", "2", "--no-isolate"], "--cpu-devices > 1 is for"),
    (["--cpu-devices", "2"], "--cpu-devices > 1 is for"),
    (["--mode", "train", "--batch", "3", "--cpu-devices", "2"], "divisible by --cpu-devices"),
])
def test_bad_options_exit_2_with_one_message(tmp_path, capsys, args, message):
  out = tmp_path / "bench.json"
  assert cli.main([*args, "--out", str(out)]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and message in err and "Traceback" not in err
  assert not out.exists()
