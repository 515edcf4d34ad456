"""Decoded frames kept in the decoder's own layout (YUV 4:2:0 planes), converted to RGB where they lie.

The GPU path's frame: NVDEC decodes into CUDA memory and the frame stays there (no trip through host memory
and PCIe: 6 MB a 1080p RGB frame). The colour conversion then runs on the GPU, on the full frame, and the
frame is resized as RGB, as on the CPU: so the model sees the CPU path's pixels.

That order was chosen for the scores, not for speed. Resizing the planes first and converting 224 x 224 pixels
was the first design. Run on the CPU against the RGB path, with the demo clip's alerts and the bundled
artifact (2026-12-04), it gave:
- scores 0.0047 apart on average (p99 0.021), and `pred` the same on 98.4% of frames;
- on the lent H200, the demo's alert intervals differed from the CPU's.
The chroma plane was resized from its own half resolution, and the picture was never rounded to integers.
Converting first by the CPU path's formula (below), then resizing with the CPU's uint8 kernel reproduced
(`uint8_resize`, pipeline/model/preprocess.py), gives the CPU path's model input bit for bit. That is checked
on the CPU (tests/pipeline/media/test_yuv.py); it has not yet run on a GPU, and what converting the full
frame there costs is not measured yet.

Which matrix and range follow the frame's tags as FFmpeg reads them: BT.709 or BT.2020 where tagged, else
BT.601; limited range unless the frame says full (JPEG) range.
- The common case, BT.601 in limited range, is OpenCV's integer conversion, bit for bit: the CPU path's
  `cv2.cvtColor(..., COLOR_YUV2RGB_I420)` (pipeline/media/video.py).
- Other matrices and ranges use the standards' formulas in floating point, with full-size chroma repeated
  over each 2 x 2 block, as OpenCV does. The CPU path takes swscale's RGB for them, and FFmpeg 8.1's swscale
  reads 0.9-1.5 levels darker (docs/PERFORMANCE.md), so there the two paths still differ by about a level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

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
        return rgb_frames([self])[0]

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


def opencv_bt601(luma: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """uint8 Y (... x 1 x H x W) and full-size CbCr (... x 2 x H x W) -> uint8 RGB (... x 3 x H x W): OpenCV's
    BT.601 limited-range conversion (`COLOR_YUV2RGB_I420`), its 20-bit fixed-point coefficients and rounding,
    bit for bit."""
    y = (luma.int() - 16).clamp_(min=0) * 1220542 + (1 << 19)
    cb, cr = chroma.narrow(-3, 0, 1).int() - 128, chroma.narrow(-3, 1, 1).int() - 128
    rgb = torch.cat([y + 1673527 * cr, y - 852492 * cr - 409993 * cb, y + 2116026 * cb], dim=-3)
    return (rgb >> 20).clamp_(0, 255).to(torch.uint8)


def rgb_frames(frames: Sequence[YuvImage]) -> torch.Tensor:
    """N frames of one size -> N x H x W x 3 uint8 RGB on their device. Frames of one matrix and range are
    converted together, one call per step for all of them (a batch of the GPU path's frames)."""
    height, width = frames[0].luma.shape
    out = torch.empty((len(frames), 3, height, width), dtype=torch.uint8, device=frames[0].device)
    groups: dict[tuple[str, bool], list[int]] = {}
    for index, frame in enumerate(frames):
        groups.setdefault((frame.matrix, frame.full_range), []).append(index)
    for (matrix, full_range), indices in groups.items():
        luma = torch.stack([frames[i].luma for i in indices]).unsqueeze(1)
        chroma = torch.stack([frames[i].chroma for i in indices])
        chroma = chroma.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)[..., :height, :width]
        if matrix == "bt601" and not full_range:
            out[indices] = opencv_bt601(luma, chroma)
        else:
            out[indices] = to_rgb(luma.float(), chroma.float(), matrix, full_range).clamp_(0, 255).round_().to(
                torch.uint8)
    return out.permute(0, 2, 3, 1)


def rgb_array(image: np.ndarray | YuvImage) -> np.ndarray:
    """Any decoded frame as a host H x W x 3 uint8 RGB array."""
    return image.array() if isinstance(image, YuvImage) else image
