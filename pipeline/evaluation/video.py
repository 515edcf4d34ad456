"""A clip with per-frame truth, scored by every feature-space detector and alerted on by the monitor's own rule.

Each detector's frame scores go through causal smoothing (`pipeline.ood.alert.smooth`, exactly as the
monitor smooths) and the monitor's alert rule; the threshold is the one `nero fit` would set
(`pipeline.ood.alert.threshold_for` over the in-distribution test images). Reported per setting:
frame-level AUROC, the share of ID / OOD frames over the threshold, false alerts per minute of
in-distribution video, OOD segments missed and the delay to the first alert.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from pipeline.config import AlertConfig
from pipeline.errors import UserError
from pipeline.media.video import video_info
from pipeline.ood.alert import AlertRule, smooth

SMOOTHING = ("none", "mean5", "mean13", "mean25", "median5", "median13", "median25")


def smoothed(scores: np.ndarray, setting: str) -> np.ndarray:
    """The scores under one SMOOTHING setting ("median13": causal median of this frame and the 12 before)."""
    kind = setting.rstrip("0123456789")
    return smooth(scores, kind, int(setting[len(kind):] or 1))


@dataclass
class Video:
    """A clip with per-frame truth, and what each detector made of it (filled in by `evaluate`)."""

    clip: Path
    truth: np.ndarray                                   # per frame: True = out-of-distribution
    fps: float
    alert: AlertConfig
    scores: dict[str, np.ndarray] = field(default_factory=dict)         # method -> raw frame scores
    thresholds: dict[str, float] = field(default_factory=dict)
    results: dict[str, dict[str, dict]] = field(default_factory=dict)   # method -> smoothing -> metrics

    @classmethod
    def load(cls, clip: Path, alert: AlertConfig) -> Video:
        """The clip and its sidecar CLIP.truth.csv (one row per frame, column `ood` = 0/1)."""
        truth_file = clip.with_suffix(".truth.csv")
        if not truth_file.is_file():
            raise UserError(f"no per-frame truth for {clip}: expected {truth_file} with a column 'ood'")
        with truth_file.open(newline="") as file:
            rows = list(csv.DictReader(file))
        if not rows or "ood" not in rows[0]:
            raise UserError(f"{truth_file} has no 'ood' column")
        fps = video_info(clip)["fps"] or 25.0
        return cls(clip, np.array([int(row["ood"]) == 1 for row in rows]), fps, alert)

    def add(self, method: str, scores: np.ndarray, threshold: float) -> None:
        if len(scores) != len(self.truth):
            raise UserError(f"{self.clip} decodes to {len(scores)} frames but its truth file has "
                            f"{len(self.truth)} rows")
        self.scores[method], self.thresholds[method] = scores, threshold
        self.results[method] = {
            setting: video_metrics(smoothed(scores, setting), self.truth, threshold, self.fps, self.alert)
            for setting in SMOOTHING}


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of True values, end exclusive."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def video_metrics(scores: np.ndarray, truth: np.ndarray, threshold: float, fps: float,
                  alert: AlertConfig) -> dict[str, float | None]:
    """Frame-level AUROC and flag rates of (already smoothed) scores, and the alerts the monitor's rule raises."""
    rule = AlertRule(threshold, alert.on_count, alert.window, alert.off_after)
    decisions = [rule.update(score) for score in scores.tolist()]
    flagged = np.array([decision.ood for decision in decisions], dtype=bool)
    on = np.array([decision.alert for decision in decisions], dtype=bool)
    onsets = [i for i, decision in enumerate(decisions) if decision.changed and decision.alert]
    delays = [float(np.argmax(on[start:end])) / fps for start, end in runs(truth) if on[start:end].any()]
    segments = len(runs(truth))
    return {
        "auroc": 100.0 * roc_auc_score(truth, scores),
        "id_flagged": 100.0 * float(flagged[~truth].mean()),
        "ood_flagged": 100.0 * float(flagged[truth].mean()),
        "false_alerts_per_min": sum(not truth[i] for i in onsets) / ((~truth).sum() / fps / 60.0),
        "missed_segments": segments - len(delays),
        "segments": segments,
        "mean_delay_s": float(np.mean(delays)) if delays else None,
    }

