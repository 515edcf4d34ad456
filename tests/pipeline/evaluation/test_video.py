"""A clip with per-frame truth: smoothing, segments, and alerts through the monitor's own rule."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import AlertConfig
from pipeline.evaluation.video import smoothed, video_metrics
from pipeline.ood.truth import Truth


def test_smoothing_is_causal_and_uses_only_the_frames_seen_so_far():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=40)
    mean5 = smoothed(scores, "mean5")
    assert mean5[0] == scores[0] and mean5[2] == pytest.approx(scores[:3].mean())   # the stream's start
    assert mean5[10] == pytest.approx(scores[6:11].mean())
    assert smoothed(scores, "median5")[10] == np.median(scores[6:11])
    changed = scores.copy()
    changed[30:] += 100                                      # the future must not move the past
    np.testing.assert_array_equal(smoothed(changed, "median13")[:30], smoothed(scores, "median13")[:30])
    assert smoothed(scores, "none") is scores


def test_video_metrics_count_alerts_through_the_monitor_hysteresis():
    fps = 10.0
    truth = np.zeros(1200, dtype=bool)                      # 2 minutes, two OOD segments
    truth[300:340] = truth[900:950] = True
    scores = np.zeros(1200)
    scores[310:340] = 1.0                                    # first segment: flagged from its 11th frame
    scores[600:603] = 1.0                                    # a 3-frame blip on in-distribution video
    metrics = video_metrics(scores, Truth(truth, ["x"] * len(truth)), 0.5, fps,
                            AlertConfig(on_count=3, window=5, off_after=10))
    assert metrics["missed_segments"] == 1 and metrics["segments"] == 2
    assert metrics["mean_delay_s"] == pytest.approx(1.2)         # frames 310..312 switch it on at 312
    assert metrics["false_alerts_per_min"] == pytest.approx(1 / (1110 / fps / 60))
    assert metrics["ood_flagged"] == pytest.approx(100 * 30 / 90)
    assert metrics["id_flagged"] == pytest.approx(100 * 3 / 1110)
