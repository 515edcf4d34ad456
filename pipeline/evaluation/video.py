"""A clip with per-frame truth, scored by every feature-space detector and alerted on by the monitor's own rule.

Each detector's frame scores go through causal smoothing (`pipeline.ood.alert.smooth`, exactly as the
monitor smooths) and the monitor's alert rule; the threshold is the one `nero fit` would set
(`pipeline.ood.alert.threshold_for` over the in-distribution test images). Reported per setting:
frame-level AUROC, the share of ID / OOD frames over the threshold, false alerts per minute of
in-distribution video, OOD segments missed and the delay to the first alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from pipeline.config import AlertConfig
from pipeline.errors import UserError
from pipeline.media.video import video_info
from pipeline.ood.alert import AlertRule, smooth
from pipeline.ood.truth import AlertOutcome, Truth, truth_path

SMOOTHING = ("none", "mean5", "mean13", "mean25", "median5", "median13", "median25")


def smoothed(scores: np.ndarray, setting: str) -> np.ndarray:
    """The scores under one SMOOTHING setting ("median13": causal median of this frame and the 12 before)."""
    kind = setting.rstrip("0123456789")
    return smooth(scores, kind, int(setting[len(kind):] or 1))


@dataclass
class Video:
    """A clip with per-frame truth, and what each detector made of it (filled in by `evaluate`)."""

    clip: Path
    truth: Truth
    fps: float
    alert: AlertConfig
    scores: dict[str, np.ndarray] = field(default_factory=dict)         # method -> raw frame scores
    thresholds: dict[str, float] = field(default_factory=dict)
    results: dict[str, dict[str, dict]] = field(default_factory=dict)   # method -> smoothing -> metrics

    @classmethod
    def load(cls, clip: Path, alert: AlertConfig) -> Video:
        """The clip and its sidecar CLIP.truth.csv (pipeline.ood.truth)."""
        truth_file = truth_path(clip)
        if not truth_file.is_file():
            raise UserError(f"no per-frame truth for {clip}: expected {truth_file} with a column 'ood'")
        fps = video_info(clip)["fps"] or 25.0
        return cls(clip, Truth.read(truth_file), fps, alert)

    def add(self, method: str, scores: np.ndarray, threshold: float, alert_threshold: float | None = None) -> None:
        """`alert_threshold`: the level the hysteresis counts frames over, where it is not `threshold`."""
        if len(scores) != len(self.truth.ood):
            raise UserError(f"{self.clip} decodes to {len(scores)} frames but its truth file has "
                            f"{len(self.truth.ood)} rows")
        self.scores[method], self.thresholds[method] = scores, threshold
        self.results[method] = {
            setting: video_metrics(smoothed(scores, setting), self.truth, threshold, self.fps, self.alert,
                                   alert_threshold)
            for setting in SMOOTHING}


def video_metrics(scores: np.ndarray, truth: Truth, threshold: float, fps: float,
                  alert: AlertConfig, alert_threshold: float | None = None) -> dict[str, float | None]:
    """Frame-level AUROC and flag rates of (already smoothed) scores, and the alerts the monitor's rule raises."""
    rule = AlertRule(threshold, alert.on_count, alert.window, alert.off_after, alert_threshold=alert_threshold)
    decisions = [rule.update(score) for score in scores.tolist()]
    flagged = np.array([decision.ood for decision in decisions], dtype=bool)
    outcome = AlertOutcome.of(np.array([decision.alert for decision in decisions], dtype=bool), truth, fps)
    ood = truth.ood
    return {
        "auroc": 100.0 * roc_auc_score(ood, scores),
        "id_flagged": 100.0 * float(flagged[~ood].mean()),
        "ood_flagged": 100.0 * float(flagged[ood].mean()),
        "false_alerts_per_min": outcome.false_alarms_per_min,
        "missed_segments": len(outcome.missed),
        "segments": len(outcome.segments),
        "mean_delay_s": outcome.mean_delay_s,
        "delays_s": {f"{segment.name}@{segment.start}": segment.delay_s for segment in outcome.segments},
    }
