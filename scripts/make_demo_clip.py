"""Make the demo replay clip from real images: slow pans across Kvasir-SEG frames with real OOD segments.

    python scripts/make_demo_clip.py            # --shared ../shared/data --out scripts/demo --seed 0
    python scripts/make_demo_clip.py --calibration --out work/calibration   # in-distribution video only

Writes OUT/clip.mp4 (H.264, 480x480, 25 fps, about 75 s) and OUT/clip.truth.csv, one row per frame:
frame, pts, segment (kvasir | laparoscopic | capsule | chest-xray), ood (0/1), source (file name), and for
Kvasir frames the window shown (x, y, side in source pixels) and the polyp share inside it, from the mask.

Layout: four in-distribution stretches with an OOD segment between each pair:
    Kvasir (4 frames) | laparoscopic | Kvasir (4) | capsule | Kvasir (4) | chest X-ray | Kvasir (3)
- Kvasir-SEG *validation* frames (the bundled model was trained on the training split): on each, a square
  window of 0.4 x the frame's shorter side (the middle of the scales the model was trained on, docs/DATA.md)
  pans slowly between two positions inside the endoscope's picture.
- laparoscopic: consecutive frames of the real 25 fps clip (real motion), centre square of the 1280x720 frame.
- capsule and chest X-ray: still images (padded square) with a slow zoom, a few per segment.
Deterministic for a given seed (image choice and pan paths come from one seeded generator).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "scripts")]

from prepare_data import content_mask  # noqa: E402  (one definition of "inside the endoscope's picture")

from pipeline.errors import UserError  # noqa: E402
from pipeline.media.images import list_images, read_rgb  # noqa: E402

SIZE = 480
FPS = 25
WINDOW = 0.4          # window side / frame's shorter side
MIN_CONTENT = 0.99    # share of a window that must be endoscope picture
OOD_ORDER = ("laparoscopic", "capsule", "chest-xray")
STRETCHES = (4, 4, 4, 3)  # Kvasir frames per in-distribution stretch
FIELDS = ("frame", "pts", "segment", "ood", "source", "x", "y", "side", "polyp_share")


def ease(steps: int) -> np.ndarray:
    """0..1 in `steps` values, slow at both ends (smoothstep), so a pan starts and stops gently."""
    t = np.linspace(0.0, 1.0, steps)
    return t * t * (3 - 2 * t)


Frames = Iterator[tuple[np.ndarray, dict]]   # RGB frames with their ground-truth facts


def kvasir_pan(image: Path, mask_path: Path, frames: int, rng: np.random.Generator) -> Frames:
    rgb = read_rgb(image)
    polyp = read_rgb(mask_path)[..., 0] > 127
    h, w = polyp.shape
    side = round(WINDOW * min(h, w))
    content = cv2.integral(content_mask(rgb).astype(np.uint8))
    ys, xs = np.mgrid[0:h - side + 1:4, 0:w - side + 1:4]
    inside = content[ys + side, xs + side] - content[ys, xs + side] - content[ys + side, xs] + content[ys, xs]
    usable = np.argwhere(inside >= MIN_CONTENT * side * side)
    if len(usable) == 0:
        raise UserError(f"{image.name}: no window of side {side} px lies inside the picture")
    start = usable[rng.integers(len(usable))]
    distances = np.abs(usable - start).sum(axis=1)
    end = usable[rng.choice(np.argsort(distances)[-max(1, len(usable) // 10):])]  # among the farthest tenth
    path = [ys[tuple(start)], xs[tuple(start)]], [ys[tuple(end)], xs[tuple(end)]]
    for t in ease(frames):
        y = round(path[0][0] + t * (path[1][0] - path[0][0]))
        x = round(path[0][1] + t * (path[1][1] - path[0][1]))
        window = cv2.resize(rgb[y:y + side, x:x + side], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        share = float(polyp[y:y + side, x:x + side].mean())
        yield window, {"source": image.name, "x": x, "y": y, "side": side, "polyp_share": round(share, 4)}


def square(rgb: np.ndarray) -> np.ndarray:
    """Pad to a square with black (the images' own background), centred."""
    h, w = rgb.shape[:2]
    n = max(h, w)
    out = np.zeros((n, n, 3), np.uint8)
    out[(n - h) // 2:(n - h) // 2 + h, (n - w) // 2:(n - w) // 2 + w] = rgb
    return out


def still_zoom(image: Path, frames: int) -> Frames:
    """A still image with a slow 10% zoom towards its centre."""
    rgb = square(read_rgb(image))
    n = rgb.shape[0]
    for t in ease(frames):
        crop = round(n * (1 - 0.1 * t))
        off = (n - crop) // 2
        yield cv2.resize(rgb[off:off + crop, off:off + crop], (SIZE, SIZE), interpolation=cv2.INTER_AREA), \
            {"source": image.name}


def laparoscopic(video: Path, frames: int) -> Frames:
    with av.open(str(video)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == frames:
                return
            rgb = frame.to_ndarray(format="rgb24")
            h, w = rgb.shape[:2]
            n = min(h, w)
            centre = rgb[(h - n) // 2:(h - n) // 2 + n, (w - n) // 2:(w - n) // 2 + n]
            yield cv2.resize(centre, (SIZE, SIZE), interpolation=cv2.INTER_AREA), \
                {"source": f"{video.name}#{index}"}


def kvasir_images(shared: Path, rng: np.random.Generator) -> tuple[list[Path], list[Path]]:
    """(the validation frames the demo shows, in its order; the others), drawn as the demo draws them."""
    images = list_images(shared / "kvasir-seg" / "val" / "images")
    if not images:
        raise UserError(f"no Kvasir-SEG validation images in {shared / 'kvasir-seg' / 'val' / 'images'}")
    order = rng.permutation(len(images))
    return [images[i] for i in order[:sum(STRETCHES)]], sorted(images[i] for i in order[sum(STRETCHES):])


def segments(shared: Path, pan_frames: int, ood_frames: int, stills: int,
             rng: np.random.Generator) -> Iterator[tuple[str, Frames]]:
    """(segment name, its frames) in clip order."""
    kvasir = shared / "kvasir-seg" / "val"
    chosen, _ = kvasir_images(shared, rng)
    ood = {
        "laparoscopic": lambda: laparoscopic(shared / "ood" / "laparoscopic" / "endo.mp4", ood_frames),
        "capsule": lambda: (f for image in _pick(shared / "ood" / "capsule", stills, rng)
                            for f in still_zoom(image, ood_frames // stills)),
        "chest-xray": lambda: (f for image in _pick(shared / "ood" / "chest-xray", stills, rng)
                               for f in still_zoom(image, ood_frames // stills)),
    }
    start = 0
    for stretch, count in enumerate(STRETCHES):
        for image in chosen[start:start + count]:
            yield "kvasir", kvasir_pan(image, kvasir / "masks" / image.name, pan_frames, rng)
        start += count
        if stretch < len(OOD_ORDER):
            yield OOD_ORDER[stretch], ood[OOD_ORDER[stretch]]()


def calibration_segments(shared: Path, pan_frames: int, pans: int, seed: int) -> Iterator[tuple[str, Frames]]:
    """In-distribution video only: `pans` pans over each Kvasir-SEG validation frame the demo does not show."""
    _, others = kvasir_images(shared, np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    masks = shared / "kvasir-seg" / "val" / "masks"
    for image in others:
        for _ in range(pans):
            yield "kvasir", kvasir_pan(image, masks / image.name, pan_frames, rng)


def _pick(folder: Path, count: int, rng: np.random.Generator) -> list[Path]:
    images = list_images(folder)
    if len(images) < count:
        raise UserError(f"need {count} images in {folder}, found {len(images)}")
    return [images[i] for i in sorted(rng.choice(len(images), count, replace=False))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "scripts" / "demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pan-seconds", type=float, default=4.0, help="seconds per Kvasir frame")
    parser.add_argument("--ood-seconds", type=float, default=5.0, help="seconds per OOD segment")
    parser.add_argument("--stills", type=int, default=5, help="capsule / X-ray images per segment")
    parser.add_argument("--crf", type=int, default=23, help="x264 quality (lower = better, larger)")
    parser.add_argument("--calibration", action="store_true",
                        help="write OUT/calibration.mp4 instead: in-distribution video only, --pans pans over "
                             "each validation frame the demo does not show (for `nero fit --calibration-video`)")
    parser.add_argument("--pans", type=int, default=2, help="with --calibration: pans per frame")
    args = parser.parse_args(argv)
    if not (args.shared / "kvasir-seg").is_dir():
        raise SystemExit(f"shared data not found at {args.shared}")
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "calibration" if args.calibration else "clip"
    clip, truth = args.out / f"{name}.mp4", args.out / f"{name}.truth.csv"
    pan_frames, ood_frames = round(args.pan_seconds * FPS), round(args.ood_seconds * FPS)
    parts = (calibration_segments(args.shared, pan_frames, args.pans, args.seed) if args.calibration
             else segments(args.shared, pan_frames, ood_frames, args.stills, rng))
    with av.open(str(clip), mode="w") as container, truth.open("w", newline="") as table:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(args.crf), "preset": "slow", "g": str(2 * FPS)}
        writer = csv.DictWriter(table, FIELDS)
        writer.writeheader()
        index = 0
        for segment, frames in parts:
            for rgb, facts in frames:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                frame.pts = index
                container.mux(stream.encode(frame))
                writer.writerow({"frame": index, "pts": f"{index / FPS:.2f}", "segment": segment,
                                 "ood": int(segment != "kvasir"), **facts})
                index += 1
        container.mux(stream.encode(None))
    size = clip.stat().st_size / 1e6
    print(f"wrote {clip} ({index} frames, {index / FPS:.1f} s, {size:.1f} MB) and {truth}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
