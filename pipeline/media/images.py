"""Reading still images and ImageFolder-style directories, with errors a user can act on."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import UserError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


# The bytes a whole file of these formats ends with: OpenCV decodes a file cut short without an error (the
# missing rows come out grey), so a truncated image would be scored as if it were whole.
END_MARKERS = {".jpg": b"\xff\xd9", ".jpeg": b"\xff\xd9", ".png": b"IEND\xaeB`\x82"}


def read_rgb(path: str | Path) -> np.ndarray:
    """H x W x 3 uint8 RGB; grayscale and RGBA images are converted. A JPEG or PNG cut short is refused."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read image {path}: {error.strerror}") from None
    marker = END_MARKERS.get(path.suffix.lower())
    if marker is not None and data and marker not in data[-len(marker) - 32:]:
        raise UserError(f"image {path} is truncated (it does not end as a whole {path.suffix.lower()[1:]} file)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise UserError(f"cannot read image {path} (not an image OpenCV can decode)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def list_images(root: str | Path) -> list[Path]:
    """Every image file under `root` (recursively), sorted; `root` may also be a single image."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise UserError(f"no such file or directory: {root}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def image_folder(root: str | Path) -> tuple[list[Path], list[int], list[str]]:
    """(paths, labels, class names) of an ImageFolder layout: one subdirectory per class, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"not a directory: {root}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise UserError(f"{root} has no class subdirectories (expected ImageFolder layout: {root}/CLASS/*.jpg)")
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        found = list_images(root / name)
        if not found:
            raise UserError(f"class folder {root / name} holds no images")
        paths += found
        labels += [index] * len(found)
    return paths, labels, classes


MOSAIC_COLUMNS = 64


def thumbnail(image: np.ndarray, side: int) -> np.ndarray:
    """A side x side RGB thumbnail of the image's central square (what a person recognises at 48 px)."""
    height, width = image.shape[:2]
    edge = min(height, width)
    top, left = (height - edge) // 2, (width - edge) // 2
    return cv2.resize(image[top:top + edge, left:left + edge], (side, side), interpolation=cv2.INTER_AREA)


def write_mosaic(path: Path, tiles: np.ndarray, quality: int = 85) -> None:
    """N x s x s x 3 RGB tiles as one JPEG grid, MOSAIC_COLUMNS wide: 2,688 tiles of 48 px take ~1 MB,
    a tenth of the raw pixels."""
    count, side = len(tiles), tiles.shape[1]
    rows = -(-count // MOSAIC_COLUMNS)
    grid = np.zeros((rows * side, MOSAIC_COLUMNS * side, 3), np.uint8)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, MOSAIC_COLUMNS)
        grid[row * side:(row + 1) * side, column * side:(column + 1) * side] = tile
    if not cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise UserError(f"cannot write {path}")


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """RGB uint8 -> JPEG bytes."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def mosaic_tile(mosaic: np.ndarray, index: int, side: int) -> np.ndarray:
    """Tile `index` of a mosaic read with `read_rgb`."""
    row, column = divmod(index, MOSAIC_COLUMNS)
    return mosaic[row * side:(row + 1) * side, column * side:(column + 1) * side]
