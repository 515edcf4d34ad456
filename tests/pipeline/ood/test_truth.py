"""Alerts against ground truth: the definitions of false alarm, delay and miss that every report uses."""

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.ood.truth import AlertOutcome, Truth, runs


def test_runs_of_true():
    assert runs(np.array([0, 1, 1, 0, 0, 1, 0, 1], dtype=bool)) == [(1, 3), (5, 6), (7, 8)]


def test_delay_false_alarms_and_misses():
    ood = np.zeros(600, dtype=bool)
    ood[100:150] = ood[300:350] = ood[500:550] = True
    names = ["kvasir"] * 600
    names[100:150] = ["laparoscopic"] * 50
    alert = np.zeros(600, dtype=bool)
    alert[110:160] = True          # second 10 of the first segment on, carried 10 frames past its end
    alert[200:205] = True          # a false alarm on in-distribution video
    alert[299:360] = True          # on one frame before the second segment: a false alarm, then delay 0
    outcome = AlertOutcome.of(alert, Truth(ood, names), fps=25.0)
    assert [segment.delay_s for segment in outcome.segments] == [pytest.approx(0.4), 0.0, None]
    assert outcome.segments[0].name == "laparoscopic" and [s.start for s in outcome.missed] == [500]
    assert outcome.false_alarms == [200, 299]
    assert outcome.carried == 10   # 150-159; the frames after 350 belong to the false alarm raised at 299
    assert outcome.false_alarms_per_min == pytest.approx(2 / (450 / 25 / 60))
    assert outcome.mean_delay_s == pytest.approx(0.2)


def test_truth_file_reads_and_refuses_clearly(tmp_path):
    good = tmp_path / "clip.truth.csv"
    good.write_text("frame,segment,ood\n0,kvasir,0\n1,capsule,1\n2,,1\n")
    truth = Truth.read(good)
    assert truth.ood.tolist() == [False, True, True] and truth.segments == ["kvasir", "capsule", "ood"]
    bad = tmp_path / "bad.truth.csv"
    bad.write_text("frame,label\n0,1\n")
    with pytest.raises(UserError, match="no 'ood' column"):
        Truth.read(bad)
    bad.write_text("frame,ood\n0,yes\n")
    with pytest.raises(UserError, match="must hold 0 or 1"):
        Truth.read(bad)
    with pytest.raises(UserError, match="different number"):
        AlertOutcome.of(np.zeros(2, dtype=bool), truth, 25.0)
