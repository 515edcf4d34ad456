"""Pieces of pipeline/evaluation/run.py: the metric rules, the synthetic outliers, the split, the cache, the table.

The end-to-end run and its check against a direct computation are in tests/pipeline/commands/test_eval.py.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from pipeline.config import REPO_ROOT, AlertConfig
from pipeline.evaluation.run import (
    ALL,
    FeatureCache,
    ImageSet,
    fpr_at_tpr,
    held_out_rows,
    jigsaw,
    markdown_table,
    metrics_by_set,
    ood_metrics,
    rotate_channels,
    runs,
    smooth,
    video_metrics,
)
from pipeline.media.images import list_images, read_rgb
from pipeline.model.preprocess import Preprocess

DATA = REPO_ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real test data not found at {DATA}")


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


def test_held_out_rows_are_stratified_seeded_and_leave_every_class_a_row():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 1)
    rows = held_out_rows(labels, 0.2, seed=3)
    assert torch.bincount(labels[rows], minlength=3).tolist() == [2, 1, 0]
    assert torch.equal(rows, held_out_rows(labels, 0.2, seed=3))
    assert not torch.equal(rows, held_out_rows(labels, 0.2, seed=4))


@needs_data
def test_jigsaw_moves_every_tile_and_keeps_the_pixels():
    image = Preprocess(224)([torch.from_numpy(read_rgb(list_images(DATA / "ood" / "natural")[0]))])
    shuffled = jigsaw(image)
    tiles = image.unfold(2, 56, 56).unfold(3, 56, 56).reshape(3, 16, 56, 56)
    moved = shuffled.unfold(2, 56, 56).unfold(3, 56, 56).reshape(3, 16, 56, 56)
    matches = [[torch.equal(moved[:, i], tiles[:, j]) for j in range(16)] for i in range(16)]
    assert all(sum(row) == 1 for row in matches)                     # each tile is one of the originals
    assert not any(matches[i][i] for i in range(16))                  # and none stayed in place
    assert torch.equal(rotate_channels(image)[:, 0], image[:, 1])


@needs_data
def test_cache_serves_a_second_request_without_the_model_and_notices_a_changed_file(tmp_path):
    from pipeline.model.classifier import FeatureClassifier
    from pipeline.model.pretrained import imagenet_efficientnet_lite0

    images = tmp_path / "images"
    images.mkdir()
    for path in list_images(DATA / "ood" / "natural")[:3]:
        (images / path.name).write_bytes(path.read_bytes())
    image_set = ImageSet("natural", list_images(images))
    classifier = FeatureClassifier(imagenet_efficientnet_lite0()).eval()
    forwards = []
    classifier.register_forward_hook(lambda module, args, output: forwards.append(len(args[0])))
    cache = FeatureCache(tmp_path / "cache", classifier, Preprocess(224), "model-key", "cpu")
    features, logits = cache.features(image_set)
    assert features.shape == (3, 1280) and logits.shape == (3, 1000) and sum(forwards) == 3

    torch.testing.assert_close(cache.features(image_set)[0], features)
    assert sum(forwards) == 3                                  # served from the cache
    FeatureCache(tmp_path / "cache", classifier, Preprocess(224), "other-model", "cpu").features(image_set)
    assert sum(forwards) == 6                                  # another model misses it
    os.utime(image_set.paths[0], ns=(0, 0))
    cache.features(image_set)
    assert sum(forwards) == 9                                  # so does a changed image file


def test_markdown_table_bolds_the_best_of_each_column():
    def metrics(auroc, fpr):
        return {"auroc": auroc, "fpr95": fpr, "aupr_in": auroc, "aupr_out": auroc}

    results = {"a": {"x": metrics(90.0, 30.0), ALL: metrics(90.0, 30.0)},
               "b": {"x": metrics(80.0, 20.0), ALL: metrics(80.0, 20.0)}}
    table = markdown_table(results, {"a": {"validation_auroc": 70.0}, "b": {}})
    assert "| a | **90.00** / 30.00 | **90.00** / 30.00 |" in table
    assert "| b | 80.00 / **20.00** | 80.00 / **20.00** |" in table
    assert "| a | **90.00** | 30.00 | **90.00** | **90.00** | 70.00 |" in table


def test_smoothing_is_causal_and_starts_from_the_first_frame():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=40)
    mean5 = smooth(scores, "mean5")
    assert mean5[0] == scores[0] and mean5[10] == pytest.approx(scores[6:11].mean())
    assert smooth(scores, "median5")[10] == np.median(scores[6:11])
    changed = scores.copy()
    changed[30:] += 100                                      # the future must not move the past
    np.testing.assert_array_equal(smooth(changed, "median13")[:30], smooth(scores, "median13")[:30])
    assert smooth(scores, "none") is scores


def test_runs_of_true():
    assert runs(np.array([0, 1, 1, 0, 0, 1, 0, 1], dtype=bool)) == [(1, 3), (5, 6), (7, 8)]


def test_video_metrics_count_alerts_through_the_monitor_hysteresis():
    fps = 10.0
    truth = np.zeros(1200, dtype=bool)                      # 2 minutes, two OOD segments
    truth[300:340] = truth[900:950] = True
    scores = np.zeros(1200)
    scores[310:340] = 1.0                                    # first segment: flagged from its 11th frame
    scores[600:603] = 1.0                                    # a 3-frame blip on in-distribution video
    metrics = video_metrics(scores, truth, 0.5, fps, AlertConfig(on_count=3, window=5, off_after=10))
    assert metrics["missed_segments"] == 1 and metrics["segments"] == 2
    assert metrics["mean_delay_s"] == pytest.approx(1.2)         # frames 310..312 switch it on at 312
    assert metrics["false_alerts_per_min"] == pytest.approx(1 / (1110 / fps / 60))
    assert metrics["ood_flagged"] == pytest.approx(100 * 30 / 90)
    assert metrics["id_flagged"] == pytest.approx(100 * 3 / 1110)
