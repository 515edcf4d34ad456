"""The alert rule, one implementation for the live monitor and for offline evaluation of a video.

Per frame, in a stream's frame order:
- input quality: a frame the quality guard (pipeline/ood/quality.py) found unusable is out-of-distribution
  whatever its score, with the guard's reason (`quality:dark`...); it also counts towards the alert;
- threshold: `ood` = score > threshold (a NaN score, from a broken frame or model, counts as
  out-of-distribution; reason `score`). The threshold is set by `threshold_for`: the score that ID_QUANTILE (95%) of the
  in-distribution validation images stay at or below (`nero fit` for the monitor, `nero eval --video`);
- smoothing (optional, config `alert.smoothing`): a causal mean or median of this frame's score and up to
  `window - 1` before it (fewer at the start of a stream: only the frames seen so far), compared with the
  same threshold. docs/RESULTS.md measured it on the demo clip: a median over 13 frames cut NERO's false
  alerts from 10 to 3 per minute (it ignores single-frame spikes, which a mean spreads), a mean over 13
  frames brought relevance-kNN's to 2; it is off by default because that clip is the only video with
  per-frame truth, so the choice is not validated elsewhere;
- hysteresis: the alert switches on once `on_count` of the last `window` frames were over the alert
  threshold, and off again after `off_after` consecutive frames that were not. The alert threshold is the
  operating point: the level that in-distribution video crosses `alert.false_alarms_per_hour` times an
  hour (pipeline/ood/operating_point.py, calibrated by `nero fit --calibration-video`), or the per-frame
  threshold where the artifact has no such calibration. A CUSUM over conformal p-values was tried as well
  (docs/RESULTS.md): at equal false alarms on in-distribution video it alerted no sooner.

`stages.alert.AlertStage` keeps one `AlertRule` per stream; `pipeline.evaluation.video` runs the same rule
over a whole clip's scores.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

ID_QUANTILE = 0.95
SMOOTHING: dict[str, Callable[[Sequence[float]], float] | None] = {
    "none": None, "mean": statistics.fmean, "median": statistics.median}


def threshold_for(id_scores: np.ndarray | Sequence[float]) -> float:
    """The alert threshold: ID_QUANTILE of the in-distribution validation scores stay at or below it."""
    return float(np.quantile(np.asarray(id_scores, dtype=np.float64), ID_QUANTILE))


def over_threshold(score: float, threshold: float) -> bool:
    """score > threshold, with NaN counted as over."""
    return not score <= threshold


def ood_reason(score: float, threshold: float, quality: str | None = None) -> str | None:
    """Why a frame is out-of-distribution: the quality guard's reason, else "score"; None when it is not."""
    return quality or ("score" if over_threshold(score, threshold) else None)


@dataclass(frozen=True, slots=True)
class Decision:
    ood: bool       # this frame is out-of-distribution: unusable input, or its own score over the threshold
    alert: bool     # the alert state after smoothing and hysteresis
    changed: bool   # this frame switched the alert on or off
    reason: str | None = None   # why `ood`: "score", or the quality guard's "quality:..."; None when in distribution


class Smoother:
    """Causal moving mean or median of the last `window` scores ("none": the score itself)."""

    def __init__(self, kind: str = "none", window: int = 13) -> None:
        if kind not in SMOOTHING or window < 1:
            raise ValueError(f"smoothing must be one of {', '.join(SMOOTHING)} with a window >= 1; "
                             f"got {kind!r}, {window}")
        self._reduce = SMOOTHING[kind]
        self._recent: deque[float] = deque(maxlen=window)

    def update(self, score: float) -> float:
        if self._reduce is None:
            return score
        self._recent.append(score)
        return self._reduce(self._recent)


def smooth(scores: np.ndarray, kind: str, window: int) -> np.ndarray:
    """A whole series through one `Smoother`, exactly as the monitor smooths it frame by frame."""
    if kind == "none":
        return scores
    smoother = Smoother(kind, window)
    return np.array([smoother.update(score) for score in scores.tolist()], dtype=np.float64)


class Hysteresis:
    """m-of-n on, quiet-period off."""

    def __init__(self, on_count: int, window: int, off_after: int) -> None:
        if not 1 <= on_count <= window or off_after < 1:
            raise ValueError(f"alert hysteresis needs 1 <= on_count <= window and off_after >= 1; got "
                             f"on_count={on_count}, window={window}, off_after={off_after}")
        self.on_count, self.off_after = on_count, off_after
        self.recent: deque[bool] = deque(maxlen=window)
        self.quiet = 0
        self.alert = False

    def update(self, over: bool) -> bool:
        """Feed one frame's decision; True if the alert state changed."""
        self.recent.append(over)
        self.quiet = 0 if over else self.quiet + 1
        if not self.alert and sum(self.recent) >= self.on_count:
            self.alert = True
            return True
        if self.alert and self.quiet >= self.off_after:
            self.alert = False
            self.recent.clear()  # a fresh start: old frames must not re-trigger it
            return True
        return False


class AlertRule:
    """Threshold, optional smoothing and hysteresis for one stream of scores.

    `alert_threshold` is the level the hysteresis counts frames over: the operating point for a false-alarm
    rate where one is calibrated (pipeline/ood/operating_point.py), else the per-frame `threshold` itself.
    """

    def __init__(self, threshold: float, on_count: int = 3, window: int = 5, off_after: int = 10,
                 smoothing: str = "none", smoothing_window: int = 13, alert_threshold: float | None = None) -> None:
        self.threshold = threshold
        self.alert_threshold = threshold if alert_threshold is None else alert_threshold
        self.smoother = Smoother(smoothing, smoothing_window)
        self.hysteresis = Hysteresis(on_count, window, off_after)

    @property
    def alert(self) -> bool:
        return self.hysteresis.alert

    def update(self, score: float, quality: str | None = None) -> Decision:
        """One frame: its score, and the quality guard's reason when the frame is unusable."""
        smoothed_over = over_threshold(self.smoother.update(score), self.alert_threshold)
        changed = self.hysteresis.update(quality is not None or smoothed_over)
        reason = ood_reason(score, self.threshold, quality)
        return Decision(reason is not None, self.hysteresis.alert, changed, reason)
