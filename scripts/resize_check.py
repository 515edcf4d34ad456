"""Time the resize to the model's input, float against uint8, and compare the pixels (docs/PERFORMANCE.md).

    python scripts/resize_check.py scripts/demo/clip.mp4 [more clips]

Per clip: ms per frame to 224 x 224 for torch's antialiased bilinear resize of the float copy (the old path)
and of the uint8 frames in their channels-last layout (Preprocess on the CPU now), in batches of 16, and how
far apart their pixels are.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.media.video import video_frames

log = logging.getLogger("resize_check")


def resize(batch: torch.Tensor) -> torch.Tensor:
    return F.interpolate(batch, size=(224, 224), mode="bilinear", antialias=True, align_corners=False).float()


def timed(batches: list[torch.Tensor], prepare) -> tuple[torch.Tensor, float]:
    resize(prepare(batches[0]))   # warm-up
    start = time.perf_counter()
    out = torch.cat([resize(prepare(batch)) for batch in batches])
    return out, (time.perf_counter() - start) / len(out) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+")
    parser.add_argument("--frames", type=int, default=160)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(2)
    for clip in args.clips:
        images = [frame.image for frame, _ in zip(video_frames(clip), range(args.frames), strict=False)]
        batches = [torch.from_numpy(np.stack(images[i:i + 16])).permute(0, 3, 1, 2) for i in range(0, len(images), 16)]
        reference, float_ms = timed(batches, lambda batch: batch.float())
        rounded, uint8_ms = timed(batches, lambda batch: batch)
        gap = (rounded - reference).abs()
        log.info("%s %dx%d: float %.2f ms/frame, uint8 %.2f ms/frame (%.1fx); pixels apart mean %.3f, max %.2f",
                 clip, images[0].shape[1], images[0].shape[0], float_ms, uint8_ms, float_ms / uint8_ms,
                 gap.mean(), gap.max())


if __name__ == "__main__":
    main()
