"""scripts/operating_points.py: a clip's scores through the monitor's own alert rule, as its tables report them."""

import importlib.util
from pathlib import Path

import numpy as np

from pipeline.ood.truth import Truth

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("operating_points", REPO / "scripts" / "operating_points.py")
operating_points = importlib.util.module_from_spec(spec)
spec.loader.exec_module(operating_points)


def test_video_outcome_counts_false_alarms_and_each_segments_delay_at_the_alert_threshold():
    ood = np.zeros(200, dtype=bool)
    ood[50:100] = ood[150:200] = True
    names = ["kvasir"] * 50 + ["capsule"] * 50 + ["kvasir"] * 50 + ["chest-xray"] * 50
    scores = np.full(200, 0.5)
    scores[20:25] = 0.95           # in-distribution frames over the alert threshold: one false alarm
    scores[52:100] = 0.95          # the capsule segment from its third frame: on after 3 of 5, 0.16 s
    scores[150:200] = 0.85         # over the per-frame threshold only: the alert stays off, a miss
    outcome = operating_points.video_outcome(scores, 0.8, 0.9, 3, 5, 10, Truth(ood, names), 25.0)
    assert outcome == "1; capsule 0.16 s, chest-xray missed"
