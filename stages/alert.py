"""Alert stage: the raw per-frame decision and a smoothed alert that does not flicker.

Input:  (stream name, score) per frame, in each stream's frame order.
Output: a `Decision` per frame: `ood` = score > threshold (the raw decision, threshold from the artifact; a
        NaN score counts as out-of-distribution);
        `alert` = the smoothed state, switched on once `on_count` of the last `window` frames were over the
        threshold, and off again after `off_after` consecutive frames that were not; `changed` is True on the
        frame that switched it.

Optionally (config `alert.smoothing`) the alert looks at a causal moving mean or median of the last
`smoothing_window` scores instead of each raw score. docs/RESULTS.md measured it on the demo clip: a median
over 13 frames cut NERO's false alerts from 10 to 3 per minute (it ignores single-frame spikes, which a mean
spreads), a mean over 13 frames brought relevance-kNN's to 2; it is off by default because that clip is the
only video with per-frame truth, so the choice is not validated elsewhere.

Each stream has its own history, so streams sharing one monitor never trigger each other.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

from pipeline.errors import UserError


@dataclass(frozen=True, slots=True)
class Decision:
    ood: bool
    alert: bool
    changed: bool


class Hysteresis:
    """m-of-n on, quiet-period off, for one stream."""

    def __init__(self, on_count: int, window: int, off_after: int) -> None:
        self.on_count, self.off_after = on_count, off_after
        self.recent: deque[bool] = deque(maxlen=window)
        self.quiet = 0
        self.alert = False

    def update(self, ood: bool) -> bool:
        """Feed one frame's raw decision; True if the alert state changed."""
        self.recent.append(ood)
        self.quiet = 0 if ood else self.quiet + 1
        if not self.alert and sum(self.recent) >= self.on_count:
            self.alert = True
            return True
        if self.alert and self.quiet >= self.off_after:
            self.alert = False
            self.recent.clear()  # a fresh start: old frames must not re-trigger it
            return True
        return False


SMOOTHING = {"none": None, "mean": statistics.fmean, "median": statistics.median}


class AlertStage:
    def __init__(self, threshold: float, on_count: int = 3, window: int = 5, off_after: int = 10,
                 smoothing: str = "none", smoothing_window: int = 13) -> None:
        if not 1 <= on_count <= window or off_after < 1:
            raise UserError(f"alert settings need 1 <= on_count <= window and off_after >= 1; got on_count="
                            f"{on_count}, window={window}, off_after={off_after} (config section 'alert')")
        if smoothing not in SMOOTHING or smoothing_window < 1:
            raise UserError(f"config key 'alert.smoothing' must be one of {', '.join(SMOOTHING)} with "
                            f"alert.smoothing_window >= 1; got {smoothing!r}, {smoothing_window}")
        self.threshold = threshold
        self._settings = (on_count, window, off_after)
        self._smooth = SMOOTHING[smoothing]
        self._smoothing_window = smoothing_window
        self._streams: dict[str, Hysteresis] = {}
        self._scores: dict[str, deque[float]] = {}

    def __call__(self, stream: str, score: float) -> Decision:
        state = self._streams.get(stream)
        if state is None:
            state = self._streams[stream] = Hysteresis(*self._settings)
            self._scores[stream] = deque(maxlen=self._smoothing_window)
        ood = not score <= self.threshold   # NaN (a broken frame or model) counts as out-of-distribution
        over = ood
        if self._smooth is not None:
            self._scores[stream].append(score)
            over = not self._smooth(self._scores[stream]) <= self.threshold
        changed = state.update(over)
        return Decision(ood, state.alert, changed)

    def is_on(self, stream: str) -> bool:
        state = self._streams.get(stream)
        return state is not None and state.alert
