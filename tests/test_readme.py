"""Every command the README shows is one the project accepts.

Commands that need a dataset or a GPU cannot run here at full size; this test checks
each `python -m MODULE ...` line in the README's bash blocks: the module exists, its
`--help` works, every `--flag` it uses is one the module defines, and every
`--config.<field>` override names a real field of that config. The quick-start
commands themselves run in CI (.ci/run runs the test command; test_demo.py runs the
demo config end to end), and every Python block runs here.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language):
  return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def _commands():
  commands = []
  for block in _blocks("bash"):
    for line in block.replace("\\\n", " ").splitlines():
      for part in line.split("&&"):
        part = part.strip()
        if part.startswith("python -m "):
          commands.append(part)
  return commands


COMMANDS = _commands()
HELP_CACHE = {}


def _help(module):
  if module not in HELP_CACHE:
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    # absl (ifirnn_jax.train) exits with status 1 after printing its help; argparse with 0.
    ok = result.returncode == 0 or (module == "ifirnn_jax.train" and "--workdir" in
                                    result.stdout + result.stderr)
    assert ok, f"{module} --help failed:\n{result.stderr[-2000:]}"
    HELP_CACHE[module] = result.stdout + result.stderr
  return HELP_CACHE[module]


def test_readme_shows_the_commands_users_need():
  modules = {c.split()[2] for c in COMMANDS}
  assert {"ifirnn_jax.train", "ifirnn_jax.evaluate", "ifirnn_jax.deblur",
          "ifirnn_jax.export", "ifirnn_jax.benchmark", "data_pipeline.synthesize"} <= modules
  quick_start = README.split("## Quick start")[1].split("\n## ")[0]
  assert "python -m pytest" in quick_start


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_flags_exist(command):
  words = command.split()
  module = words[2]
  help_text = _help(module)
  for word in words[3:]:
    if not word.startswith("--"):
      continue
    flag = word.split("=")[0]
    if flag.startswith("--config."):
      config_file = words[words.index("--config") + 1]
      _check_config_field(config_file, flag[len("--config."):])
    else:
      assert re.search(rf"{re.escape(flag)}\b", help_text), f"{module} has no flag {flag}"


def _check_config_field(config_file, dotted):
  from ml_collections import config_flags  # noqa: F401  (imports absl flags)
  import importlib.util
  path, _, arg = config_file.partition(":")
  spec = importlib.util.spec_from_file_location("readme_config", ROOT / path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  node = module.get_config(arg or None)
  for key in dotted.split("."):
    assert key in node, f"{config_file} has no field {dotted}"
    node = node[key]


def test_readme_python_blocks_run(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  for block in _blocks("python"):
    if "torch_reference" in block:
      # Needs a weight file from the API block first; run after it in the same namespace.
      continue
    namespace = {}
    exec(compile(block.replace('ifr.load_checkpoint("workdirs/demo")', "(model, params)"),
                 "README", "exec"), namespace)
  torch_block = next(b for b in _blocks("python") if "torch_reference" in b)
  exec(compile("import ifirnn_jax as ifr\n" + torch_block, "README-torch", "exec"), {})
