"""`nero score` with the bundled default on the inputs a procedure room must never see called normal: every
natural photograph, and frames with no usable content (black, white, sensor noise, heavy blur)."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.cli import main
from pipeline.media.images import list_images, read_rgb

FIXTURES = Path(__file__).resolve().parents[3] / "data"


def score(paths: list[Path], tmp_path: Path) -> list[dict]:
    jsonl = tmp_path / "scores.jsonl"
    assert main(["score", *map(str, paths), "--jsonl", str(jsonl)]) == 0
    return [json.loads(line) for line in jsonl.read_text().splitlines()]


def test_every_natural_photo_is_out_of_distribution(tmp_path):
    photos = list_images(FIXTURES / "OOD" / "natural")
    records = score(photos, tmp_path)
    assert len(records) == 6
    assert all(record["ood"] for record in records), records
    # the detector alone catches each (the horse on its white ground is also caught by the guard: bright)
    assert all(record["score"] > record["threshold"] for record in records), records


def write(folder: Path, name: str, images: list[np.ndarray]) -> list[Path]:
    paths = []
    for index, image in enumerate(images):
        paths.append(folder / f"{name}{index}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return paths


@pytest.mark.parametrize("kind", ["black", "white", "noise", "blur"])
def test_frames_without_content_are_out_of_distribution_with_their_reason(kind, tmp_path):
    rng = np.random.default_rng(0)
    kvasir = [read_rgb(path) for path in list_images(FIXTURES / "kvasir-seg" / "val" / "images")][:5]
    images = {
        "black": [np.zeros((480, 640, 3), np.uint8)] * 5,
        "white": [np.full((480, 640, 3), 255, np.uint8)] * 5,
        "noise": [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(5)],
        "blur": [cv2.GaussianBlur(frame, (0, 0), 8 * max(frame.shape[:2]) / 256) for frame in kvasir],
    }[kind]
    expected = {"black": "quality:dark", "white": "quality:bright", "noise": "quality:noise", "blur": "quality:blur"}
    records = score(write(tmp_path, kind, images), tmp_path)
    assert [(record["ood"], record["reason"]) for record in records] == [(True, expected[kind])] * 5
