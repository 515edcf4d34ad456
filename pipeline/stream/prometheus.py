"""`/metrics` for operations (`nero live --metrics-port PORT`): Prometheus text format, loopback only.

Per stream: frames published, frames out of distribution, alerts switched on, frames dropped, the frame
queue's depth, and a histogram of the end-to-end latency (decoded -> published); the result queue's depth
for the run. Counters are updated by the publish thread (a lock and an add, ~1 us a frame); drops and queue
depths are read from the queues when Prometheus scrapes, so nothing is counted twice. prometheus-client serves
them from a thread of its own, on its own registry (a second run in the same process gets fresh figures).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Seconds; a live monitor on the 2-core CPU machine runs at p50 ~0.1-0.2 s (docs/PERFORMANCE.md), the GPU path
# in milliseconds, and anything past a few seconds is a stall.
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class _QueueCollector(Collector):
    """Drops and queue depths, read from the runner's queues at scrape time."""

    def __init__(self, streams: list[str], read: Callable[[], tuple[dict[str, int], dict[str, int], int]]) -> None:
        self.streams, self.read = streams, read

    def collect(self) -> Iterator[Metric]:
        drops, depths, results = self.read()
        dropped = CounterMetricFamily("nero_dropped_frames", "frames dropped before scoring (live: the model "
                                      "fell behind)", labels=["stream"])
        queued = GaugeMetricFamily("nero_frame_queue_depth", "frames waiting to be scored", labels=["stream"])
        for stream in self.streams:
            dropped.add_metric([stream], drops.get(stream, 0))
            queued.add_metric([stream], depths.get(stream, 0))
        yield dropped
        yield queued
        yield GaugeMetricFamily("nero_result_queue_depth", "scored batches waiting to be published", value=results)


class Exporter:
    def __init__(self, port: int, streams: list[str], host: str = "127.0.0.1") -> None:
        self.registry = CollectorRegistry()
        self.frames = Counter("nero_frames", "frames scored and published", ["stream"], registry=self.registry)
        self.ood = Counter("nero_ood_frames", "frames out of distribution (score or input quality)", ["stream"],
                           registry=self.registry)
        self.alerts = Counter("nero_alerts", "alerts switched on", ["stream"], registry=self.registry)
        self.latency = Histogram("nero_end_to_end_latency_seconds", "decoded -> message published", ["stream"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.streams = streams
        for stream in streams:   # every stream shows from the first scrape, at 0
            for family in (self.frames, self.ood, self.alerts, self.latency):
                family.labels(stream)
        self.server, self.thread = start_http_server(port, addr=host, registry=self.registry)

    @property
    def port(self) -> int:
        return self.server.server_port

    def watch_queues(self, read: Callable[[], tuple[dict[str, int], dict[str, int], int]]) -> None:
        """`read()` -> (drops per stream, frames queued per stream, result batches queued)."""
        self.registry.register(_QueueCollector(self.streams, read))

    def record(self, stream: str, latency_s: float, ood: bool, alert_switched_on: bool) -> None:
        self.frames.labels(stream).inc()
        self.latency.labels(stream).observe(latency_s)
        if ood:
            self.ood.labels(stream).inc()
        if alert_switched_on:
            self.alerts.labels(stream).inc()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
