"""Drawing relevance for people: one colour code (positive red -> yellow, negative blue -> cyan over the
frame in grey), used by the heatmap PNGs, the figures' colour bar, the live explain messages and the report."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from matplotlib.colors import ListedColormap

from pipeline.explain.heatmap import Heatmap

# Overlay colours (RGB) at weak and full strength: tissue is red, so positive relevance runs red -> yellow
# over a grey copy of the frame, negative blue -> cyan.
POSITIVE = (np.array([200, 0, 0], np.float32), np.array([255, 235, 0], np.float32))
NEGATIVE = (np.array([0, 40, 200], np.float32), np.array([0, 220, 255], np.float32))


def tint(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(RGB colour, opacity) for scaled relevance in [-1, 1] (shape ... x 1): the overlay's colour code."""
    strength = np.abs(value)
    low = np.where(value >= 0, POSITIVE[0], NEGATIVE[0])
    high = np.where(value >= 0, POSITIVE[1], NEGATIVE[1])
    return low + (high - low) * strength, 0.9 * strength


def relevance_colormap() -> ListedColormap:
    """The overlay's colours over mid-grey, from -1 (blue/cyan) through 0 (grey) to +1 (red/yellow)."""
    colour, alpha = tint(np.linspace(-1, 1, 257)[:, None])
    return ListedColormap((128 * (1 - alpha) + colour * alpha) / 255.0)


def scaled_relevance(heatmap: Heatmap, shape: tuple[int, ...]) -> np.ndarray:
    """The heatmap in frame coordinates (H x W), in [-1, 1], 0 outside the region the model saw.

    Scaled by the 99.5th percentile of |relevance| so that one hot pixel cannot wash out the rest; a light
    blur (about 1% of the width) turns LRP's pixel speckle into readable regions.
    """
    top, bottom, left, right = heatmap.box
    region = cv2.resize(heatmap.relevance, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR)
    region = cv2.GaussianBlur(region, (0, 0), max(1.0, 0.01 * region.shape[1]))
    scale = float(np.percentile(np.abs(region), 99.5)) or 1.0
    value = np.zeros(shape[:2], np.float32)
    value[top:bottom, left:right] = np.clip(region / scale, -1.0, 1.0)
    return value


def overlay(frame: np.ndarray, heatmap: Heatmap, max_side: int | None = None) -> np.ndarray:
    """The frame in grey with the heatmap blended in (colours: POSITIVE, NEGATIVE), at most `max_side` px."""
    if max_side and max(frame.shape[:2]) > max_side:
        factor = max_side / max(frame.shape[:2])
        size = (round(frame.shape[1] * factor), round(frame.shape[0] * factor))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        top, bottom, left, right = heatmap.box
        box = (round(top * factor), round(bottom * factor), round(left * factor), round(right * factor))
        heatmap = dataclasses.replace(heatmap, box=box)
    colour, alpha = tint(scaled_relevance(heatmap, frame.shape)[..., None])
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)[..., None] * 0.75 + 30
    return (grey * (1 - alpha) + colour * alpha).round().astype(np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 image."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()
