"""scripts/int8_check.py: the paired interval it reports for a difference in validation AUROC."""

import importlib.util
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("int8_check", REPO / "scripts" / "int8_check.py")
int8_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(int8_check)


def test_the_same_scores_differ_by_nothing():
    rng = np.random.default_rng(1)
    ids, outliers = rng.normal(size=50), rng.normal(0.5, 1, size=100)
    assert int8_check.paired_auroc_difference((ids, ids), (outliers, outliers), copies=2) == [0.0, 0.0]


def test_a_forward_that_separates_better_gets_an_interval_above_zero_and_its_twin_below():
    rng = np.random.default_rng(2)
    ids = rng.normal(size=80)
    blurred, sharp = rng.normal(0.3, 1, size=160), rng.normal(3.0, 1, size=160)   # two copies of 80 windows
    low, high = int8_check.paired_auroc_difference((ids, ids), (blurred, sharp), copies=2)
    assert 0 < low < high
    low, high = int8_check.paired_auroc_difference((ids, ids), (sharp, blurred), copies=2)
    assert low < high < 0
