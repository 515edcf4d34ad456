"""Decoded frames kept in the decoder's own layout (YUV 4:2:0 planes), converted to RGB where they lie.

The GPU path's frame: NVDEC decodes into CUDA memory and the frame stays there (no trip through host memory
and PCIe: 6 MB a 1080p RGB frame). Resizing and colour conversion then run on the GPU, in that order: the
conversion is affine, so resizing the planes first gives the same picture as resizing the RGB frame (up to
the clipping of out-of-gamut values), and it converts 224 x 224 pixels instead of the full frame. The full
frame is converted only when annotation, preview or an explanation need it.

The same class holds a software decoder's planes on the CPU (`PyAVSource(yuv_device="cpu")`), which is how
the GPU path's arithmetic is tested on machines without a GPU. It is not the CPU default: there, swscale's
full-size RGB conversion and torch's uint8 resize cost about what resizing the planes costs (1.93 against
1.66 ms a 1080p frame on the 2-core CPU; torch has no fast uint8 kernel for one channel, 5.0 ms), and they
give the pixels the artifact was fitted on.

Which matrix and range follow the frame's tags as swscale reads them: BT.709 or BT.2020 where tagged, else
BT.601; limited range unless the frame says full (JPEG) range. The values are the standards' formulas, as
OpenCV computes them (within 1 level; full-size chroma repeated over each 2 x 2 block, as OpenCV does).
FFmpeg 8.1's swscale, the CPU path's converter, reads 1.0-1.6 levels darker (docs/PERFORMANCE.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Kr, Kb of each matrix (ITU-R BT.601, BT.709, BT.2020); Kg = 1 - Kr - Kb.
MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}
# FFmpeg's AVColorSpace values for the matrices that are not BT.601 (AVCOL_SPC_BT709, _BT2020_NCL, _BT2020_CL).
COLORSPACES = {1: "bt709", 9: "bt2020", 10: "bt2020"}
JPEG_RANGE = 2   # AVCOL_RANGE_JPEG


@dataclass(slots=True)
class YuvImage:
    """One 4:2:0 frame: `luma` H x W and `chroma` 2 x H/2 x W/2 (Cb, Cr), uint8 tensors on one device, any
    strides (NVDEC's interleaved chroma is a view, not a copy)."""

    luma: torch.Tensor
    chroma: torch.Tensor
    matrix: str = "bt601"
    full_range: bool = False

    @property
    def shape(self) -> tuple[int, int, int]:
        """As the RGB frame's: H x W x 3."""
        return (*self.luma.shape, 3)

    @property
    def nbytes(self) -> int:
        return self.luma.numel() + self.chroma.numel()

    @property
    def device(self) -> torch.device:
        return self.luma.device

    def to(self, device: torch.device | str, non_blocking: bool = False) -> YuvImage:
        return YuvImage(self.luma.to(device, non_blocking=non_blocking),
                        self.chroma.to(device, non_blocking=non_blocking), self.matrix, self.full_range)

    def rgb(self) -> torch.Tensor:
        """The full frame, H x W x 3 uint8 RGB, on the frame's device."""
        height, width = self.luma.shape
        chroma = self.chroma.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)[:, :height, :width]
        rgb = to_rgb(self.luma.unsqueeze(0).float(), chroma.float(), self.matrix, self.full_range)
        return rgb.clamp_(0, 255).round_().to(torch.uint8).permute(1, 2, 0)

    def array(self) -> np.ndarray:
        """The full frame as the host's H x W x 3 uint8 RGB array (annotation, preview, explanation)."""
        return self.rgb().cpu().numpy()


def to_rgb(luma: torch.Tensor, chroma: torch.Tensor, matrix: str, full_range: bool) -> torch.Tensor:
    """Float Y (... x 1 x H x W) and CbCr (... x 2 x H x W) code values -> float RGB (... x 3 x H x W), 0..255
    for in-gamut colours (not clipped)."""
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    if full_range:
        y, c = luma, chroma - 128.0
    else:
        y, c = (luma - 16.0) * (255.0 / 219.0), (chroma - 128.0) * (255.0 / 224.0)
    cb, cr = c.narrow(-3, 0, 1), c.narrow(-3, 1, 1)
    red = y + (2 * (1 - kr)) * cr
    green = y - (2 * kb * (1 - kb) / kg) * cb - (2 * kr * (1 - kr) / kg) * cr
    blue = y + (2 * (1 - kb)) * cb
    return torch.cat([red, green, blue], dim=-3)


def resized_rgb(frames: Sequence[YuvImage], size: int) -> torch.Tensor:
    """N frames -> N x 3 x size x size float RGB (0..255, clipped), resized as planes, then converted.

    The resize is the RGB path's (antialiased bilinear, pipeline/model/preprocess.py), on float planes: the
    chroma plane is resized from its own half resolution. Frames of one size, matrix and range are resized
    together, in one call per plane.
    """
    out = torch.empty((len(frames), 3, size, size), dtype=torch.float32, device=frames[0].device)
    groups: dict[tuple, list[int]] = {}
    for index, frame in enumerate(frames):
        groups.setdefault((frame.luma.shape, frame.matrix, frame.full_range), []).append(index)
    for (_, matrix, full_range), indices in groups.items():
        luma = torch.stack([frames[i].luma for i in indices]).unsqueeze(1).float()
        chroma = torch.stack([frames[i].chroma for i in indices]).float()
        luma, chroma = (F.interpolate(plane, size=(size, size), mode="bilinear", antialias=True,
                                      align_corners=False) for plane in (luma, chroma))
        out[indices] = to_rgb(luma, chroma, matrix, full_range).clamp_(0, 255)
    return out


def rgb_array(image: np.ndarray | YuvImage) -> np.ndarray:
    """Any decoded frame as a host H x W x 3 uint8 RGB array."""
    return image.array() if isinstance(image, YuvImage) else image
