"""Preview stage: a small JPEG of what the model sees, for a display's live picture (`publish.preview_fps`).

Input:  a stream's latest RGB frame and the seq of its frame message.
Output: [topic, header, JPEG] on preview.<stream> (pipeline.messages.preview_parts), `width` pixels wide.

`Throttle` says when a stream is due for its next picture, so that the publish thread hands over at most
`fps` frames a second per stream; the encoding itself (~1 ms for 320 px) runs wherever the runner puts it.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.media.images import encode_jpeg
from pipeline.messages import preview_parts

QUALITY = 75


class Throttle:
    """At most `fps` events a second per key."""

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"preview fps must be > 0, got {fps}")
        self.period = 1.0 / fps
        self.next_due: dict[str, float] = {}

    def due(self, key: str, now: float) -> bool:
        if now < self.next_due.get(key, 0.0):
            return False
        self.next_due[key] = now + self.period
        return True


def preview(stream: str, seq: int, image: np.ndarray, width: int) -> list[bytes]:
    """The preview message of one frame, scaled to `width` (never up)."""
    height, full_width = image.shape[:2]
    if full_width > width:
        height = max(1, round(height * width / full_width))
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return preview_parts(stream, seq, image.shape[1], image.shape[0], encode_jpeg(image, QUALITY))
