"""Alert stage: the per-frame decision and the alert that does not flicker, for every stream.

Input:  (stream name, score, quality guard's reason or None) per frame, in each stream's frame order.
Output: a `Decision` per frame (`ood`: this frame is out-of-distribution; `alert`: the state after the temporal
        rule; `changed`: this frame switched it), by the one rule in `pipeline.ood.alert`.

Each stream has its own `AlertRule`, made by `new_rule`, so streams sharing one monitor never trigger each
other.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.ood.alert import AlertRule, Decision


class AlertStage:
    def __init__(self, new_rule: Callable[[], AlertRule]) -> None:
        self.new_rule = new_rule
        new_rule()   # bad settings fail here, before the first frame
        self._streams: dict[str, AlertRule] = {}

    def __call__(self, stream: str, score: float, quality: str | None = None) -> Decision:
        rule = self._streams.get(stream)
        if rule is None:
            rule = self._streams[stream] = self.new_rule()
        return rule.update(score, quality)

    def is_on(self, stream: str) -> bool:
        rule = self._streams.get(stream)
        return rule is not None and rule.alert
