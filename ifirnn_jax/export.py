"""`python -m ifirnn_jax.export --workdir W --out model.safetensors [--step S | --best]`.

Writes a training run's parameters as a weight file with the spec's PyTorch names and
layouts (load it with `ifr.load_model`, or into a PyTorch module of the spec).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Sequence

from safetensors import SafetensorError

from data_pipeline import console, outputs, termination
from data_pipeline.errors import DataError
from ifirnn_jax import checkpoint, runtime, weights


def _safetensors_error(out: Path, error: Exception) -> DataError:
  """SafetensorError carries the OS error only as text (e.g. "No space left on device
  (os error 28)"): turned into the message an OSError would give."""
  text = " ".join(str(error).split())
  code = re.search(r"os error (\d+)", text)
  if code:
    number = int(code.group(1))
    return outputs.write_error(out, OSError(number, os.strerror(number)))
  return DataError(f"{out}: cannot write the weight file ({text})")


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m ifirnn_jax.export", description=__doc__,
                                   formatter_class=console.HelpFormatter)
  parser.add_argument("--workdir", required=True,
                      help="the training run's workdir (the --workdir train wrote)")
  parser.add_argument("--out", required=True, help="the .safetensors file to write")
  parser.add_argument("--step", type=int, default=None,
                      help="the checkpoint step to export (default: the latest)")
  parser.add_argument("--best", action="store_true", help="the best validation PSNR checkpoint")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace an existing .safetensors file")
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  out = Path(args.out)
  try:  # everything about --out is checked before anything is read or written
    outputs.check_not_input(out, [args.workdir], flag="--out")
    if out.suffix.lower() != ".safetensors":
      raise DataError(f"{out}: --out must be a .safetensors file")
    outputs.check_parent(out)
    outputs.refuse_existing(out, args.overwrite)
    if outputs.exists(out):  # --overwrite replaces only a weight file
      outputs.check_replaceable_file(out, "weight", (".safetensors",))
    with termination.sigterm_as_interrupt():  # the partial file is removed either way
      model, params = checkpoint.load_checkpoint(args.workdir, args.step, best=args.best)
      weights.save_weights(params, out, model=model)
  except KeyboardInterrupt as e:
    what, status = termination.describe(e)
    print(f"{what}; nothing written", file=sys.stderr)
    return status
  except (checkpoint.CheckpointError, DataError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except OSError as e:  # a full disk, a name too long, a read-only folder, ...
    print(f"error: {outputs.write_error(out, e)}", file=sys.stderr)
    return 2
  except SafetensorError as e:  # the safetensors writer's own I/O errors
    print(f"error: {_safetensors_error(out, e)}", file=sys.stderr)
    return 2
  print(f"wrote {model.name} ({model.architecture()}) to {out}")
  return 0


if __name__ == "__main__":
  runtime.setup()
  sys.exit(main())
