"""Metrics: per-stage spans add up, percentiles are numpy's, the first and last frames are left out."""

import numpy as np
import pytest

from pipeline.stream.metrics import STAGES, Metrics, format_summary, latency_stats


def record(metrics: Metrics, start: float, queue: float, batch: float, infer: float, handoff: float,
           publish: float) -> None:
    t = [start]
    for span in (queue, batch, infer, handoff, publish):
        t.append(t[-1] + span)
    metrics.record(*t)


def test_spans_and_end_to_end():
    metrics = Metrics(skip=0)
    record(metrics, 100.0, 0.001, 0.002, 0.010, 0.0005, 0.0015)
    latency = metrics.summary()["latency_ms"]
    assert {stage: latency[stage]["max"] for stage in STAGES} == pytest.approx(
        {"queue": 1.0, "batch": 2.0, "infer": 10.0, "handoff": 0.5, "publish": 1.5, "end_to_end": 15.0})


def test_statistics_match_numpy_and_skip_the_ends():
    rng = np.random.default_rng(0)
    e2e = rng.gamma(2.0, 0.01, size=500)
    e2e[:10] = 5.0      # start-up outliers
    e2e[-10:] = 7.0     # the last, partial batch
    metrics = Metrics()
    for i, seconds in enumerate(e2e):
        record(metrics, i * 0.04, seconds, 0, 0, 0, 0)
    summary = metrics.summary()
    kept = e2e[10:-10] * 1000
    stats = summary["latency_ms"]["end_to_end"]
    assert summary["latency_frames"] == 480
    assert stats["max"] == pytest.approx(kept.max(), abs=1e-3)
    assert stats["p99.9"] == pytest.approx(np.percentile(kept, 99.9), abs=1e-3)
    assert stats["p50"] == pytest.approx(np.median(kept), abs=1e-3)
    assert stats["avg"] == pytest.approx(kept.mean(), abs=1e-3)
    # throughput over all frames: first decode to last publish
    assert summary["frames"] == 500
    assert summary["fps"] == pytest.approx(500 / (499 * 0.04 + 7.0), rel=1e-3)


def test_window_since_a_mark_and_short_runs():
    metrics = Metrics()
    for i in range(30):
        record(metrics, float(i), 0.001 * (i + 1), 0, 0, 0, 0)
    window = metrics.summary(start=25, skip=0)
    assert window["frames"] == 5 and window["latency_ms"]["queue"]["max"] == pytest.approx(30.0)
    assert metrics.summary(start=10)["latency_frames"] == 20   # 20 frames: too few to leave out 2 x 10
    assert latency_stats(np.array([])) == {}


def test_queue_depths_and_readable_summary():
    metrics = Metrics(skip=0)
    for depth in (0, 4, 8):
        metrics.record_depth("frames", depth)
    record(metrics, 0.0, 0.001, 0.001, 0.001, 0.001, 0.001)
    summary = metrics.summary()
    assert summary["queue_depth"] == {"frames": {"avg": 4.0, "max": 8}}
    text = format_summary(summary)
    assert "1 frames" in text and "end_to_end" in text and "p99.9" in text and "frames avg 4.0 max 8" in text
    assert Metrics().summary()["fps"] is None
