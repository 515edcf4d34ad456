"""The metric rules of pipeline/evaluation/metrics.py (the whole run is checked against a direct
computation in tests/pipeline/cli/commands/test_eval.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.evaluation.metrics import ALL, fpr_at_tpr, metrics_by_set, ood_metrics


def test_fpr95_counts_ood_at_or_below_the_id_score_at_index_floor_095n():
    id_scores = np.arange(20.0)                        # floor(0.95 * 20) = 19 -> threshold 19
    assert fpr_at_tpr(id_scores, np.array([18.5, 19.0, 19.5, 30.0])) == 0.5
    assert fpr_at_tpr(np.arange(10.0), np.array([9.0, 9.5])) == 0.5     # floor(9.5) = 9 -> threshold 9


def test_metrics_of_perfect_and_reversed_detectors():
    id_scores, ood_scores = np.array([0.1, 0.2, 0.3]), np.array([0.7, 0.8])
    assert ood_metrics(id_scores, ood_scores) == {"auroc": 100.0, "fpr95": 0.0, "aupr_in": 100.0,
                                                  "aupr_out": 100.0}
    reversed_ = ood_metrics(-id_scores, -ood_scores)
    assert reversed_["auroc"] == 0.0 and reversed_["fpr95"] == 100.0


def test_all_pools_every_ood_set():
    rng = np.random.default_rng(0)
    scores = {"id": rng.normal(size=50), "a": rng.normal(1, size=20), "b": rng.normal(2, size=30)}
    results = metrics_by_set(scores, "id", ["a", "b"])
    truth = np.r_[np.zeros(50), np.ones(50)]
    expected = 100 * roc_auc_score(truth, np.r_[scores["id"], scores["a"], scores["b"]])
    assert list(results) == ["a", "b", ALL] and results[ALL]["auroc"] == pytest.approx(expected)


def test_bootstrap_intervals_hold_the_point_figure_and_widen_for_a_small_set():
    from pipeline.evaluation.metrics import bootstrap_intervals, rank_auroc

    rng = np.random.default_rng(3)
    id_scores, ood_scores = rng.normal(size=300), rng.normal(1.0, size=60)
    ood_scores[:5] = id_scores[:5]                                      # ties count half, as in sklearn
    truth = np.r_[np.zeros(300), np.ones(60)]
    assert rank_auroc(id_scores, ood_scores) == pytest.approx(roc_auc_score(truth, np.r_[id_scores, ood_scores]))
    wide, narrow = bootstrap_intervals(id_scores, ood_scores[:6]), bootstrap_intervals(id_scores, ood_scores)
    point = ood_metrics(id_scores, ood_scores)
    assert narrow["auroc"][0] < point["auroc"] < narrow["auroc"][1]
    assert narrow["fpr95"][0] <= point["fpr95"] <= narrow["fpr95"][1]
    assert wide["auroc"][1] - wide["auroc"][0] > 2 * (narrow["auroc"][1] - narrow["auroc"][0])
