"""The overlay: one colour code for relevance over the frame in grey, scaled to the size asked for."""

import numpy as np

from pipeline.explain.heatmap import Heatmap
from pipeline.explain.render import overlay


def test_overlay_colours_positive_and_negative_regions():
    frame = np.full((100, 200, 3), 128, np.uint8)
    relevance = np.zeros((224, 224), np.float32)
    relevance[40:80, 20:60] = 1.0          # left: supports
    relevance[40:80, 160:200] = -1.0       # right: contradicts
    heatmap = Heatmap(relevance, (0, 100, 0, 200), 0.0, 0.0, 0.0, np.array([0.5, 0.5]))

    image = overlay(frame, heatmap, max_side=100)

    assert image.shape == (50, 100, 3) and image.dtype == np.uint8
    red, green, blue = (image[13, 18].astype(int)[i] for i in range(3))
    assert red > blue + 100 and green > blue        # yellow/red where positive
    red, green, blue = (image[13, 80].astype(int)[i] for i in range(3))
    assert blue > red + 100                          # blue/cyan where negative
    corner = image[40, 50].astype(int)
    assert corner.max() - corner.min() <= 2          # untouched grey where there is no relevance
