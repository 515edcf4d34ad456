"""Cut the small real data set the test suite runs on (tests/data) from shared/data.

    python scripts/make_test_fixtures.py        # --shared ../shared/data --out tests/data

A fresh clone has no shared/data, so the tests read these derived files instead. Everything is downscaled
(longest side at most MAX_SIDE px, JPEG quality JPEG_QUALITY) to keep the folder a few MB:
- kvasir-seg/train/{images,masks}: the first TRAIN_FRAMES training frames, masks as binary PNG
  (the detector tests fit on 64 of them and test on 24); kvasir-seg/val/images: the first VAL_FRAMES
  validation frames.
- ID/{train,val}/{mucosa,polyp} with ID/windows.csv, and OOD/{laparoscopic,capsule,chest-xray,natural}:
  scripts/prepare_data.py run with --limit PER_SET (windows cut from the full-size frames), then downscaled.
- laparoscopic.mp4: the first CLIP_FRAMES frames of ood/laparoscopic/endo.mp4, H.264.
Deterministic: prepare_data is, and so are JPEG, PNG and single-threaded x264 encoding. tests/data/README.md
(written by hand) gives the sources and their terms; the folders this script writes are rebuilt.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from itertools import islice
from pathlib import Path

import av
import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "scripts")]

import prepare_data  # noqa: E402

from pipeline.errors import UserError  # noqa: E402
from pipeline.media.images import list_images, read_rgb  # noqa: E402

MAX_SIDE = 256
JPEG_QUALITY = 85
TRAIN_FRAMES = 88
VAL_FRAMES = 8
PER_SET = 10          # frames per split for the ID windows, images per OOD set
CLIP_FRAMES = 125     # 5 s at 25 fps
CLIP_CRF = 28
WRITTEN = ("kvasir-seg", "ID", "OOD", "laparoscopic.mp4")


def shrunk(rgb: np.ndarray, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """The image with its longest side at most MAX_SIDE px (smaller images are left as they are)."""
    factor = MAX_SIDE / max(rgb.shape[:2])
    if factor >= 1:
        return rgb
    size = (max(round(rgb.shape[1] * factor), 1), max(round(rgb.shape[0] * factor), 1))
    return cv2.resize(rgb, size, interpolation=interpolation)


def write_image(path: Path, rgb: np.ndarray) -> None:
    """JPEG at JPEG_QUALITY, or lossless PNG when the suffix is .png."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = [] if path.suffix == ".png" else [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), options):
        raise UserError(f"cannot write {path}")


def copy_kvasir(kvasir: Path, split: str, count: int, out: Path, with_masks: bool) -> None:
    """The first `count` frames of a split, downscaled; masks thresholded (> 127, they are JPEG) to 0/255."""
    frames = list_images(kvasir / split / "images")[:count]
    if len(frames) < count:
        raise UserError(f"need {count} frames in {kvasir / split / 'images'}, found {len(frames)}")
    for frame in frames:
        write_image(out / "kvasir-seg" / split / "images" / f"{frame.stem}.jpg", shrunk(read_rgb(frame)))
        if with_masks:
            mask = shrunk(read_rgb(kvasir / split / "masks" / frame.name))
            write_image(out / "kvasir-seg" / split / "masks" / f"{frame.stem}.png",
                        np.where(mask > 127, 255, 0).astype(np.uint8))


def copy_benchmark(benchmark: Path, out: Path) -> None:
    """prepare_data's ID/ and OOD/ folders, every image downscaled and saved as JPEG."""
    for part in ("ID", "OOD"):
        for image in list_images(benchmark / part):
            target = (out / image.relative_to(benchmark)).with_suffix(".jpg")
            write_image(target, shrunk(read_rgb(image)))
    shutil.copyfile(benchmark / "ID" / "windows.csv", out / "ID" / "windows.csv")


def write_clip(video: Path, target: Path) -> None:
    """The first CLIP_FRAMES frames of `video`, downscaled, as H.264 MP4 at the source's frame rate."""
    with av.open(str(video)) as source:
        rate = source.streams.video[0].average_rate
        frames = [shrunk(frame.to_ndarray(format="rgb24")) for frame in islice(source.decode(video=0), CLIP_FRAMES)]
    with av.open(str(target), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(CLIP_CRF), "preset": "slow", "threads": "1"}
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared" / "data",
                        help="the shared data folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "tests" / "data",
                        help="output folder; its " + ", ".join(WRITTEN) + " are rebuilt (default: %(default)s)")
    args = parser.parse_args(argv)
    kvasir = args.shared / "kvasir-seg"
    if not kvasir.is_dir():
        raise UserError(f"Kvasir-SEG not found at {kvasir} (pass --shared)")
    for name in WRITTEN:
        path = args.out / name
        if path.is_dir():
            shutil.rmtree(path)
        path.unlink(missing_ok=True)
    copy_kvasir(kvasir, "train", TRAIN_FRAMES, args.out, with_masks=True)
    copy_kvasir(kvasir, "val", VAL_FRAMES, args.out, with_masks=False)
    with tempfile.TemporaryDirectory() as benchmark:
        prepare_data.main(["--shared", str(args.shared), "--out", benchmark, "--limit", str(PER_SET),
                           "--seed", "0"])
        copy_benchmark(Path(benchmark), args.out)
    write_clip(args.shared / "ood" / "laparoscopic" / "endo.mp4", args.out / "laparoscopic.mp4")
    files = [path for path in args.out.rglob("*") if path.is_file()]
    size = sum(path.stat().st_size for path in files) / 1e6
    print(f"wrote {args.out}: {len(files)} files, {size:.2f} MB")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as error:
        sys.exit(f"error: {error}")
