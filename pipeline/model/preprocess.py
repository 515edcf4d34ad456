"""Preprocess: raw RGB frames -> the normalised tensor batch the classifier expects.

Runs on whatever device the frames are on, so frames are uploaded once as uint8 (3x fewer bytes than
float) and resized there. The same object prepares training, fitting, scoring and streaming inputs, so the
model always sees identically prepared pixels.

Input:  a uint8 tensor N x H x W x 3 (RGB), or a list of H_i x W_i x 3 uint8 tensors of varying sizes or of
        YUV frames (`pipeline.media.yuv.YuvImage`: the GPU path's, converted to RGB where they lie, then
        resized like any RGB frame).
Output: a float tensor N x 3 x size x size, normalised with the model's mean and std.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from pipeline.config import IMAGENET_MEAN, IMAGENET_STD
from pipeline.media.yuv import YuvImage, rgb_frames


def content_box(frame: torch.Tensor, level: int = 20, min_fraction: float = 0.25) -> tuple[int, int, int, int]:
    """Bounding box (top, bottom, left, right) of the endoscope's image area inside its black border.

    A row or column belongs to the image when more than `min_fraction` of its pixels are brighter than
    `level`; burned-in text on the border is too sparse to pass that test. An all-dark frame keeps its size.
    """
    bright = frame.amax(dim=-1) > level
    rows = torch.nonzero(bright.float().mean(dim=1) > min_fraction).flatten()
    cols = torch.nonzero(bright.float().mean(dim=0) > min_fraction).flatten()
    if len(rows) == 0 or len(cols) == 0:
        return 0, frame.shape[0], 0, frame.shape[1]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


@functools.cache
def resize_weights(in_size: int, out_size: int, device: str) -> tuple[torch.Tensor, int]:
    """The integer weights of torch's CPU uint8 antialiased bilinear resize along one axis (Pillow's): out x in,
    float64, and the bits they are scaled by."""
    scale = in_size / out_size
    support = max(scale, 1.0)          # the triangle filter, widened by the scale when shrinking
    rows = []
    for index in range(out_size):
        centre = scale * (index + 0.5)
        first = max(int(centre - support + 0.5), 0)
        count = min(int(centre + support + 0.5), in_size) - first
        taps = [max(0.0, 1.0 - abs((j + first - centre + 0.5) / support)) for j in range(count)]
        rows.append((first, [tap / sum(taps) for tap in taps]))
    largest = max(max(taps) for _, taps in rows)
    bits = 0
    while bits < 22 and int(0.5 + largest * (1 << (bits + 1))) < (1 << 15):
        bits += 1
    weights = torch.zeros((out_size, in_size), dtype=torch.float64)
    for index, (first, taps) in enumerate(rows):
        weights[index, first:first + len(taps)] = torch.tensor([int(tap * (1 << bits) + 0.5) for tap in taps],
                                                               dtype=torch.float64)
    return weights.to(device), bits


def uint8_resize(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 N x C x H x W -> float N x C x size x size holding exactly what torch's CPU uint8 kernel gives
    (checked bit for bit in tests/pipeline/model/test_preprocess.py), on any device: a horizontal pass rounded
    to integers, then a vertical one. The sums are integers below 2^53, so float64 keeps them exact.
    Data-centre GPUs multiply float64 fast (the H100 and H200 have float64 tensor cores); a consumer card does
    it at a small fraction of its float32 rate, so there this resize costs more. Neither is measured yet."""
    height, width = frames.shape[-2:]
    across, across_bits = resize_weights(width, size, str(frames.device))
    down, down_bits = resize_weights(height, size, str(frames.device))
    rows = torch.matmul(frames.double(), across.T)
    rows = torch.floor_divide(rows + (1 << (across_bits - 1)), 1 << across_bits).clamp_(0, 255)
    pixels = torch.matmul(down, rows)
    return torch.floor_divide(pixels + (1 << (down_bits - 1)), 1 << down_bits).clamp_(0, 255).float()


class Preprocess:
    """Resize (optionally after cropping the endoscope border) and normalise frames."""

    def __init__(
        self,
        size: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        crop_content: bool = False,
    ) -> None:
        self.size = size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self.crop_content = crop_content

    def _resize(self, frames: torch.Tensor) -> torch.Tensor:
        """Antialiased bilinear resize to size x size, as pixel values (uint8 on the CPU, float elsewhere).

        On the CPU the uint8 frames are resized as uint8, in their channels-last layout (the permute is a
        view): torch's vectorised uint8 kernel. Measured on the 2-core CPU, per frame to 224 x 224: 3.54 ->
        0.83 ms at 480 x 480 (4.3x) and 20.1 -> 1.49 ms at 1920 x 1080 (13.5x) against resizing the float
        copy. CUDA has no uint8 kernel, and its float one differs from it by a level in 12% of values, enough
        to flip frames on an alert threshold. So elsewhere uint8 frames go through `uint8_resize`, which
        gives the CPU kernel's pixels bit for bit: every device shows the model the same picture.
        """
        nchw = frames.permute(0, 3, 1, 2)
        if nchw.shape[-2:] == (self.size, self.size):
            return nchw if nchw.device.type == "cpu" else nchw.float()
        if nchw.dtype == torch.uint8 and nchw.device.type != "cpu":
            return uint8_resize(nchw, self.size)
        if nchw.dtype != torch.uint8:
            nchw = nchw.float()
        return F.interpolate(nchw, size=(self.size, self.size), mode="bilinear", antialias=True,
                             align_corners=False)

    def pixels(self, inputs: torch.Tensor) -> torch.Tensor:
        """The model's input back in pixel values (0..255), resized (the quality guard folds this map into its
        statistics instead: pipeline/ood/quality.py)."""
        return torch.addcmul(self.mean.to(inputs.device), inputs, self.std.to(inputs.device))   # one pass, not two

    def __call__(self, frames: torch.Tensor | Sequence[torch.Tensor | YuvImage]) -> torch.Tensor:
        if isinstance(frames, torch.Tensor) and not self.crop_content:
            resized = self._resize(frames)
        elif not self.crop_content and all(isinstance(frame, YuvImage) for frame in frames) \
                and len({frame.shape for frame in frames}) == 1:    # one stack, one resize: the GPU path's batches
            resized = self._resize(rgb_frames(frames))
        else:
            parts = []
            for frame in frames:
                if isinstance(frame, YuvImage):   # the border is found on the full frame
                    frame = frame.rgb()
                if self.crop_content:
                    top, bottom, left, right = content_box(frame)
                    frame = frame[top:bottom, left:right]
                parts.append(self._resize(frame.unsqueeze(0)))
            resized = torch.cat(parts)
        # One pass to float minus the mean, one in place for the std: the same values as (x.float() - mean)
        # / std after a float copy of every frame, in 0.63 ms a frame instead of 0.74 (the demo clip's 480 x
        # 480 frames, 16 a batch, 2-core CPU).
        return torch.sub(resized, self.mean.to(resized.device)).div_(self.std.to(resized.device))
