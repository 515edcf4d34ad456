"""Pace stage: hold frames back until their presentation time comes (replay --realtime, live from a file).

Input:  each frame's presentation time (seconds), in order.
Output: returns once that time has come on the wall clock, measured from the first frame. A jump of more
        than a second ahead in the timestamps (a new segment, a reopened stream) restarts the clock there
        instead of waiting it out.

The wait itself is the caller's `wait(seconds)` (the runner passes its stop event's wait, so a stop ends
a pause at once); the stage owns no thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    def __init__(self, wait: Callable[[float], object]) -> None:
        self._wait = wait
        self.origin: float | None = None

    def __call__(self, pts: float) -> None:
        now = time.perf_counter()
        if self.origin is None or self.origin + pts - now > 1.0:  # first frame, or a jump in the timestamps
            self.origin = now - pts
        delay = self.origin + pts - now
        if delay > 0:
            self._wait(delay)
