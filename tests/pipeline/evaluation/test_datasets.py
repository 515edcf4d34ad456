"""The synthetic outliers of validation: shuffled tiles and rotated colour channels."""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.evaluation.datasets import jigsaw, rotate_channels
from pipeline.media.images import list_images, read_rgb
from pipeline.model.preprocess import Preprocess

FIXTURES = Path(__file__).resolve().parents[2] / "data"


def test_jigsaw_moves_every_tile_and_keeps_the_pixels():
    image = Preprocess(224)([torch.from_numpy(read_rgb(list_images(FIXTURES / "OOD" / "natural")[0]))])
    shuffled = jigsaw(image)
    tiles = image.unfold(2, 56, 56).unfold(3, 56, 56).reshape(3, 16, 56, 56)
    moved = shuffled.unfold(2, 56, 56).unfold(3, 56, 56).reshape(3, 16, 56, 56)
    matches = [[torch.equal(moved[:, i], tiles[:, j]) for j in range(16)] for i in range(16)]
    assert all(sum(row) == 1 for row in matches)                     # each tile is one of the originals
    assert not any(matches[i][i] for i in range(16))                  # and none stayed in place
    assert torch.equal(rotate_channels(image)[:, 0], image[:, 1])
