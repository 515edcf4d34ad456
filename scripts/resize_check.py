"""Time the resize to the model's input, float against uint8, and compare the pixels (docs/PERFORMANCE.md).

    python scripts/resize_check.py scripts/demo/clip.mp4 [more clips]

Per clip: ms per frame through the bundled `Preprocess` (resize to 224 x 224 and normalisation), in batches of
16, given the frames as float (the resize of the float copy, the old path) and as uint8 (the resize in uint8,
the path it takes on the CPU now), and how far apart the resulting pixels are.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from pipeline.media.video import video_frames
from pipeline.model.preprocess import Preprocess

log = logging.getLogger("resize_check")


def timed(preprocess: Preprocess, batches: list[torch.Tensor]) -> tuple[torch.Tensor, float]:
    """The batches' pixel values after `preprocess`, and its time in ms per frame."""
    preprocess(batches[0])   # warm-up
    start = time.perf_counter()
    out = torch.cat([preprocess(batch) for batch in batches])
    return preprocess.pixels(out), (time.perf_counter() - start) / len(out) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+")
    parser.add_argument("--frames", type=int, default=160)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(2)
    for clip in args.clips:
        images = [frame.image for frame, _ in zip(video_frames(clip), range(args.frames), strict=False)]
        batches = [torch.from_numpy(np.stack(images[i:i + 16])) for i in range(0, len(images), 16)]
        preprocess = Preprocess()
        reference, float_ms = timed(preprocess, [batch.float() for batch in batches])
        rounded, uint8_ms = timed(preprocess, batches)
        gap = (rounded - reference).abs()
        log.info("%s %dx%d: float %.2f ms/frame, uint8 %.2f ms/frame (%.1fx); pixels apart mean %.3f, max %.2f",
                 clip, images[0].shape[1], images[0].shape[0], float_ms, uint8_ms, float_ms / uint8_ms,
                 gap.mean(), gap.max())


if __name__ == "__main__":
    main()
