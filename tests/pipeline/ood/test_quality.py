"""The input-quality guard, caused for real: black, white, grey, noise, a covered lens and blurred frames are
named for what they are; real in-distribution frames and windows pass untouched."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pipeline.media.images import list_images, read_rgb
from pipeline.model.preprocess import Preprocess
from pipeline.ood.quality import quality_reasons

FIXTURES = Path(__file__).resolve().parents[2] / "data"
PREPROCESS = Preprocess(224)


def reasons(images: list[np.ndarray]) -> list[str | None]:
    """As the monitor sees them: resized and normalised."""
    return quality_reasons(PREPROCESS([torch.from_numpy(image) for image in images]), PREPROCESS.mean,
                           PREPROCESS.std)


def real_frames() -> list[np.ndarray]:
    paths = list_images(FIXTURES / "ID") + list_images(FIXTURES / "kvasir-seg" / "val" / "images")
    return [read_rgb(path) for path in paths]


def test_real_in_distribution_frames_pass():
    frames = real_frames()
    assert len(frames) > 50 and reasons(frames) == [None] * len(frames)


@pytest.mark.parametrize(("make", "reason"), [
    (lambda rng: np.zeros((480, 640, 3), np.uint8), "quality:dark"),
    (lambda rng: np.full((480, 640, 3), 255, np.uint8), "quality:bright"),
    (lambda rng: np.full((480, 640, 3), 128, np.uint8), "quality:uniform"),
    (lambda rng: rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), "quality:noise"),
    # a lens covered by tissue: dim, red, almost flat, with sensor noise
    (lambda rng: np.clip(np.dstack([np.full((480, 640), 70.0), np.full((480, 640), 20.0),
                                    np.full((480, 640), 20.0)]) + rng.normal(0, 3, (480, 640, 3)), 0, 255
                         ).astype(np.uint8), "quality:uniform"),
])
def test_frames_without_content_are_named(make, reason):
    rng = np.random.default_rng(0)
    assert reasons([make(rng) for _ in range(3)]) == [reason] * 3


def test_heavily_blurred_and_noised_real_frames_are_caught():
    frames = real_frames()[:20]
    rng = np.random.default_rng(1)
    blurred = [cv2.GaussianBlur(frame, (0, 0), 8 * max(frame.shape[:2]) / 256) for frame in frames]
    noised = [np.clip(frame + rng.normal(0, 60, frame.shape), 0, 255).astype(np.uint8) for frame in frames]
    assert reasons(blurred) == ["quality:blur"] * 20
    assert reasons(noised) == ["quality:noise"] * 20


def test_a_frame_saturated_over_most_of_its_area_is_bright_and_a_pale_unsaturated_one_is_not():
    """Saturation counts pixels over 250 in all three channels: a white-out over 60% of a real frame is
    over-exposed though its mean stays far under the mean limit; the same area pale yellow (255, 255, 235:
    luma 252.7, blue under the limit) is bright but not saturated, and must not be called over-exposed."""
    frames = real_frames()[:5]
    white, pale = [], []
    for frame in frames:
        for colour, out in (((255, 255, 255), white), ((255, 255, 235), pale)):
            painted = frame.copy()
            painted[:, : int(0.6 * frame.shape[1])] = colour
            out.append(painted)
    assert reasons(white) == ["quality:bright"] * 5
    assert "quality:bright" not in reasons(pale)
