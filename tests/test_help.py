"""What a new user reads first: every command's --help (exit 0, every option with its help
and default), and README and .gitignore facts that can be checked."""

import argparse
import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ifirnn_jax as ifr
from data_pipeline import default_data, pipeline_benchmark, synthesize
from data_pipeline.commandline import console
from ifirnn_jax import deblur, evaluate, export, gpu_check
from ifirnn_jax.benchmark import cli as benchmark_cli
from tests.tiny_models import tiny_params

ROOT = Path(__file__).resolve().parents[1]
PARSERS = {"ifirnn_jax.evaluate": evaluate.build_parser,
           "ifirnn_jax.deblur": deblur.build_parser,
           "ifirnn_jax.export": export.build_parser,
           "ifirnn_jax.benchmark": benchmark_cli.build_parser,
           "data_pipeline.synthesize": synthesize.build_parser,
           "data_pipeline.default_data": default_data.build_parser,
           "data_pipeline.pipeline_benchmark": pipeline_benchmark.build_parser}


def _flat(text):
  return " ".join(text.split())


def _in_required_group(parser, action):
  return any(action in g._group_actions and g.required
             for g in parser._mutually_exclusive_groups)


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_help_exits_0_and_documents_every_option_with_its_default(command):
  parser = PARSERS[command]()
  stdout = io.StringIO()
  with contextlib.redirect_stdout(stdout), pytest.raises(SystemExit) as exit_:
    parser.parse_args(["--help"])
  assert exit_.value.code == 0
  text = _flat(stdout.getvalue())
  assert f"usage: python -m {command}" in text and "(default: None)" not in text
  for action in parser._actions:
    if isinstance(action, argparse._HelpAction):
      continue
    assert action.help, f"{command} {action.option_strings[0]}: no help"
    # The help as printed follows the option (and its metavar) in the text.
    shown = _flat(console.HelpFormatter(command)._expand_help(action))
    assert re.search(re.escape(action.option_strings[-1]) + r"[^-]*?" + re.escape(shown[:40]),
                     text), (command, action.option_strings)
    switch = action.nargs == 0 and action.default is False
    if not (switch or action.required or _in_required_group(parser, action)):
      assert "default" in shown, f"{command} {action.option_strings[0]}: no default in {shown!r}"


def test_gpu_check_help_runs_nothing(tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  assert gpu_check.main(["--help"]) == 0
  assert "python -m ifirnn_jax.gpu_check OUT_DIR [SECONDS]" in capsys.readouterr().out
  assert list(tmp_path.iterdir()) == []  # no OUT_DIR called --help, no check run


def test_benchmark_description_names_every_mode():
  parser = benchmark_cli.build_parser()
  mode = next(a for a in parser._actions if a.dest == "mode")
  assert all(re.search(rf"^\s+{m}\s", parser.description, re.M) for m in mode.choices)


def test_train_help_exits_0_and_is_written_for_users():
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, "-m", "ifirnn_jax.train", "--help"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  text = result.stdout
  source = (ROOT / "ifirnn_jax" / "train.py").read_text()
  flags = re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", source)
  assert {"config", "workdir"} <= set(flags)
  for flag in flags:
    assert re.search(rf"^  --{flag}\n      \S", text, re.M), flag  # listed, with its help
  assert "--config.FIELD=VALUE" in text and re.search(r"--config\.\w+(\.\w+)*=\S", text)
  for developer_note in ("big_vision", "flax", "jitted", "(default: 'None')"):
    assert developer_note not in text


def test_plural_counts():
  assert [console.plural(n, "sequence") for n in (0, 1, 2)] == [
      "0 sequences", "1 sequence", "2 sequences"]


def test_no_command_prints_a_count_with_a_fixed_plural():
  """'{n} sequences' in an f-string prints '1 sequences'; console.plural does not."""
  pattern = re.compile(r"f\"[^\"]*\{[^}]+\} sequences")
  offenders = [f"{path.relative_to(ROOT)}:{number}"
               for folder in ("ifirnn_jax", "data_pipeline")
               for path in sorted((ROOT / folder).rglob("*.py"))
               for number, line in enumerate(path.read_text().splitlines(), 1)
               if pattern.search(line)]
  assert offenders == []


def test_readme_does_not_call_deblur_output_clipped():
  """deblur's output is not clipped: a model can overshoot [0, 1], and the README's API
  comment must not say otherwise."""
  model = ifr.IFIRNN(cells=1, iterations=1, n1=4, n2=4, n3=4, nh=4, num_resblocks=1)
  video = np.random.default_rng(0).uniform(size=(2, 8, 12, 3)).astype(np.float32)
  out = np.asarray(model.deblur(tiny_params(model, seed=1), video))
  assert out.min() < 0 or out.max() > 1
  readme = (ROOT / "README.md").read_text()
  line = next(line for line in readme.splitlines() if "= model.deblur(" in line)
  assert "unclipped" in line and "in [0,1]" not in line


def test_evaluate_default_output_folder_is_ignored_by_git():
  args = evaluate.build_parser().parse_args(["--weights", "w.safetensors", "--data", "d"])
  first = evaluate.default_out(args).parts[0]
  ignored = (ROOT / ".gitignore").read_text().splitlines()
  assert f"/{first}/" in ignored or f"{first}/" in ignored
