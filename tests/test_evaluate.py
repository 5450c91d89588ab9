"""The evaluate command line, in-process, on a GOPRO-recipe dataset made from a real video.

The dataset is made as GOPRO was (docs/training.md, Section 4.1 of the paper) by
`python -m data_pipeline.synthesize` from frames of a real handheld video, and checked
here against the formula written with numpy: B = g(mean_k g^-1(S_k)),
g(x) = x^(1/2.2), over windows of 3 consecutive frames; the ground truth is the middle
frame. Scores are checked against scikit-image on the frames evaluate saves.
"""

import csv
import functools
import json
from pathlib import Path

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import ifirnn_jax as ifr
import real_clip
from data_pipeline import synthesize
from ifirnn_jax.evaluation import metrics
from ifirnn_jax.evaluate import main
from ifirnn_jax.model.network import pad_to_multiple_of_4

WINDOW = 3     # source frames averaged into one blurry frame
HEIGHT = 96    # rows of the frames the model sees (block means of the real clip)
CROP_W = 150   # their columns, not a multiple of 4: the model pads
TINY = dict(cells=2, iterations=2, n1=4, n2=6, n3=8, nh=4, num_resblocks=1)


def sequences() -> dict[str, tuple[int, int]]:
  """Sequence name -> source frames [first, last) of the clip: 9 blurry frames, then the
  rest (at least 7). Evaluation scores the frames after a sequence's first 4 and before
  its last one."""
  num_frames = real_clip.facts().num_frames
  split = 9 * WINDOW
  assert num_frames >= split + 7 * WINDOW, f"{real_clip.PATH}: too few frames"
  return {"GOPR0001_11_00": (0, split), "GOPR0002_11_01": (split, num_frames)}


def gopro_blur(sharp_frames: np.ndarray) -> np.ndarray:
  """uint8 [K, H, W, 3] consecutive sharp frames -> uint8 [H, W, 3] gamma-domain mean."""
  linear = (sharp_frames.astype(np.float64) / 255) ** 2.2
  return np.round(255 * linear.mean(axis=0) ** (1 / 2.2)).astype(np.uint8)


def _read_source_frames(count: int) -> np.ndarray:
  """The first `count` frames of the real clip, block means down to HEIGHT x CROP_W: uint8."""
  scale = real_clip.step_for(HEIGHT, CROP_W)
  frames = real_clip.frames(count)[:, :HEIGHT * scale, :CROP_W * scale]
  blocks = frames.reshape(count, HEIGHT, scale, CROP_W, scale, 3).astype(np.float64)
  return np.round(blocks.mean(axis=(2, 4))).astype(np.uint8)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  """GOPRO_Large-style test split of two sequences, tiny weight files (plain and gated)."""
  root = tmp_path_factory.mktemp("evaluate")
  seqs = sequences()
  source = _read_source_frames(max(last for _, last in seqs.values()))
  for name, (first, last) in seqs.items():
    for i in range(first, last):
      (root / "source" / name).mkdir(parents=True, exist_ok=True)
      iio.imwrite(root / "source" / name / f"{i:06d}.png", source[i])
  dataset = root / "GOPRO"
  assert synthesize.main(["--frames", str(root / "source"), "--average", str(WINDOW),
                          "--out", str(dataset / "test")]) == 0
  lengths, blurry = {}, {}
  for name, (first, last) in seqs.items():
    blur_paths = _frames(dataset / "test" / name / "blur_gamma")
    sharp_paths = _frames(dataset / "test" / name / "sharp")
    assert len(blur_paths) == len(sharp_paths) == (last - first) // WINDOW
    for t, (blur, sharp) in enumerate(zip(blur_paths, sharp_paths)):  # the recipe
      window = source[first + WINDOW * t:first + WINDOW * (t + 1)]
      np.testing.assert_array_equal(iio.imread(blur), gopro_blur(window))
      np.testing.assert_array_equal(iio.imread(sharp), window[WINDOW // 2])
    lengths[name] = len(blur_paths)
    blurry[name] = np.stack([iio.imread(p) for p in blur_paths]).astype(np.float32) / 255

  model = ifr.IFIRNN(**TINY)
  params = model.init(jax.random.key(0))
  gated = ifr.IFIRNN(**TINY, gated=True, gate_hidden=2 * TINY["nh"])
  gated_params = gated.init(jax.random.key(1))
  weights = dict(plain=ifr.save_weights(params, root / "c2h2.safetensors", model=model))
  for label, bias in (("closed", [1e4, -1e4]), ("open", [-1e4, 1e4])):
    p = jax.tree.map(lambda x: x, gated_params)
    p["gate"]["fc2"]["bias"] = jnp.asarray(bias, jnp.float32)  # logits [stop, continue]
    weights[label] = ifr.save_weights(p, root / f"c2h2reg_{label}.safetensors", model=gated)
  weights["mixed"] = ifr.save_weights(mixed_gate(gated, gated_params, blurry.values(), 3),
                                      root / "c2h2reg_mixed.safetensors", model=gated)
  return dict(root=root, dataset=dataset, lengths=lengths, blurry=blurry,
              model=model, params=params, gated=gated, weights=weights)


def mixed_gate(model, params, clips, iterations):
  """Gate parameters that stop some frames after one iteration and let others run on.

  The gate continues iff the spatial mean of one hidden channel exceeds a threshold;
  the channel and threshold are picked from the values that channel takes at the
  first decision of every frame (fixed-N trajectory), in the widest gap of the middle
  half, so no decision sits at the threshold.
  """
  first_decision = []
  for clip in clips:
    state = model.initial_state(*clip.shape[1:3])
    for frame in clip:
      hidden = model.step(params, frame, state, iterations=1)[1]
      first_decision.append(np.asarray(hidden).mean(axis=(0, 1)))
      state = model.step(params, frame, state, iterations=iterations)[1]
  first_decision = np.asarray(first_decision)  # [frames, nh]
  channel = int(np.argmax(first_decision.std(axis=0)))
  values = np.sort(first_decision[:, channel])
  middle = values[len(values) // 4: 3 * len(values) // 4 + 1]
  gap = int(np.argmax(np.diff(middle)))
  threshold = (middle[gap] + middle[gap + 1]) / 2
  nh = model.nh  # fc1: [relu(h), relu(-h)]; fc2: continue = h[channel], stop = threshold
  fc2 = np.zeros((2 * nh, 2), np.float32)
  fc2[channel, 1], fc2[channel + nh, 1] = 1, -1
  gate = dict(fc1=dict(kernel=jnp.concatenate([jnp.eye(nh), -jnp.eye(nh)], axis=1),
                       bias=jnp.zeros(2 * nh)),
              fc2=dict(kernel=jnp.asarray(fc2), bias=jnp.asarray([threshold, 0.0], jnp.float32)))
  return dict(params, gate=gate)


def _evaluate(capsys, *args):
  status = main([str(a) for a in args])
  captured = capsys.readouterr()
  return status, captured.out, captured.err


def _frames(folder: Path) -> list[Path]:
  return sorted(folder.glob("*.png"))


def _read_csv(path: Path) -> list[dict]:
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def _skimage_scores(output_dir: Path, sharp_dir: Path) -> tuple[list[float], list[float]]:
  """PSNR / SSIM of the saved frames, paper protocol: skip the first 4 and the last."""
  psnr, ssim = [], []
  for path in _frames(sharp_dir)[4:-1]:
    out, sharp = iio.imread(output_dir / path.name), iio.imread(path)
    psnr.append(peak_signal_noise_ratio(sharp, out, data_range=255))
    ssim.append(structural_similarity(sharp, out, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, channel_axis=-1,
                                      data_range=255))
  return psnr, ssim


def test_scores_equal_scikit_image_on_saved_frames(data, capsys):
  saved, out = data["root"] / "saved", data["root"] / "eval"
  status, stdout, err = _evaluate(capsys, "--weights", data["weights"]["plain"], "--data",
                                  data["dataset"], "--layout", "gopro", "--split", "test",
                                  "--save-frames", saved, "--out", out)
  assert status == 0, err
  assert "C2H2 (N=2)" in stdout and "ETA" in err
  results = json.loads((out / "results.json").read_text())
  table = {row["sequence"]: row for row in _read_csv(out / "results.csv")}
  per_frame = _read_csv(out / "frames.csv")
  assert results["model"] == "C2H2" and results["iterations"] == 2
  assert results["mean_iterations"] == 2.0

  all_psnr, all_ssim = [], []
  for row in results["sequences"]:
    name = row["sequence"]
    sharp_dir = data["dataset"] / "test" / name / "sharp"
    assert len(_frames(saved / name)) == data["lengths"][name]  # every frame is saved
    psnr, ssim = _skimage_scores(saved / name, sharp_dir)
    assert row["frames"] == data["lengths"][name] - 5 == len(psnr)
    assert abs(row["psnr"] - np.mean(psnr)) < 1e-4
    assert abs(row["ssim"] - np.mean(ssim)) < 1e-4
    assert int(table[name]["frames"]) == row["frames"]
    assert abs(float(table[name]["psnr"]) - np.mean(psnr)) < 1e-4
    assert abs(float(table[name]["ssim"]) - np.mean(ssim)) < 1e-4
    all_psnr += psnr
    all_ssim += ssim
  assert len(results["sequences"]) == len(sequences())
  assert results["frames"] == len(all_psnr) == len(per_frame) == int(table["ALL"]["frames"])
  # Overall = mean over frames (not over sequences, whose frame counts differ).
  assert abs(results["psnr"] - np.mean(all_psnr)) < 1e-4
  assert abs(results["ssim"] - np.mean(all_ssim)) < 1e-4
  assert abs(float(table["ALL"]["psnr"]) - np.mean(all_psnr)) < 1e-4
  np.testing.assert_allclose([float(r["psnr"]) for r in per_frame], all_psnr, atol=1e-4)

  # The saved frames are the model's output on the whole clip, quantised.
  name = next(iter(sequences()))
  blur = data["blurry"][name]
  want = np.asarray(metrics.quantize(data["model"].deblur(data["params"], blur)), np.uint8)
  got = np.stack([iio.imread(p) for p in _frames(saved / name)])
  assert np.abs(got.astype(int) - want).max() <= 1 and np.mean(got != want) < 1e-3
  assert np.mean(all_psnr) != pytest.approx(results["blurry_psnr"], abs=0.01)


def test_sweep_writes_fig4_fig5_and_data(data, capsys):
  out, saved = data["root"] / "sweep", data["root"] / "sweep_frames"
  status, stdout, err = _evaluate(capsys, "--weights", data["weights"]["plain"], "--data",
                                  data["dataset"], "--sweep", "--out", out,
                                  "--save-frames", saved)
  assert status == 0, err
  sweep = json.loads((out / "sweep.json").read_text())
  k = 4  # default K = max(2 * N, 4) with N = 2
  assert [s["setting"] for s in sweep["settings"]] == [f"N={n}" for n in range(1, k + 1)]
  assert sweep["max_iterations"] == k and sweep["gate_iterations_counts"] is None
  assert all(s["ms_per_frame"] > 0 and s["mean_iterations"] == s["iterations"]
             for s in sweep["settings"])
  for name in ("fig4_best_iterations.png", "fig5_psnr_time.png"):
    image = iio.imread(out / name)
    assert image.ndim == 3 and min(image.shape[:2]) > 100, name
  assert not list(out.glob(".*"))  # no temporary files left

  # Fig. 4 recomputed from the saved frames of every N with scikit-image.
  frames = sweep["frames"]
  best = []
  for name in sequences():
    sharp = _frames(data["dataset"] / "test" / name / "sharp")[4:-1]
    for path in sharp:
      psnr = [peak_signal_noise_ratio(iio.imread(path),
                                      iio.imread(saved / f"N{n}" / name / path.name),
                                      data_range=255) for n in range(1, k + 1)]
      best.append(1 + int(np.argmax(psnr)))
  assert len(best) == frames
  want = {str(n): best.count(n) for n in range(1, k + 1)}
  assert sweep["best_iterations_counts"] == want
  fig4 = _read_csv(out / "fig4_best_iterations.csv")
  assert {r["iterations"]: int(r["best_restored_frames"]) for r in fig4} == want
  per_frame = _read_csv(out / "sweep_frames.csv")
  assert [int(r["best_iterations"]) for r in per_frame] == best

  fig5 = _read_csv(out / "fig5_psnr_time.csv")
  assert [int(r["iterations"]) for r in fig5] == list(range(1, k + 1))
  # The sweep's N=2 is the plain evaluation, and results.json reports the model's N.
  results = json.loads((out / "results.json").read_text())
  assert results["iterations"] == 2
  assert float(fig5[1]["psnr"]) == pytest.approx(results["psnr"], abs=1e-9)
  assert "ms/frame" in stdout and "N=4" in stdout


def test_adaptive_with_closed_gate_is_one_iteration(data, capsys):
  runs = {}
  for label, extra in (("adaptive", ["--adaptive"]), ("n1", ["--iterations", 1])):
    out, saved = data["root"] / f"closed_{label}", data["root"] / f"closed_{label}_frames"
    status, stdout, err = _evaluate(capsys, "--weights", data["weights"]["closed"], "--data",
                                    data["dataset"], "--out", out, "--save-frames", saved,
                                    *extra)
    assert status == 0, err
    runs[label] = (json.loads((out / "results.json").read_text()), saved, stdout)
  adaptive, n1 = runs["adaptive"][0], runs["n1"][0]
  assert adaptive["adaptive"] and adaptive["iterations"] == 2
  assert adaptive["mean_iterations"] == 1.0 and n1["mean_iterations"] == 1.0
  assert "C2H2-reg (adaptive, N<=2)" in runs["adaptive"][2] and "1.00" in runs["adaptive"][2]
  for key in ("psnr", "ssim", "frames"):
    assert adaptive[key] == n1[key]
  assert adaptive["sequences"] == [dict(row) for row in n1["sequences"]]
  for name in sequences():
    for a, b in zip(_frames(runs["adaptive"][1] / name), _frames(runs["n1"][1] / name)):
      np.testing.assert_array_equal(iio.imread(a), iio.imread(b))


def test_sweep_of_gated_model_with_open_gate(data, capsys):
  out = data["root"] / "sweep_open"
  status, stdout, err = _evaluate(capsys, "--weights", data["weights"]["open"], "--data",
                                  data["dataset"], "--sweep", "--max-iterations", 3,
                                  "--out", out)
  assert status == 0, err
  sweep = json.loads((out / "sweep.json").read_text())
  settings = {s["setting"]: s for s in sweep["settings"]}
  assert list(settings) == ["N=1", "N=2", "N=3", "adaptive N<=2"]
  # The gate always continues: the adaptive setting runs the model's N = 2 iterations.
  assert settings["adaptive N<=2"]["mean_iterations"] == 2.0
  assert settings["adaptive N<=2"]["psnr"] == settings["N=2"]["psnr"]
  assert sweep["gate_iterations_counts"] == {"1": 0, "2": sweep["frames"]}
  assert settings["adaptive N<=2"]["best_restored_frames"] is None
  assert (out / "fig5_psnr_time.png").is_file() and (out / "fig4_best_iterations.png").is_file()


@functools.partial(jax.jit, static_argnums=(0, 3))
def gate_trace(model, params, clip, iterations):
  """The greedy gate's GateTrace over a whole [1, T, H, W, 3] clip (H, W multiples of 4)."""
  return model.apply_sequence(params, clip, iterations=iterations, gate_mode="greedy")[2]


def test_adaptive_iterations_match_the_gate_on_the_whole_clip(data, capsys):
  out, saved = data["root"] / "mixed_gate", data["root"] / "mixed_gate_frames"
  status, stdout, err = _evaluate(capsys, "--weights", data["weights"]["mixed"], "--data",
                                  data["dataset"], "--adaptive", "--iterations", 3,
                                  "--out", out, "--save-frames", saved)
  assert status == 0, err
  results = json.loads((out / "results.json").read_text())
  gated = data["gated"]
  params = ifr.load_weights(data["weights"]["mixed"], gated)
  counts = []
  for name in sequences():
    blur = data["blurry"][name]
    clip = pad_to_multiple_of_4(jnp.asarray(blur)[None])
    trace = gate_trace(gated, params, clip, 3)
    counts += list(np.asarray(trace.iterations)[4:-1, 0])
    want = np.asarray(metrics.quantize(gated.deblur(params, blur, iterations=3,
                                                    adaptive=True)), np.uint8)
    got = np.stack([iio.imread(p) for p in _frames(saved / name)])
    assert np.abs(got.astype(int) - want).max() <= 1 and np.mean(got != want) < 1e-3
  assert 1 in counts and len(set(counts)) > 1  # it stopped some frames, not others
  per_frame = [float(r["iterations"]) for r in _read_csv(out / "frames.csv")]
  np.testing.assert_array_equal(per_frame, counts)
  assert results["mean_iterations"] == pytest.approx(np.mean(counts), abs=1e-6)
  assert f"{np.mean(counts):12.2f}" in stdout


def test_bad_input_exits_2_with_one_error_line(data, capsys, tmp_path):
  corrupt = tmp_path / "corrupt.safetensors"
  corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + b"\x00" * 64)
  blocker = tmp_path / "blocker"
  blocker.write_text("a file, not a folder")
  weights, dataset = data["weights"]["plain"], data["dataset"]
  out = tmp_path / "out"
  cases = [
      (["--weights", weights, "--data", tmp_path / "no_such_data", "--out", out],
       [f"{tmp_path / 'no_such_data'}", "not found"]),
      (["--weights", weights, "--model", "C1H2", "--data", dataset, "--out", out],
       [str(weights), "does not fit the model C1H2"]),
      (["--weights", corrupt, "--data", dataset, "--out", out],
       [str(corrupt), "not a readable safetensors weight file"]),
      (["--weights", weights, "--data", dataset, "--iterations", 0, "--out", out],
       ["--iterations must be an integer in 1..64, got 0"]),
      (["--weights", weights, "--data", dataset, "--adaptive", "--out", out],
       ["--adaptive needs a gated", "C2H2 ", "has no gate"]),
      (["--weights", weights, "--data", dataset, "--out", blocker / "results"],
       [str(blocker / "results"), f"{blocker} is a file, not a folder"]),
      (["--weights", weights, "--data", dataset, "--out", blocker],
       [f"output folder {blocker}", "not a folder"]),
  ]
  for args, expected in cases:
    status, stdout, err = _evaluate(capsys, *args)
    assert status == 2, (args, err)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, (args, err)
    assert all(text in errors[0] for text in expected), (args, errors[0])
    assert "Traceback" not in err and not stdout
  assert blocker.read_text() == "a file, not a folder"
  assert not (out / "results.json").exists()


def test_a_diverging_model_is_reported_not_scored(data, capsys, tmp_path):
  """A non-finite output would make PSNR NaN; evaluate stops with a message instead (here:
  F_L's last conv at float32's largest finite values, so its output overflows to inf)."""
  params = dict(data["params"])
  last = params["cells_1"]["F_L_2"]
  params["cells_1"] = dict(params["cells_1"], F_L_2={k: np.full_like(v, 3e38)
                                                      for k, v in last.items()})
  weights = ifr.save_weights(params, tmp_path / "nan.safetensors", model=data["model"])
  status, _, err = _evaluate(capsys, "--weights", weights, "--data", data["dataset"],
                             "--out", tmp_path / "eval")
  assert status == 2 and "Traceback" not in err
  assert "error: " in err and "output is not finite" in err and "GOPR0001_11_00" in err
  assert not (tmp_path / "eval" / "results.json").exists()
