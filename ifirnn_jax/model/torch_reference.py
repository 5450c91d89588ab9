"""Independent PyTorch reference of IFI-RNN, written from the spec alone.

Used only by tests and benchmarks (the rest of the package never imports
torch). Layer names follow the spec's "Weight interchange" section, so
`state_dict()` keys and layouts are exactly the interchange format:

    cells.{k}.F_B.{0,1,2}            Conv2d
    cells.{k}.F_R.{j}.conv1|conv2    ResBlock convs (j = 0..nb-1)
    cells.{k}.F_h.0 / .1.conv1|conv2 / .2
    cells.{k}.F_L.{0,1}              ConvTranspose2d  (last cell only)
    cells.{k}.F_L.2                  Conv2d           (last cell only)
    gate.fc1 / gate.fc2              Linear           (gated models only)

Tensors are NCHW: a video is [B, T, 3, H, W] float32 in [0, 1].
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn


class TorchReferenceError(Exception):
  """Bad input to the PyTorch reference (shapes, weight files)."""


class ResBlock(nn.Module):
  """EDSR block: x + conv2(relu(conv1(x))), 3x3 convs, no norm, no final ReLU."""

  def __init__(self, channels: int):
    super().__init__()
    self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
    self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return x + self.conv2(F.relu(self.conv1(x)))


class Cell(nn.Module):
  """One IFI-RNN cell: F_B, F_R, F_h and (optionally) F_L.

  Indexed containers hold only the layers, so ReLUs are applied in the
  methods below and the indices match the interchange names.
  """

  def __init__(self, n1: int, n2: int, n3: int, nh: int, num_resblocks: int,
               has_latent: bool):
    super().__init__()
    w = n3 + nh
    self.F_B = nn.ModuleList([
        nn.Conv2d(3, n1, 5, stride=1, padding=2),
        nn.Conv2d(n1, n2, 5, stride=2, padding=2),
        nn.Conv2d(n2, n3, 5, stride=2, padding=2),
    ])
    self.F_R = nn.ModuleList([ResBlock(w) for _ in range(num_resblocks)])
    self.F_h = nn.ModuleList([
        nn.Conv2d(w, nh, 3, padding=1),
        ResBlock(nh),
        nn.Conv2d(nh, nh, 3, padding=1),
    ])
    if has_latent:
      self.F_L = nn.ModuleList([
          nn.ConvTranspose2d(w, n2, 4, stride=2, padding=1),
          nn.ConvTranspose2d(n2, n1, 4, stride=2, padding=1),
          nn.Conv2d(n1, 3, 5, padding=2),
      ])
    else:
      self.F_L = None

  def blur_features(self, frame: torch.Tensor) -> torch.Tensor:
    """F_B: [B, 3, H, W] -> f_B [B, n3, H/4, W/4]."""
    for conv in self.F_B:
      frame = F.relu(conv(frame))
    return frame

  def fuse(self, f_b: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """F_R: f_B [B, n3, q], h [B, nh, q] -> f_R [B, n3 + nh, q]."""
    x = torch.cat([f_b, hidden], dim=1)
    for block in self.F_R:
      x = block(x)
    return x

  def next_hidden(self, f_r: torch.Tensor) -> torch.Tensor:
    """F_h: f_R [B, n3 + nh, q] -> h [B, nh, q] (no activation outside the ResBlock)."""
    for layer in self.F_h:
      f_r = layer(f_r)
    return f_r

  def latent(self, f_r: torch.Tensor) -> torch.Tensor:
    """F_L: f_R [B, n3 + nh, H/4, W/4] -> [B, 3, H, W]."""
    x = F.relu(self.F_L[0](f_r))
    x = F.relu(self.F_L[1](x))
    return self.F_L[2](x)


class Gate(nn.Module):
  """Stochastic-gate logits network (parameters only; unused at inference)."""

  def __init__(self, nh: int, hidden: int):
    super().__init__()
    self.fc1 = nn.Linear(nh, hidden)
    self.fc2 = nn.Linear(hidden, 2)

  def forward(self, h: torch.Tensor) -> torch.Tensor:
    """h [B, nh, q] -> logits [B, 2] ([stop, continue])."""
    return self.fc2(F.relu(self.fc1(h.mean(dim=(2, 3)))))


class TorchIFIRNN(nn.Module):
  """IFI-RNN (C1HN or C2HN) in PyTorch, inference path of Algorithm 1.

  Args:
    cells: 1 (C1) or 2 (C2).
    iterations: default intra-frame iteration count N (>= 1).
    n1, n2, n3, nh: widths at full, 1/2, 1/4 resolution and of the hidden state.
    num_resblocks: ResBlocks in F_R.
    gated: adds the gate's parameters (gate.fc1, gate.fc2); never used in forward.
    gate_hidden: width of the gate's hidden layer.
    residual_output: L_t = B_t + F_L(f_R) if True, else F_L(f_R).
  """

  def __init__(self, cells: int, iterations: int, n1: int = 20, n2: int = 40,
               n3: int = 60, nh: int = 20, num_resblocks: int = 6,
               gated: bool = False, gate_hidden: int = 16,
               residual_output: bool = True):
    super().__init__()
    if cells not in (1, 2):
      raise TorchReferenceError(f"cells must be 1 or 2, got {cells}")
    self.num_cells = cells
    self.iterations = _check_iterations(iterations)
    self.nh = nh
    self.residual_output = residual_output
    self.cells = nn.ModuleList([
        Cell(n1, n2, n3, nh, num_resblocks, has_latent=(k == cells - 1))
        for k in range(cells)
    ])
    self.gate = Gate(nh, gate_hidden) if gated else None

  def initial_hidden(self, frame: torch.Tensor) -> torch.Tensor:
    """h_0 = zeros [B, nh, H/4, W/4] for a frame [B, 3, H, W]."""
    b, _, h, w = frame.shape
    return frame.new_zeros(b, self.nh, h // 4, w // 4)

  def step(self, frame: torch.Tensor, hidden: torch.Tensor | None,
           iterations: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One frame of Algorithm 1.

    Args:
      frame: B_t [B, 3, H, W], H and W multiples of 4.
      hidden: h_{t-1} [B, nh, H/4, W/4], or None for h_0 = 0.
      iterations: N for this frame (default: the constructor's).

    Returns:
      (L_t [B, 3, H, W], h_t [B, nh, H/4, W/4]).
    """
    n = self.iterations if iterations is None else _check_iterations(iterations)
    if frame.ndim != 4 or frame.shape[1] != 3 or frame.shape[2] % 4 or frame.shape[3] % 4:
      raise TorchReferenceError(
          f"frame must be [B, 3, H, W] with H, W multiples of 4, got {tuple(frame.shape)}")
    h = self.initial_hidden(frame) if hidden is None else hidden
    last = self.cells[-1]
    if self.num_cells == 2:  # C2: one pass of cell 1 first.
      first = self.cells[0]
      h = first.next_hidden(first.fuse(first.blur_features(frame), h))
    f_b = last.blur_features(frame)  # F_B once per frame.
    for _ in range(n):
      f_r = last.fuse(f_b, h)
      h = last.next_hidden(f_r)
    out = last.latent(f_r)  # F_L once per frame.
    if self.residual_output:
      out = frame + out
    return out, h

  def forward(self, video: torch.Tensor, iterations: int | None = None) -> torch.Tensor:
    """video [B, T, 3, H, W] -> deblurred [B, T, 3, H, W], starting from h_0 = 0."""
    if video.ndim != 5:
      raise TorchReferenceError(f"video must be [B, T, 3, H, W], got {tuple(video.shape)}")
    hidden = None
    outputs = []
    for t in range(video.shape[1]):
      out, hidden = self.step(video[:, t], hidden, iterations)
      outputs.append(out)
    return torch.stack(outputs, dim=1)


def _check_iterations(iterations: int) -> int:
  if int(iterations) != iterations or iterations < 1:
    raise TorchReferenceError(f"iterations must be an integer >= 1, got {iterations}")
  return int(iterations)


def deblur_numpy(model: TorchIFIRNN, video: np.ndarray,
                 iterations: int | None = None) -> np.ndarray:
  """Deblurs a numpy video of any size.

  Args:
    model: the network.
    video: [T, H, W, 3] or [B, T, H, W, 3] float32 in [0, 1], any H, W.
    iterations: N at run time (default: the model's).

  Returns:
    Deblurred video, float32, same shape as `video`. Frames are reflect-padded
    bottom/right to multiples of 4 and cropped back.
  """
  video = np.asarray(video, dtype=np.float32)
  if video.ndim not in (4, 5) or video.shape[-1] != 3:
    raise TorchReferenceError(
        f"video must be [T, H, W, 3] or [B, T, H, W, 3], got {video.shape}")
  batched = video.ndim == 5
  x = video if batched else video[None]
  b, t, h, w, _ = x.shape
  pad_h, pad_w = -h % 4, -w % 4
  if pad_h >= h or pad_w >= w:
    raise TorchReferenceError(f"frames of {h}x{w} are too small to reflect-pad to multiples of 4")
  frames = torch.from_numpy(np.ascontiguousarray(x)).reshape(b * t, h, w, 3).permute(0, 3, 1, 2)
  frames = F.pad(frames, (0, pad_w, 0, pad_h), mode="reflect")
  with torch.no_grad():
    out = model(frames.reshape(b, t, 3, h + pad_h, w + pad_w), iterations)
  out = out[..., :h, :w].permute(0, 1, 3, 4, 2).contiguous().numpy()
  return out if batched else out[0]


def save_safetensors(model: nn.Module, path: str) -> None:
  """Writes the model's state_dict (interchange names) to a .safetensors file."""
  tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
  safetensors.torch.save_file(tensors, str(path))


def load_safetensors(model: nn.Module, path: str) -> None:
  """Loads weights into `model` in place; names and shapes must match exactly."""
  tensors = safetensors.torch.load_file(str(path))
  expected = model.state_dict()
  missing = sorted(set(expected) - set(tensors))
  unexpected = sorted(set(tensors) - set(expected))
  wrong = sorted(k for k in set(expected) & set(tensors)
                 if tuple(expected[k].shape) != tuple(tensors[k].shape))
  if missing or unexpected or wrong:
    raise TorchReferenceError(
        f"{path}: weights do not fit the model (missing {missing[:5]}, "
        f"unexpected {unexpected[:5]}, wrong shape {wrong[:5]})")
  model.load_state_dict(tensors, strict=True)


def make_train_step(model: TorchIFIRNN, learning_rate: float = 1e-4
                    ) -> Callable[[torch.Tensor, torch.Tensor], float]:
  """Returns step(blur, sharp) -> loss: one Adam update on the content loss.

  blur and sharp are [B, T, 3, H, W]; the loss is the per-pixel MSE
  mean((L_t - S_t)^2) over B, T, C, H, W before the update. The gate (if any)
  is not used: this is the non-gated path, meant for benchmarks.
  """
  optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, betas=(0.9, 0.999))

  def train_step(blur: torch.Tensor, sharp: torch.Tensor) -> float:
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = F.mse_loss(model(blur), sharp)
    loss.backward()
    optimizer.step()
    return float(loss.detach())

  return train_step


def count_parameters(model: nn.Module) -> int:
  """Total number of scalar parameters."""
  return sum(p.numel() for p in model.parameters())
