"""The shape of the house: imports flow one way, and no module grows too large.

Read from the source with `ast` (imports inside functions count too).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ifirnn_jax", "data_pipeline")
MAX_LINES = 600


def _modules():
  """{dotted module name: path} of every Python file of the two packages."""
  found = {}
  for package in PACKAGES:
    for path in sorted((ROOT / package).rglob("*.py")):
      parts = path.relative_to(ROOT).with_suffix("").parts
      if parts[-1] == "__init__":
        parts = parts[:-1]
      found[".".join(parts)] = path
  return found


def _imports(path, modules):
  """The project modules `path` imports (resolving `from package import module`)."""
  names = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names.add(node.module)
      names.update(f"{node.module}.{alias.name}" for alias in node.names)
  return {n for n in names if n in modules}


def _graph():
  modules = _modules()
  return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def test_no_module_imports_itself_through_others():
  graph = _graph()
  cycles = []

  def visit(node, stack):
    for successor in graph[node]:
      if successor.startswith(node + "."):
        continue  # a package importing its own submodules
      if successor in stack:
        cycles.append(stack[stack.index(successor):] + [successor])
      elif len(stack) < 20:
        visit(successor, stack + [successor])

  for name in graph:
    visit(name, [name])
  assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:5])


def test_data_pipeline_never_imports_the_model_package():
  graph = _graph()
  wrong = {name: sorted(i for i in imports if i.startswith("ifirnn_jax"))
           for name, imports in graph.items() if name.startswith("data_pipeline")}
  assert not any(wrong.values()), wrong


def test_no_python_file_is_over_600_lines():
  long = {str(p.relative_to(ROOT)): n for p in _modules().values()
          if (n := len(p.read_text().splitlines())) > MAX_LINES}
  assert not long, long


# The model and what it computes: a pure description that knows nothing of the machine.
CORE = ("ifirnn_jax.model.network", "ifirnn_jax.model.layers", "ifirnn_jax.model.platforms",
        "ifirnn_jax.model.losses", "ifirnn_jax.evaluation.metrics", "ifirnn_jax.storage.weights")
RUNTIME = "ifirnn_jax.runtime"
COMMANDS = ("ifirnn_jax.train", "ifirnn_jax.evaluate", "ifirnn_jax.deblur",
            "ifirnn_jax.export", "ifirnn_jax.benchmark", "ifirnn_jax.gpu_check",
            "ifirnn_jax.cli")

# The layers of `ifirnn_jax` (docs/architecture.md) and the other layers each may import
# directly (its own modules and `data_pipeline` always). Above them all: the commands,
# the package's public API (`ifirnn_jax/__init__.py`) and the README's name of the
# PyTorch reference (`ifirnn_jax.torch_reference`).
LAYERS = {
    "ifirnn_jax.runtime": (),
    "ifirnn_jax.model": (),
    "ifirnn_jax.storage": ("ifirnn_jax.model",),
    "ifirnn_jax.evaluation": ("ifirnn_jax.model",),
    "ifirnn_jax.training": ("ifirnn_jax.model", "ifirnn_jax.runtime"),
}
TOP = COMMANDS + ("ifirnn_jax", "ifirnn_jax.torch_reference")
# Generic utilities of both packages: they know nothing of data or models.
UTILITIES = ("data_pipeline.safe_io", "data_pipeline.commandline")


def _within(name, packages):
  return any(name == p or name.startswith(p + ".") for p in packages)


def test_the_core_imports_neither_the_runtime_layer_nor_the_commands():
  graph = _graph()
  for core in CORE:
    reached, todo = set(), [core]
    while todo:  # everything `core` imports, directly or through others
      for name in graph[todo.pop()] - reached:
        reached.add(name)
        todo.append(name)
    wrong = sorted(n for n in reached if _within(n, (RUNTIME,) + COMMANDS))
    assert not wrong, f"{core} imports {wrong}"


def test_every_module_of_the_model_package_has_its_place_in_a_layer():
  placed = {name: _within(name, tuple(LAYERS) + COMMANDS) or name in TOP
            for name in _modules() if _within(name, ("ifirnn_jax",))}
  assert all(placed.values()), sorted(name for name, ok in placed.items() if not ok)


def test_each_layer_imports_only_the_layers_below_it():
  wrong = {}
  for name, imports in _graph().items():
    layer = next((l for l in LAYERS if _within(name, (l,))), None)
    if layer is None:
      continue
    allowed = (layer,) + LAYERS[layer]
    bad = sorted(i for i in imports if _within(i, ("ifirnn_jax",)) and not _within(i, allowed))
    if bad:
      wrong[name] = bad
  assert not wrong, wrong
  # Of the data side, the model takes only the pixel levels, and the runtime layer nothing.
  data = {name: sorted(i for i in imports if _within(i, ("data_pipeline",))
                       and i not in ("data_pipeline", "data_pipeline.pixels"))
          for name, imports in _graph().items() if _within(name, ("ifirnn_jax.model", RUNTIME))}
  assert not any(data.values()), data
  assert "data_pipeline.pixels" not in set().union(
      *(i for n, i in _graph().items() if _within(n, (RUNTIME,))))


def test_the_generic_utilities_import_nothing_of_data_or_models():
  graph = _graph()
  wrong = {name: sorted(i for i in imports
                        if not _within(i, UTILITIES) and i not in ("data_pipeline",
                                                                   "data_pipeline.errors"))
           for name, imports in graph.items() if _within(name, UTILITIES)}
  assert not any(wrong.values()), wrong


def test_backend_queries_exec_and_mallopt_live_only_in_the_runtime_layer():
  words = ("default_backend", "execv", "execve", "mallopt")
  found = {name: [w for w in words if w in path.read_text()]
           for name, path in _modules().items() if not _within(name, (RUNTIME,))}
  assert not any(found.values()), {k: v for k, v in found.items() if v}
  for name in CORE:  # nor does the core ask which devices there are
    text = _modules()[name].read_text()
    assert "jax.devices(" not in text and "device_count(" not in text, name


# What implementing a random number generator takes: its constants (multipliers, key
# increments, seed scramblers: 32- and 64-bit numbers, mostly written in hex) and its
# bit mixing (xor, shifts right). NumPy's and TensorFlow's generators do that for
# data_pipeline; `1 << n` (a power of two) is the one shift allowed.
_GENERATOR_NAMES = ("philox", "threefry", "xorshift", "xoshiro", "splitmix", "pcg",
                    "mersenne", "lcg", "box_muller")


def _generator_code(source):
  """What in `source` looks like the inside of a random number generator: [(line, what)]."""
  found = []
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 2**16:
      text = ast.get_source_segment(source, node) or ""
      power_of_two = node.value & (node.value - 1) == 0
      if text.lower().startswith("0x") or (node.value >= 2**31 and not power_of_two):
        found.append((node.lineno, f"constant {text}"))
    elif isinstance(node, (ast.BinOp, ast.AugAssign)):
      op = node.op
      one = isinstance(node, ast.BinOp) and isinstance(node.left, ast.Constant) and (
          node.left.value == 1)
      if isinstance(op, (ast.BitXor, ast.RShift)) or (isinstance(op, ast.LShift) and not one):
        found.append((node.lineno, type(op).__name__))
    elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and any(
        name in node.name.lower() for name in _GENERATOR_NAMES):
      found.append((node.lineno, f"def {node.name}"))
  return found


def test_no_module_in_data_pipeline_implements_a_random_number_generator():
  found = {name: _generator_code(path.read_text()) for name, path in _modules().items()
           if _within(name, ("data_pipeline",))}
  assert not any(found.values()), {k: v for k, v in found.items() if v}
  # The check finds one: a SplitMix64 step, and a Philox round's constants.
  splitmix = ("def splitmix64(x):\n  x = (x + 0x9E3779B97F4A7C15) % 2**64\n"
              "  x = (x ^ (x >> 30)) * 13787848793156543929\n  return x ^ (x >> 31)\n")
  assert {what for _, what in _generator_code(splitmix)} == {
      "def splitmix64", "constant 0x9E3779B97F4A7C15", "constant 13787848793156543929",
      "BitXor", "RShift"}
  assert _generator_code("M0, W0 = 0xD2511F53, 0x9E3779B9\n") == [
      (1, "constant 0xD2511F53"), (1, "constant 0x9E3779B9")]


def _leading_text(node):
  """The literal start of a str or f-string node ('' for anything else)."""
  if isinstance(node, ast.Constant) and isinstance(node.value, str):
    return node.value
  if isinstance(node, ast.JoinedStr) and node.values:
    return _leading_text(node.values[0])
  return ""


def test_only_termination_decides_a_failed_commands_exit_status():
  """One exit-status policy (`termination.run_command`): no other module prints its own
  `error:` line, exits with a non-zero constant, or has a `main` return one."""
  found = []
  for name, path in _modules().items():
    if name == "data_pipeline.commandline.termination":
      continue
    for node in ast.walk(ast.parse(path.read_text())):
      if not isinstance(node, (ast.Call, ast.FunctionDef)):
        continue
      if isinstance(node, ast.FunctionDef):
        found += [f"{name}.main returns {r.value.value}" for r in ast.walk(node)
                  if node.name == "main" and isinstance(r, ast.Return)
                  and isinstance(r.value, ast.Constant) and r.value.value not in (0, None)]
        continue
      callee = ast.unparse(node.func)
      if callee == "print" and node.args and _leading_text(node.args[0]).startswith("error:"):
        found.append(f"{name}:{node.lineno} prints an error line")
      if (callee == "sys.exit" and node.args and isinstance(node.args[0], ast.Constant)
          and node.args[0].value not in (0, None)):
        found.append(f"{name}:{node.lineno} exits with {node.args[0].value}")
  assert not found, found
