"""Alert stage: the per-frame decision and the alert that does not flicker, for every stream.

Input:  (stream name, score, quality guard's reason or None) per frame, in each stream's frame order.
Output: a `Decision` per frame (`ood`: this frame over the threshold; `alert`: the state after smoothing and
        hysteresis; `changed`: this frame switched it), by the one rule in `pipeline.ood.alert`.

Each stream has its own `AlertRule`, so streams sharing one monitor never trigger each other.
"""

from __future__ import annotations

from pipeline.ood.alert import AlertRule, Decision


class AlertStage:
    def __init__(self, threshold: float, on_count: int = 3, window: int = 5, off_after: int = 10,
                 smoothing: str = "none", smoothing_window: int = 13) -> None:
        self.settings = dict(threshold=threshold, on_count=on_count, window=window, off_after=off_after,
                             smoothing=smoothing, smoothing_window=smoothing_window)
        AlertRule(**self.settings)   # bad settings fail here, before the first frame
        self._streams: dict[str, AlertRule] = {}

    def __call__(self, stream: str, score: float, quality: str | None = None) -> Decision:
        rule = self._streams.get(stream)
        if rule is None:
            rule = self._streams[stream] = AlertRule(**self.settings)
        return rule.update(score, quality)

    def is_on(self, stream: str) -> bool:
        rule = self._streams.get(stream)
        return rule is not None and rule.alert
