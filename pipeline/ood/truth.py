"""Alerts against per-frame ground truth: false alarms, detection delay and missed segments, one implementation
for `nero eval --video`, the replay report and the demo's segment summary.

Truth comes in a sidecar CLIP.truth.csv, one row per frame in decode order: column `ood` (0/1), optionally
`segment` (a name per stretch, e.g. kvasir | laparoscopic). Definitions:
- an OOD segment is a maximal run of ood = 1 frames; its delay is the time from its first frame to the
  first frame with the alert on inside it (an alert already on when it starts counts as delay 0); a segment
  without any such frame is missed;
- a false alarm is an alert turning on (off -> on) at an in-distribution frame; the rate is per minute of
  in-distribution video (ID frames / fps);
- an in-distribution frame under an alert that turned on in an OOD segment is carried, not a false alarm: the
  alert's off-delay (`alert.off_after` frames) after the segment ends.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import UserError


def truth_path(clip: Path) -> Path:
    return clip.with_suffix(".truth.csv")


@dataclass
class Truth:
    ood: np.ndarray           # per frame: True = out-of-distribution
    segments: list[str]       # per frame: its segment's name ("ood" / "id" when the file has none)

    @classmethod
    def read(cls, path: Path) -> Truth:
        try:
            with path.open(newline="") as file:
                rows = list(csv.DictReader(file))
        except OSError as error:
            raise UserError(f"cannot read the truth file {path}: {error.strerror}") from None
        if not rows or "ood" not in rows[0]:
            raise UserError(f"{path} has no 'ood' column (one row per frame, ood = 0/1)")
        try:
            ood = np.array([int(row["ood"]) == 1 for row in rows])
        except ValueError:
            raise UserError(f"{path}: column 'ood' must hold 0 or 1") from None
        names = [row.get("segment") or ("ood" if flag else "id") for row, flag in zip(rows, ood, strict=True)]
        return cls(ood, names)

    def at(self, frames: list[int]) -> Truth:
        """The truth of these frames only (a run's scored frames, in order)."""
        if frames and max(frames) >= len(self.ood):
            raise UserError(f"frame {max(frames)} was scored but the truth has only {len(self.ood)} rows: "
                            "is it the truth of this video?")
        return Truth(self.ood[frames], [self.segments[frame] for frame in frames])


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of True values, end exclusive."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


@dataclass
class Segment:
    name: str
    start: int                 # first frame
    end: int                   # one past the last
    delay_s: float | None      # None: missed


@dataclass
class AlertOutcome:
    """How an alert series (one bool per frame, the alert state) fared against the truth."""

    segments: list[Segment]
    false_alarms: list[int]            # frames where the alert turned on in in-distribution video
    id_minutes: float
    carried: int                       # in-distribution frames an alert raised on an OOD segment still covers

    @classmethod
    def of(cls, alert: np.ndarray, truth: Truth, fps: float) -> AlertOutcome:
        if len(alert) != len(truth.ood):
            raise UserError(f"{len(alert)} frames scored but the truth has {len(truth.ood)} rows: a different number")
        alert = np.asarray(alert, dtype=bool)
        segments = [Segment(truth.segments[start], start, end,
                            float(np.argmax(alert[start:end])) / fps if alert[start:end].any() else None)
                    for start, end in runs(truth.ood)]
        onsets = np.flatnonzero(alert & ~np.r_[False, alert[:-1]])
        raised_on_ood = np.zeros(len(alert), dtype=bool)    # per frame: its alert interval began on an OOD frame
        for start, end in runs(alert):
            raised_on_ood[start:end] = truth.ood[start]
        return cls(segments, [int(i) for i in onsets if not truth.ood[i]], float((~truth.ood).sum()) / fps / 60.0,
                   int((alert & ~truth.ood & raised_on_ood).sum()))

    @property
    def missed(self) -> list[Segment]:
        return [segment for segment in self.segments if segment.delay_s is None]

    @property
    def false_alarms_per_min(self) -> float:
        return len(self.false_alarms) / self.id_minutes if self.id_minutes > 0 else 0.0

    @property
    def mean_delay_s(self) -> float | None:
        delays = [segment.delay_s for segment in self.segments if segment.delay_s is not None]
        return float(np.mean(delays)) if delays else None
