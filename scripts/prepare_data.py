"""Build the 2-class in-distribution benchmark (Kvasir-SEG windows) and the OOD folders from shared/data.

Deterministic: every frame's windows come from a random generator seeded with (seed, frame name), so a frame
gives the same windows whatever else is processed; JPEG encoding is deterministic too.

Choices, and why (docs/DATA.md says the same at more length):
- Windows, not frames: every Kvasir-SEG frame holds a polyp, so a frame-level "no polyp" class only exists as
  windows. Window sides are SCALES x the frame's shorter side (0.25, 0.35, 0.5: about 130, 185 and 265 px on a
  typical 620x530 frame), so the field of view is similar whatever the frame resolution. Larger windows rarely
  fit beside the polyp inside the octagonal picture (at 0.5 only half the frames have a polyp-free window).
- Only endoscope image: a window must lie at least MIN_CONTENT inside the image area. The area is the frame
  minus the dark border connected to the frame's edge (which also takes the black box many frames have in the
  lower-left corner), minus the green scope-position box a few frames show there, minus thin burned-in text
  (removed by a morphological opening). Dark lumen inside the picture is kept: it is not connected to the edge.
- Labels from the masks (> 127, masks are JPEG): `mucosa` = not one polyp pixel in the window; `polyp` = polyp
  covers at least POLYP_SHARE of the window, or the window holds at least POLYP_COVER of one polyp (a small
  polyp seen whole) and that polyp fills at least MIN_SHARE of the window. Anything between is ambiguous and
  not written (those windows are still in-distribution, but not a clean class).
- Sampling: at each scale every window position on a GRID_STEP px grid is labelled and one window per class is
  drawn at random; scales are visited in random order.
- Balance: per frame at most PER_FRAME windows of each class, then within each split and scale the larger class
  is subsampled to the smaller. Balancing per scale stops the zoom level from being a shortcut to the label
  (large windows hold polyps far more often than small ones).
- Windows are saved square, OUTPUT_SIZE px, JPEG quality 95 (the classifier sees 224 px).
- OOD: laparoscopic = every LAPAROSCOPIC_STEP-th frame of endo.mp4 (consecutive frames are near duplicates),
  halved to 640x360; capsule, chest X-ray and natural photos are copied unchanged.
- Bank: OUT/ID/bank/unlabelled/ holds BANK_PER_FRAME more windows of every training frame, at a scale drawn
  from [0.25, 0.5] and any position inside the picture, whatever they hold (polyp edges included), with no
  label: the views a pan over a frame shows, for relevance-kNN's bank (`nero fit --bank`), never for training
  or validation.
The per-window ground truth (frame, box, polyp share and cover) goes to OUT/ID/windows.csv.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import zlib
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from pipeline.errors import UserError  # noqa: E402
from pipeline.media.images import list_images, read_rgb  # noqa: E402

SCALES = (0.25, 0.35, 0.5)
MIN_CONTENT = 0.99
POLYP_SHARE = 0.2
POLYP_COVER = 0.5
MIN_SHARE = 0.05
PER_FRAME = 2
GRID_STEP = 8  # px between the window positions considered
OUTPUT_SIZE = 256
BANK_PER_FRAME = 4
BANK_SCALES = (0.25, 0.5)    # the range bank windows' sides are drawn from, x the frame's shorter side
DARK_LEVEL = 30
LAPAROSCOPIC_STEP = 5
OOD_COPIED = ("capsule", "chest-xray", "natural")
CLASSES = ("mucosa", "polyp")


@dataclass
class Window:
    frame: str
    scale: int
    x: int
    y: int
    side: int
    share: float
    cover: float
    label: str


def content_mask(rgb: np.ndarray) -> np.ndarray:
    """True where the endoscope's picture is (see the module docstring)."""
    dark = (rgb.max(axis=2) < DARK_LEVEL).astype(np.uint8)
    _, labels = cv2.connectedComponents(dark)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    border = np.isin(labels, edge[edge > 0])
    r, g = rgb[..., 0].astype(int), rgb[..., 1].astype(int)
    green = (g > r + 50) & (g > 60)
    if green.mean() > 0.005:
        ys, xs = np.nonzero(green)
        pad = round(0.02 * max(rgb.shape[:2]))
        border[max(ys.min() - pad, 0):ys.max() + pad + 1, max(xs.min() - pad, 0):xs.max() + pad + 1] = True
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    return cv2.morphologyEx((~border).astype(np.uint8), cv2.MORPH_OPEN, kernel).astype(bool)


def box_sums(integral: np.ndarray, xs: np.ndarray, ys: np.ndarray, side: int) -> np.ndarray:
    """Sums over the side x side boxes at every (y, x) of the grid ys x xs, from an integral image."""
    y, x = ys[:, None], xs[None, :]
    return (integral[y + side, x + side] - integral[y, x + side] - integral[y + side, x] + integral[y, x]).astype(float)


def frame_windows(name: str, rgb: np.ndarray, mask: np.ndarray, seed: int) -> list[Window]:
    """Up to PER_FRAME polyp and PER_FRAME mucosa windows of one frame, each at a different scale.

    Every window position on a GRID_STEP px grid is labelled; one is drawn at random from each class.
    """
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    h, w = mask.shape
    content = cv2.integral(content_mask(rgb).astype(np.uint8))
    polyp = cv2.integral(mask.astype(np.uint8))
    count, components = cv2.connectedComponents(mask.astype(np.uint8))
    polyps = [cv2.integral((components == c).astype(np.uint8)) for c in range(1, count)]
    found: dict[str, list[Window]] = {label: [] for label in CLASSES}
    for scale in rng.permutation(len(SCALES)).tolist():
        side = round(SCALES[scale] * min(h, w))
        xs, ys = np.arange(0, w - side + 1, GRID_STEP), np.arange(0, h - side + 1, GRID_STEP)
        area = side * side
        inside = box_sums(polyp, xs, ys, side)
        share = inside / area
        cover = np.zeros_like(share)
        for component in polyps:
            cover = np.maximum(cover, box_sums(component, xs, ys, side) / component[-1, -1])
        usable = box_sums(content, xs, ys, side) >= MIN_CONTENT * area
        is_label = {
            "mucosa": usable & (inside == 0),
            "polyp": usable & ((share >= POLYP_SHARE) | ((cover >= POLYP_COVER) & (share >= MIN_SHARE))),
        }
        for label in CLASSES:
            candidates = np.argwhere(is_label[label])
            if len(found[label]) < PER_FRAME and len(candidates):
                i, j = candidates[rng.integers(len(candidates))]
                found[label].append(Window(name, scale, int(xs[j]), int(ys[i]), side, round(float(share[i, j]), 4),
                                           round(float(cover[i, j]), 4), label))
    return found["mucosa"] + found["polyp"]


def balance(windows: list[Window], seed: int) -> list[Window]:
    """Subsample the larger class to the smaller one, separately for every scale."""
    rng = np.random.default_rng(seed)
    kept = []
    for scale in range(len(SCALES)):
        by_label = [[w for w in windows if w.scale == scale and w.label == label] for label in CLASSES]
        n = min(len(group) for group in by_label)
        for group in by_label:
            kept += [group[i] for i in sorted(rng.choice(len(group), n, replace=False))]
    return kept


def window_pixels(rgb: np.ndarray, window: Window) -> np.ndarray:
    crop = rgb[window.y:window.y + window.side, window.x:window.x + window.side]
    return cv2.resize(crop, (OUTPUT_SIZE, OUTPUT_SIZE), interpolation=cv2.INTER_AREA)


def write_jpeg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]):
        raise UserError(f"cannot write {path}")


def build_split(kvasir: Path, split: str, out: Path, seed: int, limit: int | None) -> list[dict]:
    """Write OUT/ID/<split>/<class>/*.jpg; return the ground-truth rows of the windows written."""
    images = list_images(kvasir / split / "images")[:limit]
    if not images:
        raise UserError(f"no images in {kvasir / split / 'images'}")
    windows = []
    for path in tqdm(images, desc=f"ID {split}: finding windows", unit="frame"):
        mask_path = kvasir / split / "masks" / path.name
        if not mask_path.is_file():
            raise UserError(f"mask missing for {path}: expected {mask_path}")
        mask = read_rgb(mask_path)[..., 0] > 127
        windows += frame_windows(path.name, read_rgb(path), mask, seed)
    windows = balance(windows, seed)
    rows = []
    by_frame = {path.name: path for path in images}
    for name in tqdm(sorted({w.frame for w in windows}), desc=f"ID {split}: writing", unit="frame"):
        rgb = read_rgb(by_frame[name])
        for window in (w for w in windows if w.frame == name):
            file = out / "ID" / split / window.label / f"{Path(name).stem}_s{window.scale}.jpg"
            write_jpeg(file, window_pixels(rgb, window))
            rows.append({"split": split, "file": file.relative_to(out).as_posix(), **vars(window)})
    return rows


def build_bank(kvasir: Path, out: Path, seed: int, limit: int | None) -> int:
    """Write OUT/ID/bank/unlabelled/*.jpg from the training frames; returns how many."""
    written = 0
    for path in tqdm(list_images(kvasir / "train" / "images")[:limit], desc="ID bank", unit="frame"):
        rgb = read_rgb(path)
        h, w = rgb.shape[:2]
        rng = np.random.default_rng([seed, zlib.crc32(path.name.encode()), 1])
        content = cv2.integral(content_mask(rgb).astype(np.uint8))
        for index in range(BANK_PER_FRAME):
            side = round(rng.uniform(*BANK_SCALES) * min(h, w))
            xs, ys = np.arange(0, w - side + 1, GRID_STEP), np.arange(0, h - side + 1, GRID_STEP)
            usable = np.argwhere(box_sums(content, xs, ys, side) >= MIN_CONTENT * side * side)
            if len(usable):
                i, j = usable[rng.integers(len(usable))]
                window = Window(path.name, -1, int(xs[j]), int(ys[i]), side, 0.0, 0.0, "unlabelled")
                write_jpeg(out / "ID" / "bank" / "unlabelled" / f"{path.stem}_b{index}.jpg",
                           window_pixels(rgb, window))
                written += 1
    return written


def build_ood(data: Path, out: Path, limit: int | None) -> dict[str, int]:
    """Write OUT/OOD/<set>/ and return the number of images per set."""
    import av

    counts = {}
    video = data / "ood" / "laparoscopic" / "endo.mp4"
    if not video.is_file():
        raise UserError(f"laparoscopic clip not found: {video}")
    target = out / "OOD" / "laparoscopic"
    with av.open(str(video)) as container:
        stop = None if limit is None else limit * LAPAROSCOPIC_STEP
        frames = list(islice(container.decode(video=0), 0, stop, LAPAROSCOPIC_STEP))
        for index, frame in enumerate(tqdm(frames, desc="OOD laparoscopic", unit="frame")):
            rgb = frame.to_ndarray(format="rgb24")
            half = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)
            write_jpeg(target / f"endo_{index * LAPAROSCOPIC_STEP:04d}.jpg", half)
    counts["laparoscopic"] = len(frames)
    for name in OOD_COPIED:
        sources = list_images(data / "ood" / name)[:limit]
        (out / "OOD" / name).mkdir(parents=True, exist_ok=True)
        for source in tqdm(sources, desc=f"OOD {name}", unit="image"):
            shutil.copyfile(source, out / "OOD" / name / source.name)
        counts[name] = len(sources)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared" / "data",
                        help="the shared data folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "work" / "benchmark",
                        help="output folder; its ID/ and OOD/ are rebuilt (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N frames per split and images per OOD set (for tests)")
    args = parser.parse_args(argv)
    kvasir = args.shared / "kvasir-seg"
    if not kvasir.is_dir():
        raise UserError(f"Kvasir-SEG not found at {kvasir} (pass --shared)")
    for part in ("ID", "OOD"):
        shutil.rmtree(args.out / part, ignore_errors=True)
    rows = []
    for split in ("train", "val"):
        rows += build_split(kvasir, split, args.out, args.seed, args.limit)
    with open(args.out / "ID" / "windows.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    bank = build_bank(kvasir, args.out, args.seed, args.limit)
    ood = build_ood(args.shared, args.out, args.limit)
    for split in ("train", "val"):
        counts = {c: sum(r["split"] == split and r["label"] == c for r in rows) for c in CLASSES}
        per_scale = [sum(r["split"] == split and r["scale"] == s for r in rows) for s in range(len(SCALES))]
        print(f"ID {split}: " + ", ".join(f"{c} {n}" for c, n in counts.items()) + f" (per scale {per_scale})")
    print(f"ID bank: {bank} unlabelled windows of the training frames")
    print("OOD: " + ", ".join(f"{name} {n}" for name, n in ood.items()))
    print(f"written to {args.out}")


if __name__ == "__main__":
    try:
        main()
    except UserError as error:
        sys.exit(f"error: {error}")
