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

from data_pipeline.commandline import console, termination
from data_pipeline.safe_io import outputs
from data_pipeline.errors import DataError
from ifirnn_jax import runtime
from ifirnn_jax.storage import checkpoint, weights


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


def export(args: argparse.Namespace) -> None:
  """Checks everything about --out before anything is read or written, then exports."""
  out = Path(args.out)
  try:
    outputs.check_not_input(out, [args.workdir], flag="--out")
    if out.suffix.lower() != ".safetensors":
      raise DataError(f"{out}: --out must be a .safetensors file")
    outputs.check_parent(out)
    outputs.refuse_existing(out, args.overwrite)
    if outputs.exists(out):  # --overwrite replaces only a weight file
      outputs.check_replaceable_file(out, "weight", (".safetensors",))
    model, params = checkpoint.load_checkpoint(args.workdir, args.step, best=args.best)
    weights.save_weights(params, out, model=model)  # a partial file is removed either way
  except OSError as e:  # a full disk, a name too long, a read-only folder, ...
    raise outputs.write_error(out, e) from e
  except SafetensorError as e:  # the safetensors writer's own I/O errors
    raise _safetensors_error(out, e) from e
  print(f"wrote {model.name} ({model.shape_fields()}) to {out}")


def main(argv: Sequence[str] | None = None) -> int:
  """The command line; returns the exit status (0, 2 bad input, 130 Ctrl-C, 143 SIGTERM)."""
  args = build_parser().parse_args(argv)
  return termination.run_command(lambda: export(args), (checkpoint.CheckpointError, DataError),
                                 "nothing written")


if __name__ == "__main__":
  runtime.setup()
  sys.exit(main())
