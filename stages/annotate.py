"""Annotate stage: the input video with each frame's score, threshold and alert state drawn on it.

Input:  per frame, its RGB image, its scoring result (pred, prob, score) and decision (threshold, ood, alert).
Output: an H.264 MP4 (MPEG-4 Part 2 where FFmpeg lacks libx264) at the source's frame rate, one output
        frame per input frame. A score bar shows the score against the threshold (the tick); the frame gets an
        orange marker when it alone is out-of-distribution and a red border while the smoothed alert is on.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from pipeline.errors import UserError

RED, ORANGE, GREEN, WHITE = (230, 40, 40), (255, 150, 0), (40, 200, 80), (255, 255, 255)


def draw(image: np.ndarray, *, pred: str, prob: float, score: float, threshold: float, ood: bool,
         alert: bool) -> np.ndarray:
    """A copy of `image` with the overlay."""
    out = image.copy()
    height, width = out.shape[:2]
    scale = max(0.4, width / 1000)
    band = int(36 * scale) + 8
    out[:band] = (out[:band] * 0.35).astype(np.uint8)
    text = f"score {score:.3g}  thr {threshold:.3g}  {pred} {prob:.2f}"
    cv2.putText(out, text, (8, band - 10), cv2.FONT_HERSHEY_SIMPLEX, scale, WHITE, max(1, int(2 * scale)),
                cv2.LINE_AA)
    # Score bar along the bottom: full width is twice the threshold, the tick marks the threshold.
    bar_h = max(6, int(12 * scale))
    filled = int(width * min(1.0, score / (2 * threshold))) if threshold > 0 else 0
    cv2.rectangle(out, (0, height - bar_h), (filled, height), ORANGE if ood else GREEN, -1)
    cv2.line(out, (width // 2, height - 2 * bar_h), (width // 2, height), WHITE, 2)
    if alert:
        cv2.rectangle(out, (0, 0), (width - 1, height - 1), RED, max(4, int(10 * scale)))
        cv2.putText(out, "OOD ALERT", (8, band + int(40 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 1.4 * scale, RED,
                    max(2, int(3 * scale)), cv2.LINE_AA)
    elif ood:
        cv2.circle(out, (width - band // 2, band // 2), band // 3, ORANGE, -1)
    return out


class Annotator:
    def __init__(self, path: str | Path, fps: float | None) -> None:
        self.path = Path(path)
        self.rate = Fraction(fps or 25.0).limit_denominator(1001)
        self.container: av.container.OutputContainer | None = None
        self.stream = None
        self.count = 0

    def _open(self, width: int, height: int) -> None:
        try:
            self.container = av.open(str(self.path), mode="w")
        except (av.FFmpegError, OSError) as error:
            raise UserError(f"cannot write the annotated video {self.path}: {error}") from None
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self.stream = self.container.add_stream(codec, rate=self.rate)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self.stream.options = {"preset": "veryfast", "crf": "23"}

    def __call__(self, image: np.ndarray, **result) -> None:
        height, width = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2  # 4:2:0 needs even sizes
        if self.container is None:
            self._open(width, height)
        annotated = draw(image[:height, :width], **result)
        if annotated.shape[:2] != (self.stream.height, self.stream.width):  # a stream that changed size
            annotated = cv2.resize(annotated, (self.stream.width, self.stream.height))
        frame = av.VideoFrame.from_ndarray(annotated, format="rgb24")
        frame.pts = self.count
        frame.time_base = 1 / self.rate
        self.container.mux(self.stream.encode(frame))
        self.count += 1

    def close(self) -> None:
        if self.container is not None:
            self.container.mux(self.stream.encode(None))
            self.container.close()
