"""Video and frame-folder I/O: stream frames in, write frames out atomically.

    with open_frames("clip.mp4") as source:          # or a folder of images
      print(source.fps, source.num_frames, source.height, source.width)
      with FrameSink("out.mp4", fps=source.fps) as sink:   # or "out_frames/" (PNGs)
        for frame in source:                          # uint8 [H, W, 3], one at a time
          sink.write(frame)
    # "out.mp4" appears only here, complete; on an exception it never appears.

Video files are read and written by ffmpeg through imageio's FFMPEG plugin (any
container and codec ffmpeg reads). Written videos are H.264 (libx264, CRF 15,
preset "medium"): visually near-lossless, so deblurring results can be compared by
eye. 4:2:0 chroma (what every player handles) needs even sizes; frames with an odd
width or height are stored as 4:4:4 instead, so the stored size is always the frames'
size (no padding, no resizing).

Every problem with the data raises `DataError` naming the path.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import imageio.v2 as iio2
import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np

from data_pipeline import image_io
from data_pipeline.safe_io import files, outputs
from data_pipeline.errors import DataError
from data_pipeline.safe_io.files import natural_sort_key

# JAX warns on every os.fork(); ffmpeg starts through `subprocess`, whose fork is followed
# at once by exec in the child, which that warning does not concern. Only forks from
# `subprocess` are silenced: a multiprocessing fork still warns.
warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called",
                        category=RuntimeWarning, module="subprocess")

# Suffixes that make an output path a video file; anything ffmpeg reads is accepted
# as an input.
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")  # containers that take H.264
# Images picked up from a frame folder (other files are ignored).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Frame rate of a video written from frames that have none (a folder of images).
DEFAULT_FPS = 30.0
# libx264 settings of written videos.
X264_CRF = 15
X264_PRESET = "medium"


# ----------------------------------------------------------------------------- reading
class FrameSource:
  """Frames of a video file or an image folder, read one at a time.

  Attributes:
    path: the video file or folder.
    other_streams: kinds of the streams that are not read ("audio", "subtitle", a second
      "video", ...): a video file's streams after its first video stream.
    fps: frames per second (None for a folder of images).
    num_frames: number of frames (None when the container does not say).
    height, width: frame size in pixels.

  Iterating yields uint8 [height, width, 3] arrays; each iteration starts again
  from the first frame.
  """

  path: Path
  other_streams: list[str] = []
  fps: float | None
  num_frames: int | None
  height: int
  width: int

  def __iter__(self) -> Iterator[np.ndarray]:
    raise NotImplementedError

  def close(self) -> None:
    """Releases what the source holds open (nothing between iterations here)."""

  def __enter__(self) -> FrameSource:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def __repr__(self) -> str:
    return (f"{type(self).__name__}({str(self.path)!r}, {self.width}x{self.height}, "
            f"fps={self.fps}, num_frames={self.num_frames})")


def _as_rgb_frame(frame: np.ndarray, path: Path, index: int) -> np.ndarray:
  frame = np.asarray(frame)
  if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
    raise DataError(f"{path}: frame {index} is not 8-bit RGB "
                    f"(dtype {frame.dtype}, shape {frame.shape})")
  return frame


class VideoFileSource(FrameSource):
  """A video file decoded by ffmpeg, streamed frame by frame (constant memory)."""

  def __init__(self, path: str | os.PathLike):
    self.path = Path(path)
    try:
      reader = iio2.get_reader(self.path, format="FFMPEG")
    except Exception as e:  # imageio raises OSError, RuntimeError, ... for bad files
      raise DataError(f"{self.path}: cannot be read as a video ({_first_line(e)})") from None
    try:
      meta = reader.get_meta_data()
      # Decode the first frame now: a file ffmpeg opens may still hold no video.
      first = _as_rgb_frame(reader.get_next_data(), self.path, 0)
    except DataError:
      raise
    except Exception as e:
      raise DataError(f"{self.path}: cannot decode a video frame ({_first_line(e)})") from None
    finally:
      reader.close()
    self.height, self.width = first.shape[:2]
    fps = meta.get("fps")
    self.fps = float(fps) if fps and np.isfinite(fps) else None
    self.other_streams = probe_streams(self.path)[1:]
    self.num_frames, errors = probe_frames(self.path)
    truncated = [line for line in errors if any(m in line for m in _TRUNCATION_MESSAGES)]
    if truncated:  # the container promises more data than the file holds
      raise DataError(f"{self.path}: video file is truncated (ffmpeg: {truncated[0]})")

  def __iter__(self) -> Iterator[np.ndarray]:
    try:
      reader = iio2.get_reader(self.path, format="FFMPEG")
    except Exception as e:
      raise DataError(f"{self.path}: cannot be read as a video ({_first_line(e)})") from None
    index = 0
    try:
      while True:
        try:
          frame = reader.get_next_data()
        except (StopIteration, IndexError):
          return
        except Exception as e:
          raise DataError(f"{self.path}: cannot decode frame {index} "
                          f"({_first_line(e)})") from None
        frame = _as_rgb_frame(frame, self.path, index)
        if frame.shape[:2] != (self.height, self.width):
          raise DataError(f"{self.path}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, "
                          f"the first frame {self.width}x{self.height}")
        yield frame
        index += 1
    finally:
      reader.close()


def probe_frames(path: str | os.PathLike) -> tuple[int | None, list[str]]:
  """(frames in the first video stream, ffmpeg's error messages) without decoding.

  The frames are counted by remuxing the stream to nothing (`-c copy -f null`), which
  reads every packet: fast, and it finds data cut short. The count is None when ffmpeg
  cannot say.
  """
  command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error",
             "-stats", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
  try:
    result = subprocess.run(command, capture_output=True, check=False, timeout=600)
  except (OSError, subprocess.SubprocessError) as e:
    return None, [str(e)]
  log = result.stderr.decode("utf-8", "replace").replace("\r", "\n").splitlines()
  counts = [int(m.group(1)) for m in map(_FRAME_STAT.match, log) if m]
  errors = [line.strip() for line in log if line.strip() and not _FRAME_STAT.match(line)]
  return (counts[-1] if counts and result.returncode == 0 else None), errors


def probe_streams(path: str | os.PathLike) -> list[str]:
  """The kinds of the streams of a media file, in order ("video", "audio", "subtitle",
  "data", ...), as ffmpeg lists them; the first video stream first. Empty when ffmpeg
  cannot say."""
  command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)]
  try:  # without an output ffmpeg lists the input's streams and exits with status 1
    result = subprocess.run(command, capture_output=True, check=False, timeout=60)
  except (OSError, subprocess.SubprocessError):
    return []
  kinds = [m.group(1).lower() for m in map(_STREAM_LINE.match,
                                           result.stderr.decode("utf-8", "replace").splitlines())
           if m]
  if "video" in kinds:
    kinds.insert(0, kinds.pop(kinds.index("video")))
  return kinds


_STREAM_LINE = re.compile(r"^\s*Stream #0:\d+\S*: (\w+):")
_FRAME_STAT = re.compile(r"^\s*frame=\s*(\d+)")
# What ffmpeg says of a file cut short: MP4/MOV ("stream 0, offset ...: partial file"),
# Matroska/WebM ("File ended prematurely").
_TRUNCATION_MESSAGES = ("partial file", "File ended prematurely")


def list_image_files(folder: Path) -> list[Path]:
  """Image files (IMAGE_SUFFIXES) directly in `folder`, in natural name order."""
  files = [p for p in folder.iterdir()
           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
  return sorted(files, key=lambda p: natural_sort_key(p.name))


class FrameFolderSource(FrameSource):
  """A folder of images (one frame per file), in natural name order."""

  def __init__(self, path: str | os.PathLike):
    self.path = Path(path)
    try:
      self.files = list_image_files(self.path)
    except OSError as e:
      raise DataError(f"{self.path}: cannot list the folder ({e.strerror})") from None
    if not self.files:
      raise DataError(f"{self.path}: folder holds no image files "
                      f"({', '.join(IMAGE_SUFFIXES)})")
    first = self._read(0)
    self.height, self.width = first.shape[:2]
    self.fps = None
    self.num_frames = len(self.files)

  def _read(self, index: int) -> np.ndarray:
    return _as_rgb_frame(image_io.read_image(self.files[index]), self.files[index], index)

  def __iter__(self) -> Iterator[np.ndarray]:
    for index, file in enumerate(self.files):
      frame = self._read(index)
      if frame.shape[:2] != (self.height, self.width):
        raise DataError(f"{file}: frame is {frame.shape[1]}x{frame.shape[0]}, but "
                        f"{self.files[0].name} is {self.width}x{self.height}")
      yield frame


def open_frames(path: str | os.PathLike) -> FrameSource:
  """Opens a video file (any format ffmpeg reads) or a folder of images for streaming."""
  path = Path(path)
  if path.is_dir():
    return FrameFolderSource(path)
  if not path.exists():
    raise DataError(f"{path}: no such video file or frame folder")
  if not path.is_file():
    raise DataError(f"{path}: not a video file or frame folder")
  return VideoFileSource(path)


# ----------------------------------------------------------------------------- writing
def is_video_path(path: str | os.PathLike) -> bool:
  """True if `path` names a video file (by its suffix), False for a frame folder."""
  return Path(path).suffix.lower() in VIDEO_SUFFIXES


class FrameSink:
  """Writes uint8 [H, W, 3] frames to a video file or a folder of PNGs, atomically.

  The kind follows the path: a VIDEO_SUFFIXES suffix makes an H.264 video, an
  existing folder or a path without a suffix makes a folder of 000000.png, ...

  An existing `path` is replaced only with `overwrite`, and only if it is what a sink
  writes (a video file, or a folder holding nothing but 000000.png, ... frames; see
  `outputs`), a dangling symlink counting as existing. Without `overwrite`, an output
  another run made while this one was writing is kept too (the result is not moved
  onto it). Leftover temporaries of killed runs for `path` are deleted first; those of
  live runs (their names carry the writer's PID) are left alone.

  Frames go to a hidden temporary file or folder beside `path`; `close()` checks the
  result and renames it to `path`. `abort()` (called on any exception inside a
  `with` block, Ctrl-C included) deletes the temporary, so `path` never holds a
  partial result and an existing `path` is only replaced by a complete one.

  Args:
    path: the output video file or folder.
    fps: frame rate of a video (None: DEFAULT_FPS); ignored for a folder.
    overwrite: replace an existing `path` (when the new result is complete).
    audio_from: a media file whose audio streams are copied into the video (ffmpeg
      stream copy, cut to the video's length), if the container takes them; afterwards
      `audio_copied` says whether they were, `audio_problem` why not.
  """

  def __init__(self, path: str | os.PathLike, fps: float | None = None,
               overwrite: bool = False, audio_from: str | os.PathLike | None = None):
    self.path = Path(path)
    self.audio_from = None if audio_from is None else Path(audio_from)
    self.audio_copied, self.audio_problem = False, None
    self.fps = DEFAULT_FPS if fps is None else float(fps)
    if not self.fps > 0:
      raise ValueError(f"fps must be > 0, got {fps!r}")
    self.is_video = is_video_path(self.path)
    if not self.is_video and self.path.suffix and not self.path.is_dir():
      raise DataError(f"{self.path}: output must be a video file "
                      f"({', '.join(VIDEO_SUFFIXES)}) or a folder (a path without a suffix)")
    outputs.refuse_existing(self.path, overwrite)
    if self.path.exists() and self.path.is_dir() == self.is_video:
      raise DataError(f"{self.path}: exists as a {'folder' if self.is_video else 'file'}; "
                      f"will not replace it with a {'video' if self.is_video else 'folder'}")
    if self.path.exists():
      if self.is_video:
        outputs.check_replaceable_file(self.path, "video", VIDEO_SUFFIXES)
      else:
        outputs.check_replaceable_frames(self.path)
    outputs.check_parent(self.path)
    self.overwrite = overwrite
    self.num_written = 0
    self._size: tuple[int, int] | None = None  # (height, width)
    self._writer = None
    parent = self.path.parent
    try:
      parent.mkdir(parents=True, exist_ok=True)
      outputs.remove_stale_partials(self.path, is_folder=not self.is_video)
      if self.is_video:  # named after this process; the suffix tells ffmpeg the container
        fd, temp = tempfile.mkstemp(prefix=files.partial_prefix(self.path),
                                    suffix=self.path.suffix, dir=parent)
        os.close(fd)
      else:
        temp = files.make_partial_folder(self.path)
    except OSError as e:
      raise outputs.write_error(self.path, e) from None
    self._temp: Path | None = Path(temp)

  def write(self, frame: np.ndarray) -> None:
    """Appends one uint8 [H, W, 3] frame (every frame the size of the first)."""
    if self._temp is None:
      raise ValueError(f"{self.path}: sink is already closed")
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
      raise ValueError(f"frames must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
    if self._size is None:
      self._size = frame.shape[:2]
    elif frame.shape[:2] != self._size:
      raise ValueError(f"{self.path}: frame {self.num_written} is {frame.shape[1]}x"
                       f"{frame.shape[0]}, earlier frames {self._size[1]}x{self._size[0]}")
    try:
      if self.is_video:
        if self._writer is None:
          self._writer = self._open_video_writer(*self._size)
        self._writer.append_data(frame)
      else:
        iio.imwrite(self._temp / f"{self.num_written:06d}.png", frame)
    except Exception as e:
      if _disk_full(self.path.parent) or getattr(e, "errno", None) == errno.ENOSPC:
        raise self._disk_full_error() from None
      raise DataError(f"{self.path}: cannot write frame {self.num_written} "
                      f"({_first_line(e)})") from None
    self.num_written += 1

  def _disk_full_error(self) -> DataError:
    return DataError(f"{self.path}: cannot write it: the disk is full (no space left in "
                     f"{self.path.parent} after {self.num_written} frames); free some "
                     f"space and run again")

  def _open_video_writer(self, height: int, width: int):
    odd = height % 2 or width % 2
    return iio2.get_writer(
        self._temp, format="FFMPEG", mode="I", fps=self.fps, codec="libx264",
        quality=None, pixelformat="yuv444p" if odd else "yuv420p",
        macro_block_size=1,  # never resize
        ffmpeg_log_level="error",
        output_params=["-crf", str(X264_CRF), "-preset", X264_PRESET])

  def close(self) -> None:
    """Finishes the file or folder, checks it, and moves it to `path`."""
    if self._temp is None:
      return
    try:
      if self.num_written == 0:
        raise DataError(f"{self.path}: no frames were written")
      if self._writer is not None:
        writer, self._writer = self._writer, None
        try:
          writer.close()
        except Exception as e:
          if _disk_full(self.path.parent):
            raise self._disk_full_error() from None
          raise DataError(f"{self.path}: cannot finish the video ({_first_line(e)})") from None
        stored, errors = probe_frames(self._temp)
        if stored != self.num_written:
          if _disk_full(self.path.parent):
            raise self._disk_full_error()
          if stored is None:
            raise DataError(f"{self.path}: the video ffmpeg wrote cannot be read back "
                            f"({errors[0] if errors else 'no frame count'})")
          raise DataError(f"{self.path}: ffmpeg stored {stored} of {self.num_written} frames")
        if self.audio_from is not None:
          self._copy_audio()
      self._commit()
    except BaseException:
      self.abort()
      raise

  def _copy_audio(self) -> None:
    """Remuxes the finished video with the audio of `audio_from` (no re-encoding); on
    failure the video stays as it is, without audio, and `audio_problem` says why."""
    muxed = self._temp.with_name(self._temp.stem + ".audio" + self._temp.suffix)
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error",
               "-y", "-i", str(self._temp), "-i", str(self.audio_from), "-map", "0:v:0",
               "-map", "1:a?", "-c", "copy", "-shortest", str(muxed)]
    try:
      result = subprocess.run(command, capture_output=True, check=False, timeout=600)
      log = result.stderr.decode("utf-8", "replace").strip().splitlines()
      if result.returncode == 0 and probe_frames(muxed)[0] == self.num_written:
        os.replace(muxed, self._temp)
        self.audio_copied = True
        return
      if _disk_full(self.path.parent):
        raise self._disk_full_error()
      self.audio_problem = log[0] if log else f"ffmpeg exit status {result.returncode}"
    except (OSError, subprocess.SubprocessError) as e:
      self.audio_problem = _first_line(e)
    finally:
      muxed.unlink(missing_ok=True)

  def _commit(self) -> None:
    """Moves the result into place; without `overwrite`, an output that appeared while
    this sink was writing (another run's) is kept and this result deleted."""
    temp, self._temp = self._temp, None
    try:
      if not temp.is_dir():  # mkstemp makes a private (0600) file: give it a plain file's mode
        os.chmod(temp, files.file_mode())
      if not self.overwrite:
        files.rename_new(temp, self.path)
      elif temp.is_dir():  # made by make_partial_folder, with a plain folder's mode
        files.replace_folder(temp, self.path)
      else:
        os.replace(temp, self.path)
    except FileExistsError:
      _remove(temp)
      raise DataError(f"{self.path}: appeared while this run was writing (another run's "
                      f"output?); kept it and wrote nothing; pass --overwrite to replace "
                      f"it") from None
    except OSError as e:
      _remove(temp)
      raise outputs.write_error(self.path, e, "move the result into place as") from None

  def abort(self) -> None:
    """Stops writing and deletes the temporary result; `path` is left as it was."""
    if self._writer is not None:
      writer, self._writer = self._writer, None
      try:
        writer.close()
      except Exception:
        pass
    if self._temp is not None:
      temp, self._temp = self._temp, None
      _remove(temp)

  def __enter__(self) -> FrameSink:
    return self

  def __exit__(self, exc_type, exc, traceback) -> None:
    if exc_type is None:
      self.close()
    else:
      self.abort()





# Free space below which a failed write is put down to a full disk.
_FULL_DISK_BYTES = 1 << 20


def _disk_full(folder: Path) -> bool:
  """True if the filesystem of `folder` has (nearly) no space left for this user."""
  try:
    stats = os.statvfs(folder)
  except OSError:
    return False
  return stats.f_bavail * stats.f_frsize < _FULL_DISK_BYTES


def _remove(path: Path) -> None:
  if path.is_dir():
    shutil.rmtree(path, ignore_errors=True)
  else:
    path.unlink(missing_ok=True)


def _first_line(error: BaseException) -> str:
  text = str(error).strip() or type(error).__name__
  return text.splitlines()[0]
