"""Write a rescaled H.264 copy of a clip, e.g. the 1080p clip docs/PERFORMANCE.md measures:

    python scripts/scale_clip.py scripts/demo/clip.mp4 work/clip1080.mp4 --size 1920x1080 --frames 1200

PyAV only (no ffmpeg binary needed): every frame is scaled by swscale and encoded with libx264 at the source's
frame rate (`pipeline.media.video.copy_h264`, as `nero bench` trims its clips).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import av

from pipeline.media.video import copy_h264

log = logging.getLogger("scale_clip")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="video file to copy")
    parser.add_argument("out", type=Path, help="MP4 to write (refused if it exists)")
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT (default 1920x1080)")
    parser.add_argument("--frames", type=int, default=None, help="at most this many frames (default: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        width, height = (int(part) for part in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must be WIDTHxHEIGHT, got {args.size!r}")
    if width < 2 or height < 2 or width % 2 or height % 2:
        parser.error(f"--size needs even sides of at least 2 (yuv420p), got {args.size}")
    if not args.source.is_file():
        parser.error(f"no such video file: {args.source}")
    if args.out.exists():
        parser.error(f"{args.out} exists; remove it or choose another name")
    try:
        count = copy_h264(args.source, args.out, args.frames, (width, height))
    except av.FFmpegError as error:
        log.error("cannot copy %s: %s", args.source, error)
        return 1
    log.info("wrote %s: %d frames at %dx%d", args.out, count, width, height)
    return 0


if __name__ == "__main__":
    sys.exit(main())
