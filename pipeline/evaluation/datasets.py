"""The image sets an evaluation runs on, and the synthetic outliers that validation makes from them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.errors import UserError
from pipeline.media.images import image_folder, list_images

JIGSAW_GRID = 4


@dataclass
class ImageSet:
    name: str
    paths: list[Path]
    labels: list[int] | None = None


def folder_set(name: str, root: Path, classes: Sequence[str] | None = None) -> tuple[ImageSet, list[str]]:
    """An ImageFolder as a labelled set; with `classes`, its class folders must be exactly those."""
    paths, labels, found = image_folder(root)
    if classes is not None and list(found) != list(classes):
        raise UserError(f"{root} has classes {found} but the training folder has {list(classes)}")
    return ImageSet(name, paths, labels), found


def ood_sets(roots: Sequence[Path]) -> list[ImageSet]:
    """One unlabelled set per OOD folder (images directly inside or in subfolders), named after the folder."""
    sets = []
    for root in roots:
        paths = list_images(root)
        if not paths:
            raise UserError(f"OOD folder {root} holds no images")
        sets.append(ImageSet(Path(root).resolve().name, paths))
    return sets


def jigsaw(inputs: torch.Tensor, grid: int = JIGSAW_GRID) -> torch.Tensor:
    """Shuffle a grid x grid tiling of each image with one fixed derangement (no tile stays in place)."""
    n, c, h, w = inputs.shape
    th, tw = h // grid, w // grid
    tiles = inputs[:, :, : th * grid, : tw * grid].reshape(n, c, grid, th, grid, tw).permute(0, 1, 2, 4, 3, 5)
    tiles = tiles.reshape(n, c, grid * grid, th, tw)
    order = torch.roll(torch.arange(grid * grid), shifts=grid + 1)     # every tile moves a row and a column
    shuffled = tiles[:, :, order].reshape(n, c, grid, grid, th, tw).permute(0, 1, 2, 4, 3, 5)
    out = inputs.clone()
    out[:, :, : th * grid, : tw * grid] = shuffled.reshape(n, c, th * grid, tw * grid)
    return out


def rotate_channels(inputs: torch.Tensor) -> torch.Tensor:
    """RGB -> GBR: the same scene in colours no endoscope produces."""
    return inputs[:, [1, 2, 0]]


OUTLIER_TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "jigsaw": jigsaw, "channels": rotate_channels,
}

