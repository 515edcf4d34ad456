"""nero-monitor: real-time out-of-distribution monitoring of endoscopy video with NERO.

`from pipeline import AlertSubscriber` needs only pyzmq (a display reads JSON, it needs no model); the
scoring API (`NeroScorer`, `NeroTerms`, `relevance`) loads torch on first use.
"""

from __future__ import annotations

from typing import Any

from pipeline.client import AlertSubscriber

__all__ = ["AlertSubscriber", "NeroScorer", "NeroTerms", "relevance"]
_SCORING = ("NeroScorer", "NeroTerms", "relevance")


def __getattr__(name: str) -> Any:
    if name in _SCORING:
        from pipeline.ood import nero

        return getattr(nero, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
