"""ifirnn_jax.evaluation.protocol: the protocol loop and its aggregation, against hand checks."""

import numpy as np
import pytest

import ifirnn_jax as ifr
from data_pipeline import image_io, layouts
from ifirnn_jax.evaluation import protocol, metrics
from tiny_models import tiny_params

TINY = dict(cells=1, iterations=2, n1=4, n2=4, n3=4, nh=4, num_resblocks=1, gated=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  root = tmp_path_factory.mktemp("data")
  rng = np.random.default_rng(0)
  for name, length in (("a", 6), ("b", 5)):
    for folder in ("blur", "sharp"):
      (root / "test" / name / folder).mkdir(parents=True)
    for i in range(length):
      sharp = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
      blur = ((sharp.astype(int) + np.roll(sharp, 1, 1)) // 2).astype(np.uint8)
      image_io.write_image(root / "test" / name / "sharp" / f"{i:03d}.png", sharp)
      image_io.write_image(root / "test" / name / "blur" / f"{i:03d}.png", blur)
  return layouts.find_sequences(root, "gopro", "test", blur_dir="blur")


def test_frame_results_score_the_protocols_frames_and_print_nothing(data, capsys):
  model = ifr.IFIRNN(**TINY)
  params = tiny_params(model)
  settings = [protocol.Setting(1), protocol.Setting(2, adaptive=True)]
  results = list(protocol.frame_results(model, params, data, settings, skip_first=2,
                                          skip_last=1))
  assert capsys.readouterr() == ("", "")
  assert len(results) == 2 * (6 + 5)
  scored = [(r.sequence, r.index) for r in results if r.scored and r.setting == 0]
  assert scored == [("a", 2), ("a", 3), ("a", 4), ("b", 2), ("b", 3)]  # [2, T - 1)
  first = next(r for r in results if r.scored)
  assert first.psnr == pytest.approx(float(metrics.psnr(first.output, first.sharp)))
  assert all(r.seconds is None for r in results if r.index == 0)  # compilation
  assert all(r.iterations == 1.0 for r in results if r.setting == 0)
  assert all(1.0 <= r.iterations <= 2.0 for r in results if r.setting == 1)
  # The middle scored frame of each sequence is marked as the example.
  assert [(r.sequence, r.index) for r in results if r.middle and r.setting == 0] == [
      ("a", 3), ("b", 3)]

  summaries = protocol.summarize(results, settings, skip_first=2, skip_last=1,
                                   keep_example=True)
  fixed = summaries[0]
  psnrs = [r.psnr for r in results if r.scored and r.setting == 0]
  assert fixed.frames == 5 and fixed.psnr == pytest.approx(np.mean(psnrs))
  assert [row["frames"] for row in fixed.sequences] == [3, 2]
  assert fixed.sequences[1]["psnr"] == pytest.approx(np.mean(psnrs[3:]))
  assert fixed.example["output"].dtype == np.uint8 and fixed.unscored == []
  again = protocol.evaluate_settings(model, params, data, settings, skip_first=2,
                                       skip_last=1)
  assert [s.psnr for s in again] == pytest.approx([s.psnr for s in summaries])


def test_bad_settings_are_refused_before_any_frame(data):
  model = ifr.IFIRNN(**dict(TINY, gated=False))
  params = tiny_params(model)
  with pytest.raises(protocol.EvalError, match="needs a gated"):
    next(protocol.frame_results(model, params, data, [protocol.Setting(2, True)]))
  with pytest.raises(protocol.EvalError, match="must be >= 0"):
    next(protocol.frame_results(model, params, data, [protocol.Setting(2)],
                                  skip_first=-1))
