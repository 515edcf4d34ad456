"""What a run reports when it ends: per-stream counts, errors, heatmap counts and the latency figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.stream.metrics import format_summary


@dataclass
class RunReport:
    frames: dict[str, int]
    alerts: dict[str, int]
    drops: dict[str, int]
    errors: list[str]
    unsent: int
    metrics: dict[str, Any]
    explain: dict[str, Any] | None = None   # the heatmap worker's WorkerStats, when heatmaps were on
    ignored_subscriptions: int = 0           # to topics the run does not publish (a flood, or a typo)

    def as_dict(self) -> dict[str, Any]:
        """Per-stream counts, errors, heatmap counts, then the figures over all streams: --metrics-json."""
        streams = {name: {"frames": count, "alerts": self.alerts.get(name, 0),
                          "drops": self.drops.get(name, 0)} for name, count in self.frames.items()}
        explain = {"explain": self.explain} if self.explain is not None else {}
        return {"streams": streams, "errors": self.errors, "unsent": self.unsent,
                "ignored_subscriptions": self.ignored_subscriptions, **explain, **self.metrics}

    def format(self) -> str:
        streams = ", ".join(f"{name}: {count} frames, {self.alerts.get(name, 0)} alerts, "
                            f"{self.drops.get(name, 0)} dropped" for name, count in self.frames.items())
        lines = [f"streams: {streams or 'none'}", format_summary(self.metrics)]
        if self.explain is not None:
            stats = self.explain
            lines.append(f"heatmaps: {stats['submitted']} queued, {stats['dropped']} dropped (worker busy), "
                         f"{stats['done']} published, {stats['failed']} failed"
                         + (f"; last error: {stats['last_error']}" if stats["last_error"] else ""))
        if self.ignored_subscriptions:
            lines.append(f"{self.ignored_subscriptions} subscriptions ignored: their topics match nothing this "
                         "monitor publishes")
        if self.unsent:
            lines.append(f"{self.unsent} messages not sent: a subscriber stopped reading during shutdown")
        return "\n".join(lines)
