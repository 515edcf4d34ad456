"""Alert stage: the raw per-frame decision and a smoothed alert that does not flicker.

Input:  (stream name, NERO score) per frame, in each stream's frame order.
Output: a `Decision` per frame: `ood` = score > threshold (the raw decision, threshold from the artifact; a
        NaN score counts as out-of-distribution);
        `alert` = the smoothed state, switched on once `on_count` of the last `window` frames were `ood`, and
        off again after `off_after` consecutive frames that were not; `changed` is True on the frame that
        switched it.

Each stream has its own history, so streams sharing one monitor never trigger each other.
"""

from __future__ import annotations

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


class AlertStage:
    def __init__(self, threshold: float, on_count: int = 3, window: int = 5, off_after: int = 10) -> None:
        if not 1 <= on_count <= window or off_after < 1:
            raise UserError(f"alert settings need 1 <= on_count <= window and off_after >= 1; got on_count="
                            f"{on_count}, window={window}, off_after={off_after} (config section 'alert')")
        self.threshold = threshold
        self._settings = (on_count, window, off_after)
        self._streams: dict[str, Hysteresis] = {}

    def __call__(self, stream: str, score: float) -> Decision:
        state = self._streams.get(stream)
        if state is None:
            state = self._streams[stream] = Hysteresis(*self._settings)
        ood = not score <= self.threshold   # NaN (a broken frame or model) counts as out-of-distribution
        changed = state.update(ood)
        return Decision(ood, state.alert, changed)

    def is_on(self, stream: str) -> bool:
        state = self._streams.get(stream)
        return state is not None and state.alert
