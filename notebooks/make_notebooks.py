"""Writes notebooks/quickstart.ipynb and notebooks/reproduce_gopro.ipynb (no outputs).

    python notebooks/make_notebooks.py

The notebooks are generated from the cell sources below so that the two share their
install and helper cells word for word; edit this file, run it, and commit both the
script and the .ipynb files. tests/test_notebooks.py runs the notebooks at TINY size.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def _src(text: str) -> str:
  return textwrap.dedent(text).strip("\n")


# ------------------------------------------------------------------ shared cells
def install_cell(extras: str) -> str:
  """Colab: clone + pip install; elsewhere: use the checkout the notebook runs in."""
  target = '"-e", str(REPO)' if not extras else f'"-e", f"{{REPO}}[{extras}]"'
  return _src(f'''
      import os
      import subprocess
      import sys
      from pathlib import Path

      IN_COLAB = "google.colab" in sys.modules


      def find_repo(start: Path) -> Path | None:
        """The folder holding setup.cfg and ifirnn_jax/, at `start` or above it."""
        for folder in (start, *start.parents):
          if (folder / "setup.cfg").is_file() and (folder / "ifirnn_jax").is_dir():
            return folder
        return None


      if IN_COLAB:
        REPO = Path("/content") / Path(REPO_URL.rstrip("/")).name.removesuffix(".git")
        if not REPO.is_dir():
          subprocess.run(["git", "clone", "--depth", "1", REPO_URL, str(REPO)], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", {target}], check=True)
        # Packages Colab had already imported at an older version need a fresh runtime.
        import importlib.metadata
        stale = [name for name in ("numpy", "scipy", "jax", "matplotlib")
                 if name in sys.modules and getattr(sys.modules[name], "__version__", None)
                 != importlib.metadata.version(name)]
        if stale:
          print(f"Installed new versions of {{', '.join(stale)}}: restarting the runtime. "
                "Run all cells again (the install is then quick).")
          os.kill(os.getpid(), 9)
      else:  # a local Jupyter or the tests: the checkout we run in, already installed
        REPO = find_repo(Path.cwd().resolve())
        if REPO is None:
          raise RuntimeError(f"{{Path.cwd()}} is not inside an ifirnn-jax checkout: start "
                             "Jupyter in the repository (after `pip install -e .`)")
      os.chdir(REPO)
      if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
      print(f"ifirnn-jax at {{REPO}} (Python {{sys.version.split()[0]}}, Colab: {{IN_COLAB}})")
  ''')


HELPERS = _src('''
    import importlib.util
    import re
    import time

    # absl INFO lines shown from the commands: metrics, progress and the training driver
    # (checkpointing and library chatter go to the log file only).
    SHOWN_INFO = ("logging_writer.py", "local.py", "train.py")


    def run_module(module: str, *args, log: Path | None = None) -> None:
      """Runs `python -m module args` with this kernel's Python; streams its output.

      The complete output is appended to `log` (default: <OUT_DIR>/<module>.log).
      Raises RuntimeError when the command fails (its `error: ...` line is shown).
      """
      args = [str(a) for a in args]
      log = log or OUT_DIR / f"{module}.log"
      print("$ python -m", module, " ".join(args), flush=True)
      start = time.monotonic()
      with open(log, "a") as f, subprocess.Popen(
          [sys.executable, "-m", module, *args], stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout:
          f.write(line)
          noise = re.match(r"I\\d{4} |WARNING: All log messages before absl", line)
          if not noise or any(name in line for name in SHOWN_INFO):
            print(line, end="", flush=True)
      if proc.returncode:
        raise RuntimeError(f"python -m {module} failed (exit status {proc.returncode}); "
                           f"full output in {log}")
      print(f"[{module}: done in {time.monotonic() - start:.0f}s]")


    def load_config(path: str, arg: str | None = None):
      """get_config(arg) of a configs/*.py file (the ConfigDict the commands use)."""
      spec = importlib.util.spec_from_file_location(Path(path).stem, REPO / path)
      module = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(module)
      return module.get_config(arg)
''')


def _notebook(cells: list, *, gpu: bool) -> nbformat.NotebookNode:
  nb = new_notebook()
  nb.metadata = {
      "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
      "language_info": {"name": "python"},
      "colab": {"provenance": [], **({"gpuType": "T4"} if gpu else {})},
  }
  if gpu:
    nb.metadata["accelerator"] = "GPU"
  for index, (kind, source, *tags) in enumerate(cells):
    cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
    cell.id = f"cell-{index:02d}"  # stable ids: regenerating gives the same file
    if tags:
      cell.metadata["tags"] = list(tags)
    nb.cells.append(cell)
  nbformat.validate(nb)
  return nb


# ------------------------------------------------------------------ quickstart
QUICKSTART = [
    ("md", _src('''
        # IFI-RNN video deblurring: quick start (CPU)

        ifirnn-jax reimplements IFI-RNN (Nah, Son, Lee, *Recurrent Neural Networks with
        Intra-Frame Iterations for Video Deblurring*, CVPR 2019) in JAX/Flax. This
        notebook, on a CPU-only runtime:

        1. installs the package,
        2. makes the embedded dataset (blurry videos synthesised from photographs shipped
           with scikit-image; nothing is downloaded),
        3. trains the small demo model (`configs/demo.py`), or restores the run if its
           work directory already holds it,
        4. shows the training curve and the PSNR/SSIM table (the paper's protocol),
        5. deblurs a blurry video written from the embedded data, and one of your own
           (upload cell), showing frames before and after,
        6. exports the weights (`.safetensors`) and uses them from Python.

        **Colab:** *Runtime > Run all*; a CPU runtime is enough. **First** set `REPO_URL`
        in the next cell to the address you clone the project from (the one given is a
        placeholder). With `OUTPUT_ROOT` on a mounted Google Drive folder, a later session
        restores the trained model instead of training again.

        **Elsewhere** (local Jupyter): start Jupyter inside the repository after
        `pip install -e .`; the notebook then uses that checkout and installs nothing.

        `TINY = True` runs every step at toy sizes in about a minute (the project's tests
        run the notebook so); its numbers mean nothing.
    ''')),
    ("code", _src('''
        # Parameters (the tests override them in a cell inserted below this one).
        TINY = False  # True: toy sizes, about a minute; the numbers then mean nothing
        REPO_URL = "https://github.com/ifirnn-jax/ifirnn-jax"  # placeholder: your clone URL
        OUTPUT_ROOT = None  # data/, workdirs/, outputs/ go here; None: the repository
                            # (TINY: a new temporary folder)
        TRAIN_STEPS = None  # None: the demo's schedule (3200 steps, minutes on 2 CPU
                            # cores); fewer: faster, and a weaker model
        MY_VIDEO = None  # a video file (or folder of frames) of yours; None: upload on Colab
        MAX_FRAMES = 60  # deblur at most this many frames of your video
    '''), "parameters"),
    ("md", "## 1. Install"),
    ("code", install_cell(extras="")),
    ("code", HELPERS + "\n\n" + _src('''
        import json
        import tempfile

        import matplotlib.pyplot as plt
        import numpy as np
        from IPython.display import Image, Markdown, display

        if OUTPUT_ROOT is None:
          OUTPUT_ROOT = tempfile.mkdtemp(prefix="ifirnn_quickstart_") if TINY else REPO
        ROOT = Path(OUTPUT_ROOT).resolve()
        DATA_DIR = ROOT / "data" / ("default_tiny" if TINY else "default")
        WORKDIR = ROOT / "workdirs" / ("demo_tiny" if TINY else "demo")
        OUT_DIR = ROOT / "outputs" / ("quickstart_tiny" if TINY else "quickstart")
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        print(f"data: {DATA_DIR}\\nrun: {WORKDIR}\\nvideos: {OUT_DIR}")
    ''')),
    ("md", _src('''
        ## 2. The embedded dataset

        GOPRO-style videos made from photographs: a hand-held camera path and moving
        objects rendered at a high frame rate, averaged over 7 to 13 frames in the gamma
        domain (`blur_gamma`), with the middle frame as the sharp target
        (`data_pipeline/default_data.py`). Train and test use different photographs.
        Made once (about a minute), then reused.
    ''')),
    ("code", _src('''
        from data_pipeline import default_data, image_io, layouts

        config = load_config("configs/demo.py", "tiny" if TINY else None)
        default_data.ensure_default_dataset(DATA_DIR, **config.data.default_data)
        test_sequences = layouts.find_sequences(DATA_DIR, "gopro", "test",
                                                blur_dir=config.data.blur_dir)
        train_sequences = layouts.find_sequences(DATA_DIR, "gopro", "train",
                                                 blur_dir=config.data.blur_dir)
        height, width = image_io.read_image(test_sequences[0].blur_paths[0]).shape[:2]
        print(f"{len(train_sequences)} train / {len(test_sequences)} test sequences of "
              f"{test_sequences[0].num_frames} frames, {width}x{height}")

        example = default_data.example_image(DATA_DIR, rows=min(2, len(test_sequences)))
        plt.figure(figsize=(8, 8 * example.shape[0] / example.shape[1]))
        plt.imshow(example)
        plt.title("blurry | sharp (test split)")
        plt.axis("off")
        plt.show()
    ''')),
    ("md", _src('''
        ## 3. Train the demo model

        `python -m ifirnn_jax.train --config configs/demo.py`: a small C1H1 (one cell, one
        iteration: the paper's baseline RNN, the variant that learned fastest on 2 CPU
        cores), 4 clips of 4 frames of 96x96 per step, split over one CPU device per core
        (`config.cpu_devices`). Checkpoints
        go to the work directory; running this cell again resumes from the last one (a
        finished run is restored, not retrained). At the end the run evaluates the test
        split with the paper's protocol (first 4 and last frame of every sequence not
        scored) and prints the table.
    ''')),
    ("code", _src('''
        flags = [f"--config=configs/demo.py{':tiny' if TINY else ''}",
                 f"--config.data.root={DATA_DIR}", f"--workdir={WORKDIR}"]
        if TRAIN_STEPS:
          flags.append(f"--config.num_train_steps={TRAIN_STEPS}")
        run_module("ifirnn_jax.train", *flags)
    ''')),
    ("md", _src('''
        ## 4. Training curve and PSNR table

        The run logs TensorBoard scalars to the work directory (open them with
        `%load_ext tensorboard` / `%tensorboard --logdir <workdir>` for the full set).
    ''')),
    ("code", _src('''
        from tensorboard.backend.event_processing import event_accumulator
        from tensorboard.util import tensor_util


        def read_scalars(workdir: Path, tags: list[str]) -> dict[str, np.ndarray]:
          """{tag: [steps, 2] array of (step, value)} from the run's TensorBoard events."""
          acc = event_accumulator.EventAccumulator(
              str(workdir), size_guidance={event_accumulator.TENSORS: 0})
          acc.Reload()
          return {tag: np.array([(e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
                                 for e in acc.Tensors(tag)]) for tag in tags}


        scalars = read_scalars(WORKDIR, ["loss", "val_psnr", "val_blurry_psnr"])
        fig, (ax_loss, ax_psnr) = plt.subplots(1, 2, figsize=(11, 3.5))
        ax_loss.semilogy(*scalars["loss"].T)
        ax_loss.set(xlabel="step", ylabel="training loss (MSE)", title="training loss")
        ax_psnr.plot(*scalars["val_psnr"].T, "o-", label="model")
        ax_psnr.plot(*scalars["val_blurry_psnr"].T, "--", color="gray", label="blurry input")
        ax_psnr.set(xlabel="step", ylabel="PSNR (dB)", title="validation PSNR")
        ax_psnr.legend()
        plt.show()
    ''')),
    ("code", _src('''
        import csv

        with open(WORKDIR / "eval" / "results.csv") as f:
          rows = list(csv.DictReader(f))
        lines = ["| sequence | frames | blurry PSNR (dB) | model PSNR (dB) | gain (dB) "
                 "| blurry SSIM | model SSIM |", "|---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
          p, bp = float(r["psnr"]), float(r["blurry_psnr"])
          lines.append(f"| {r['sequence']} | {r['frames']} | {bp:.2f} | {p:.2f} | "
                       f"{p - bp:+.2f} | {float(r['blurry_ssim']):.4f} | "
                       f"{float(r['ssim']):.4f} |")
        model_name = json.loads((WORKDIR / "eval" / "results.json").read_text())["model"]
        display(Markdown(f"**{model_name} on the embedded test split** (the paper's protocol; "
                         "ALL = frame average)\\n\\n" + "\\n".join(lines)))
        print("blurry input | model output | sharp (a middle test frame):")
        display(Image(filename=str(WORKDIR / "before_after.png")))
    ''')),
    ("md", _src('''
        ## 5. Deblur a video

        A blurry test sequence of the embedded data, written as an H.264 video, then
        `python -m ifirnn_jax.deblur --compare`, which streams it frame by frame through
        the network and writes input | output side by side (same frame rate and count).
    ''')),
    ("code", _src('''
        import itertools

        from data_pipeline.video import FrameSink, open_frames


        def frame_at(video: Path, index: int) -> np.ndarray:
          """Frame `index` of a video file (uint8 [H, W, 3])."""
          with open_frames(video) as source:
            return next(itertools.islice(source, index, None))


        def show(images: list[np.ndarray], titles: list[str], height: float = 3.5) -> None:
          width = sum(image.shape[1] / image.shape[0] for image in images) * height
          fig, axes = plt.subplots(1, len(images), figsize=(min(width, 16), height))
          for ax, image, title in zip(np.atleast_1d(axes), images, titles):
            ax.imshow(image)
            ax.set_title(title)
            ax.axis("off")
          plt.show()


        sequence = test_sequences[0]
        blurry_video = OUT_DIR / f"{sequence.name}_blurry.mp4"
        with FrameSink(blurry_video, fps=24, overwrite=True) as sink:
          for path in sequence.blur_paths:
            sink.write(image_io.read_image(path))
        compare_video = OUT_DIR / f"{sequence.name}_compare.mp4"
        run_module("ifirnn_jax.deblur", "--input", blurry_video, "--output", compare_video,
                   "--workdir", WORKDIR, "--compare", "--overwrite")

        with open_frames(blurry_video) as src, open_frames(compare_video) as out:
          print(f"{blurry_video.name}: {src.num_frames} frames {src.width}x{src.height}; "
                f"{compare_video.name}: {out.num_frames} frames {out.width}x{out.height}")
          assert out.num_frames == src.num_frames == sequence.num_frames
        middle = sequence.num_frames // 2
        pair = frame_at(compare_video, middle)
        show([pair[:, :width], pair[:, width:], image_io.read_image(sequence.sharp_paths[middle])],
             [f"blurry (frame {middle})", "deblurred", "sharp (ground truth)"])
    ''')),
    ("md", _src('''
        ### Your own video

        On Colab the next cell opens an upload dialog (any video ffmpeg reads; cancel to
        skip). Elsewhere set `MY_VIDEO` in the parameters cell. The first `MAX_FRAMES`
        frames are deblurred at full size (frames over 1920x1088 go in tiles); the demo
        model is small and trained on synthetic blur, so expect a modest effect on real
        shake: the Table 1 models (`reproduce_gopro.ipynb`) are the real thing.
    ''')),
    ("code", _src('''
        my_video = None
        if MY_VIDEO:
          my_video = Path(MY_VIDEO)
        elif IN_COLAB:
          from google.colab import files
          uploaded = files.upload()
          for name, content in uploaded.items():
            (OUT_DIR / name).write_bytes(content)
          my_video = OUT_DIR / next(iter(uploaded)) if uploaded else None

        if my_video is None:
          print("No video of your own (set MY_VIDEO, or upload one on Colab): step skipped.")
        else:
          my_output = OUT_DIR / f"{my_video.stem}_compare.mp4"
          run_module("ifirnn_jax.deblur", "--input", my_video, "--output", my_output,
                     "--workdir", WORKDIR, "--compare", "--overwrite",
                     "--max-frames", MAX_FRAMES)
          with open_frames(my_output) as out:
            frames, half = out.num_frames, out.width // 2
          pair = frame_at(my_output, frames // 2)
          show([pair[:, :half], pair[:, half:]],
               [f"{my_video.name} (frame {frames // 2})", "deblurred"], height=4)
          print(f"wrote {my_output} ({frames} frames, input | output)")
          if IN_COLAB:
            files.download(str(my_output))
    ''')),
    ("md", _src('''
        ## 6. Export the weights and use them from Python

        `python -m ifirnn_jax.export` writes the run's parameters as `.safetensors` with the
        PyTorch names and layouts of the spec; `ifr.load_model` infers the architecture
        from the file. `model.deblur` takes a whole clip `[T, H, W, 3]` in `[0, 1]`.
    ''')),
    ("code", _src('''
        import ifirnn_jax as ifr
        from ifirnn_jax.evaluation import metrics

        weights_file = OUT_DIR / "demo.safetensors"
        run_module("ifirnn_jax.export", "--workdir", WORKDIR, "--out", weights_file,
                   "--overwrite")
        model, params = ifr.load_model(weights_file)
        print(model)

        blur = np.stack([image_io.read_image(p) for p in sequence.blur_paths]) / np.float32(255)
        sharp = np.stack([image_io.read_image(p) for p in sequence.sharp_paths]) / np.float32(255)
        restored = model.deblur(params, blur)  # [T, H, W, 3]
        print(f"{sequence.name}, all {len(blur)} frames: PSNR blurry "
              f"{float(metrics.psnr(blur, sharp).mean()):.2f} dB -> model "
              f"{float(metrics.psnr(restored, sharp).mean()):.2f} dB")
    ''')),
]


# ------------------------------------------------------------------ reproduce_gopro
REPRODUCE = [
    ("md", _src('''
        # IFI-RNN: reproduce Table 1 on GOPRO (GPU)

        Trains one of the paper's Table 1 models on GOPRO with the paper's recipe
        (Section 4.2: Adam 1e-4 halved every 200 epochs, 500 epochs, 4 clips x 12 frames,
        256x256 crops, `blur_gamma`), evaluates it with the paper's protocol (every test
        sequence, first 4 and last frame not scored, 8-bit RGB PSNR and Gaussian SSIM),
        prints the result beside the paper's number, then sweeps the number of intra-frame
        iterations N for the paper's Fig. 4 and Fig. 5.

        **Colab:** *Runtime > Change runtime type > GPU*, set `REPO_URL` below to the
        address you clone the project from (the one given is a placeholder), and
        `GOPRO_ROOT` to your copy of GOPRO (layout
        `GOPRO_ROOT/{train,test}/<sequence>/{blur,blur_gamma,sharp}/*.png`), e.g. on
        Google Drive (mounted by the notebook). Then *Run all*.

        **Time:** the full schedule is about 22k steps (86 PFLOP for C2H3): many hours on
        one GPU, more than one Colab session. The work directory goes to Drive, and the
        training cell resumes exactly from the last checkpoint: after a disconnect, run
        all cells again.

        **Which GOPRO:** the paper used GOPRO downsampled to 960x540 before averaging; the
        published `GOPRO_Large` is 1280x720, and numbers on the two are not comparable
        (docs/training.md: `python -m data_pipeline.synthesize ... --downsample 960x540`
        makes the paper's version from `GOPRO_Large_all`).

        `TINY = True` runs every step on a toy GOPRO-layout dataset made here in
        seconds, on a CPU (the project's tests run the notebook so); its numbers mean
        nothing.
    ''')),
    ("code", _src('''
        # Parameters (the tests override them in a cell inserted below this one).
        TINY = False  # True: a toy dataset and model on the CPU, about a minute
        REPO_URL = "https://github.com/ifirnn-jax/ifirnn-jax"  # placeholder: your clone URL
        GOPRO_ROOT = "/content/drive/MyDrive/GOPRO_Large"  # {train,test}/<seq>/{blur_gamma,sharp}
        CONFIG = "configs/gopro_c2h3.py"  # any Table 1 config: configs/gopro_*.py
        OUTPUT_ROOT = None  # workdirs/ go here; None: Google Drive's ifirnn_runs/ when GOPRO
                            # is on Drive, else the repository (TINY: a new temporary folder)
        COPY_TO_LOCAL = True  # Colab: copy GOPRO from Drive to the runtime's disk first (once
                              # per session; training reads every PNG, and Drive is slow)
        EXTRA_FLAGS = []  # more training flags, e.g. ["--config.model.compute_dtype=bfloat16"]
                          # or, short of GPU memory, ["--config.model.remat=True"]
        SWEEP_MAX_N = None  # the sweep's largest N; None: max(2 x the model's N, 4)
    '''), "parameters"),
    ("md", "## 1. Install (with CUDA on Colab)"),
    ("code", install_cell(extras="cuda")),
    ("code", HELPERS + "\n\n" + _src('''
        import ast
        import json
        import tempfile

        import numpy as np
        from IPython.display import Image, Markdown, display

        if IN_COLAB and GOPRO_ROOT.startswith("/content/drive"):
          from google.colab import drive
          drive.mount("/content/drive")
        if OUTPUT_ROOT is None:
          if TINY:
            OUTPUT_ROOT = tempfile.mkdtemp(prefix="ifirnn_reproduce_")
          elif IN_COLAB and GOPRO_ROOT.startswith("/content/drive"):
            OUTPUT_ROOT = "/content/drive/MyDrive/ifirnn_runs"
          else:
            OUTPUT_ROOT = REPO
        ROOT = Path(OUTPUT_ROOT).resolve()
        CONFIG_NAME = Path(CONFIG).stem
        WORKDIR = ROOT / "workdirs" / (CONFIG_NAME + ("_tiny" if TINY else ""))
        OUT_DIR = ROOT / "outputs" / WORKDIR.name  # logs; a workdir holds only what train writes
        OUT_DIR.mkdir(parents=True, exist_ok=True)

        import jax
        print(f"JAX {jax.__version__} devices: {jax.devices()}")
        if not TINY and jax.default_backend() != "gpu":
          print("WARNING: no GPU. On Colab: Runtime > Change runtime type > GPU.")
    ''')),
    ("md", _src('''
        ## 2. The data

        GOPRO's layout: `{train,test}/<sequence>/{blur,blur_gamma,sharp}/*.png`; the
        configs train and test on `blur_gamma`, as the paper did. `TINY`: a toy dataset
        in GOPRO's layout from the embedded generator (`data_pipeline.default_data`), in
        place of GOPRO.
    ''')),
    ("code", _src('''
        import shutil

        from data_pipeline import default_data, image_io, layouts

        if TINY:
          DATA = ROOT / "data" / "GOPRO_tiny"
          default_data.ensure_default_dataset(
              DATA, height=32, width=48, frames_per_sequence=8, train_sequences=2,
              test_sequences=1, progress=False)
        else:
          DATA = Path(GOPRO_ROOT)
          if IN_COLAB and COPY_TO_LOCAL and GOPRO_ROOT.startswith("/content/drive"):
            local = Path("/content") / DATA.name
            if not (local / ".copied").exists():
              print(f"copying {DATA} to {local} (a few minutes) ...", flush=True)
              shutil.copytree(DATA, local, dirs_exist_ok=True)
              (local / ".copied").touch()
            DATA = local
        for split in ("train", "test"):
          sequences = layouts.find_sequences(DATA, "gopro", split, blur_dir="blur_gamma")
          sizes = {image_io.read_image_size(s.blur_paths[0]) for s in sequences}
          print(f"{split}: {len(sequences)} sequences, {sum(s.num_frames for s in sequences)} "
                f"frames, sizes (h, w) {sorted(sizes)}")
        if not TINY and sizes != {(540, 960)}:
          print("NOTE: the paper's GOPRO is 960x540; PSNR on other sizes is not comparable.")
    ''')),
    ("md", _src('''
        ## 3. The config and the paper's number

        Every Table 1 config states the paper's PSNR / SSIM in its docstring
        ("Expected (paper, ...): PSNR / SSIM").
    ''')),
    ("code", _src('''
        from ifirnn_jax.training import default_config

        docstring = ast.get_docstring(ast.parse((REPO / CONFIG).read_text()))
        expected = re.search(r"Expected \\(paper[^)]*\\):\\s*(\\d+\\.\\d+)\\s*/\\s*(\\d+\\.\\d+)",
                             docstring)
        if expected is None:
          raise ValueError(f"{CONFIG}: no 'Expected (paper, ...): PSNR / SSIM' in its docstring")
        PAPER_PSNR, PAPER_SSIM = (float(v) for v in expected.groups())
        config = load_config(CONFIG, "tiny" if TINY else None)
        print(f"{CONFIG}: model {config.model.name}; paper (Table 1): "
              f"{PAPER_PSNR:.2f} dB / {PAPER_SSIM:.4f}")
        print(f"recipe: {default_config.num_train_steps(config)} steps of {config.batch_size} "
              f"clips x {config.clip_length} frames x {config.crop_size}^2, lr "
              f"{config.learning_rate} halved every {default_config.lr_halve_every_steps(config)} "
              f"steps, blur_dir {config.data.blur_dir}")
    ''')),
    ("md", _src('''
        ## 4. Train

        `python -m ifirnn_jax.train --config <config> --config.data.root <GOPRO>`.
        Resumes from the work directory's last checkpoint (bit for bit); validation PSNR is
        logged every 2200 steps; TensorBoard: `%load_ext tensorboard`, then
        `%tensorboard --logdir <workdir>`.
    ''')),
    ("code", _src('''
        run_module("ifirnn_jax.train", f"--config={REPO / CONFIG}{':tiny' if TINY else ''}",
                   f"--config.data.root={DATA}", f"--workdir={WORKDIR}", *EXTRA_FLAGS)
    ''')),
    ("md", _src('''
        ## 5. Evaluate with the paper's protocol

        `python -m ifirnn_jax.evaluate --workdir <run> --data <GOPRO>`: every test sequence
        frame by frame, frames 5 to T-1 scored, at the model's N.
    ''')),
    ("code", _src('''
        eval_dir = WORKDIR / "eval_paper_protocol"
        run_module("ifirnn_jax.evaluate", "--workdir", WORKDIR, "--data", DATA,
                   "--out", eval_dir, "--overwrite")
        ours = json.loads((eval_dir / "results.json").read_text())
        display(Markdown("\\n".join([
            f"**{ours['model']} on {'the toy data (TINY: not comparable)' if TINY else DATA}**, "
            f"{ours['frames']} frames",
            "", "| | PSNR (dB) | SSIM |", "|---|---:|---:|",
            f"| blurry input | {ours['blurry_psnr']:.2f} | {ours['blurry_ssim']:.4f} |",
            f"| ours | {ours['psnr']:.2f} | {ours['ssim']:.4f} |",
            f"| paper (Table 1) | {PAPER_PSNR:.2f} | {PAPER_SSIM:.4f} |",
            f"| ours - paper | {ours['psnr'] - PAPER_PSNR:+.2f} | "
            f"{ours['ssim'] - PAPER_SSIM:+.4f} |"])))
        print(f"ours {ours['psnr']:.2f} dB / {ours['ssim']:.4f} vs paper {PAPER_PSNR:.2f} dB / "
              f"{PAPER_SSIM:.4f} ({ours['psnr'] - PAPER_PSNR:+.2f} dB)")
    ''')),
    ("md", _src('''
        ## 6. Fig. 4 and Fig. 5: sweeping the number of iterations N

        `python -m ifirnn_jax.evaluate ... --sweep` evaluates N = 1..K in one pass (and the
        gate's adaptive setting, for a `-reg` model) and writes Fig. 4 (how many frames
        each N restores best) and Fig. 5 (PSNR against milliseconds per frame, timed on
        this device at the dataset's frame size) with their data (`sweep.json`, CSVs).
    ''')),
    ("code", _src('''
        sweep_dir = WORKDIR / "sweep"
        max_n = SWEEP_MAX_N
        if TINY and not max_n:  # the smallest sweep: N = 1 .. the model's N
          max_n = default_config.model_fields(config.model.name)["iterations"]
        sweep_flags = ["--max-iterations", max_n] if max_n else []
        run_module("ifirnn_jax.evaluate", "--workdir", WORKDIR, "--data", DATA, "--sweep",
                   *sweep_flags, "--out", sweep_dir, "--overwrite")
        for name in ("fig4_best_iterations.png", "fig5_psnr_time.png"):
          print(sweep_dir / name)
          display(Image(filename=str(sweep_dir / name)))
        sweep = json.loads((sweep_dir / "sweep.json").read_text())
        print(f"{'setting':22s} {'PSNR (dB)':>9s} {'SSIM':>7s} {'ms/frame':>9s} {'best for':>9s}")
        for s in sweep["settings"]:
          best = "" if s["best_restored_frames"] is None else f"{s['best_restored_frames']} frames"
          print(f"{s['setting']:22s} {s['psnr']:9.2f} {s['ssim']:7.4f} "
                f"{s['ms_per_frame']:9.2f} {best:>9s}")
    ''')),
    ("md", _src('''
        ## 7. Keep the weights

        A `.safetensors` file with the spec's PyTorch names (`ifr.load_model` reads it;
        `python -m ifirnn_jax.deblur --weights` deblurs videos with it).
    ''')),
    ("code", _src('''
        weights_file = WORKDIR / f"{config.model.name}.safetensors"
        run_module("ifirnn_jax.export", "--workdir", WORKDIR, "--out", weights_file,
                   "--overwrite")
    ''')),
]


def write_notebooks(out_dir: Path = HERE) -> list[Path]:
  """Writes both notebooks into `out_dir`; returns their paths."""
  paths = []
  for name, cells, gpu in (("quickstart", QUICKSTART, False),
                           ("reproduce_gopro", REPRODUCE, True)):
    paths.append(Path(out_dir) / f"{name}.ipynb")
    nbformat.write(_notebook(cells, gpu=gpu), paths[-1])
  return paths


def main() -> None:
  for path in write_notebooks():
    print(f"wrote {path}")


if __name__ == "__main__":
  main()
