"""Latency, throughput and queue-depth figures for a streaming run (the frame queue counts the drops).

Per frame, five consecutive spans and their sum, all from time.perf_counter():

    queue      decoded -> taken from the frame queue by the batcher
    batch      taken -> its batch dispatched (waiting for the batch to fill, at most max_wait_ms)
    infer      dispatched -> scored (upload, preprocess, forward, NERO, explanations; shared by the batch)
    handoff    scored -> picked up by the publish thread
    publish    picked up -> its message sent (alert, JSON, audit line, ZeroMQ, annotation; frames of a batch
               are published one after the other, so later frames of a batch include the earlier ones)
    end_to_end decoded -> message published

Statistics are avg, p50, p90, p99, p99.9 and max in milliseconds over the recorded frames, leaving out the
first and last `skip` (10) frames, where start-up (lazy initialisation, the first batches) and the final
partial batch would distort them. Queue depths are sampled as batches leave the queues (frames: when a batch
is dispatched; results: when the publish thread takes one). Samples are kept as 8-byte floats: about 50 MB
for ten hours of one 25 fps stream.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np

STAGES = ("queue", "batch", "infer", "handoff", "publish", "end_to_end")
STATISTICS = ("avg", "p50", "p90", "p99", "p99.9", "max")
SKIP = 10


def latency_stats(seconds: np.ndarray) -> dict[str, float]:
    """The statistics of a latency sample, in milliseconds."""
    if len(seconds) == 0:
        return {}
    ms = seconds * 1000.0
    p50, p90, p99, p999 = np.percentile(ms, [50, 90, 99, 99.9])
    values = (ms.mean(), p50, p90, p99, p999, ms.max())
    return {name: round(float(value), 3) for name, value in zip(STATISTICS, values, strict=True)}


class Metrics:
    def __init__(self, skip: int = SKIP) -> None:
        self.skip = skip
        self.samples = {stage: array("d") for stage in STAGES}
        self.depths: dict[str, array] = {}
        self.decoded = array("d")     # when each recorded frame was decoded, for the throughput
        self.published = array("d")   # ... and published

    def __len__(self) -> int:
        return len(self.published)

    def record(self, t_decoded: float, t_dequeued: float, t_dispatched: float, t_scored: float,
               t_picked: float, t_published: float) -> None:
        """One published frame's timestamps."""
        spans = (t_dequeued - t_decoded, t_dispatched - t_dequeued, t_scored - t_dispatched,
                 t_picked - t_scored, t_published - t_picked, t_published - t_decoded)
        for stage, span in zip(STAGES, spans, strict=True):
            self.samples[stage].append(span)
        self.decoded.append(t_decoded)
        self.published.append(t_published)

    def record_depth(self, queue: str, depth: int) -> None:
        self.depths.setdefault(queue, array("d")).append(depth)

    def summary(self, start: int = 0, skip: int | None = None) -> dict[str, Any]:
        """Figures over the frames recorded from index `start` on (a periodic report passes its last end)."""
        skip = self.skip if skip is None else skip
        end = len(self)
        frames = end - start
        lo, hi = (start + skip, end - skip) if frames > 2 * skip else (start, end)
        latency = {stage: latency_stats(np.frombuffer(self.samples[stage], dtype=np.float64)[lo:hi])
                   for stage in STAGES}
        elapsed = self.published[end - 1] - self.decoded[start] if frames else 0.0
        return {
            "frames": frames,
            "seconds": round(elapsed, 3),
            "fps": round(frames / elapsed, 2) if elapsed > 0 else None,
            "latency_ms": latency,
            "latency_frames": hi - lo,
            "queue_depth": {name: {"avg": round(float(np.mean(values)), 2), "max": int(max(values))}
                            for name, values in self.depths.items() if values},
        }


def format_summary(summary: dict[str, Any]) -> str:
    """A few readable lines: throughput, then one line per stage."""
    lines = [f"{summary['frames']} frames in {summary['seconds']:.1f} s = {summary['fps'] or 0:.1f} fps"]
    lines.append(f"latency (ms, {summary['latency_frames']} frames)"
                 + "".join(f"{name:>9}" for name in STATISTICS))
    for stage, stats in summary["latency_ms"].items():
        if stats:
            lines.append(f"  {stage:<30}" + "".join(f"{stats[name]:9.2f}" for name in STATISTICS))
    depths = ", ".join(f"{name} avg {depth['avg']:.1f} max {depth['max']}"
                       for name, depth in summary["queue_depth"].items())
    if depths:
        lines.append(f"queue depth: {depths}")
    return "\n".join(lines)
