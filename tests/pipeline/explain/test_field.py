"""The per-frame `explain` field: it explains the score that alerts, is JSON-ready, and is cheap next to the
score stage."""

import dataclasses
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.explain.field import explain_batch, explain_nero
from pipeline.media.images import list_images, read_rgb
from pipeline.model.bundle import load_bundle

FIXTURES = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def frames() -> list[torch.Tensor]:
    """16 real frames, in-distribution and OOD: one batch as the monitor's batcher would form it."""
    paths = list_images(FIXTURES / "kvasir-seg" / "val" / "images")[:8]
    for name in ("capsule", "chest-xray", "natural", "laparoscopic"):
        paths += list_images(FIXTURES / "OOD" / name)[:2]
    return [torch.from_numpy(read_rgb(path)) for path in paths]


@pytest.fixture(scope="module")
def ensemble_bundle(monitor_config):
    """The bundled artifact alerting on relevance-ensemble, whose score has two parts."""
    return load_bundle(dataclasses.replace(monitor_config, detector="relevance-ensemble"))


@pytest.mark.parametrize("which", ["bundle", "ensemble_bundle"])
def test_relevance_explanation_adds_up_to_the_alerting_score(which, frames, request):
    bundle = request.getfixturevalue(which)
    inference = bundle.infer(frames)
    explanations = explain_batch(inference, bundle, top=5)
    assert all(json.loads(json.dumps(e, allow_nan=False)) == e for e in explanations)   # JSON-ready
    split = inference.relevance_score
    if bundle.detector == "relevance-patch":   # the larger part is the score; neurons split the relevance part
        torch.testing.assert_close(torch.maximum(*split.parts.values()), inference.terms.score)
        torch.testing.assert_close(split.neurons.sum(dim=1), split.parts["relevance-knn"], rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(split.patches.sum(dim=1), split.parts["patch-knn"])
    else:
        torch.testing.assert_close(split.neurons.sum(dim=1), inference.terms.score, rtol=1e-3, atol=1e-3)
    if bundle.detector == "relevance-ensemble":
        torch.testing.assert_close(sum(split.parts.values()) / 2, inference.terms.score)
    for i, explanation in enumerate(explanations):
        shares = split.neurons[i].abs()
        assert sorted(n for n, _ in explanation["neurons"]) == sorted(torch.topk(shares, 5).indices.tolist())
        parts = {"relevance-ensemble": {"relevance-knn", "relevance-mahalanobis"},
                 "relevance-patch": {"relevance-knn", "patch-knn"}}.get(bundle.detector, set())
        assert set(explanation.get("parts", {})) == parts
        if bundle.detector == "relevance-patch":      # the patches farthest out, largest share first
            assert [p for p, _ in explanation["patches"]] == torch.topk(split.patches[i], 3).indices.tolist()
        # the nearest training window is a real one, with its class and stored thumbnail
        name, label = bundle.relevance_detector.window(explanation["window_row"])
        assert explanation["window"] == name and explanation["nearest"] == bundle.class_names[label]
        assert explanation["window"].split("/")[0] in [*bundle.class_names, "bank"]   # a class folder, or unlabelled
        assert bundle.thumbnail(explanation["window_row"]).shape == (48, 48, 3)


def test_explanation_matches_the_score_terms(bundle, frames):
    terms = bundle.infer(frames).terms
    explanations = explain_nero(terms, bundle.scorer, bundle.class_names, top=5)
    assert all(json.loads(json.dumps(e, allow_nan=False)) == e for e in explanations)   # JSON-ready
    assert torch.isfinite(terms.score).all(), f"scores not finite (artifact lambda {bundle.scorer.lam})"

    with torch.no_grad():   # NERO's own score of the same frames, whichever detector the monitor alerts on
        features = bundle.classifier(bundle.preprocess([frame.to(bundle.device) for frame in frames]))[0]
    nero_scores = bundle.scorer.score(features)
    relevance = terms.relevance.cpu().numpy()
    means = bundle.scorer.raw_means.cpu().numpy()
    dim = bundle.scorer.feature_dim
    assert len(explanations) == len(frames)
    for i, explanation in enumerate(explanations):
        assert explanation["nearest"] == bundle.class_names[int(terms.nearest[i])]
        distance, bias_term, rho = explanation["distance"], explanation["bias_term"], explanation["rho"]
        assert (distance + bias_term) * rho == pytest.approx(float(nero_scores[i]), rel=1e-4)
        assert explanation["distance_share"] == pytest.approx(distance / (distance + bias_term), abs=1e-4)
        assert 0 < rho <= 1
        # top neurons: the largest |relevance - nearest class mean| in neuron space, with their sign
        deviation = relevance[i, :dim] - means[int(terms.nearest[i]), :dim]
        expected = np.argsort(-np.abs(deviation))[:5]
        neurons = [index for index, _ in explanation["neurons"]]
        assert sorted(neurons) == sorted(expected.tolist())
        for index, value in explanation["neurons"]:
            assert value == pytest.approx(deviation[index], abs=1e-6)
        magnitudes = [abs(value) for _, value in explanation["neurons"]]
        assert magnitudes == sorted(magnitudes, reverse=True)


def test_nearest_centroid_is_the_one_the_distance_was_measured_to(bundle, frames):
    terms = bundle.infer(frames).terms
    scorer = bundle.scorer
    projected = (terms.relevance[:, :scorer.feature_dim] - scorer.pca_mean) @ scorer.pca_components.T
    to_each = torch.cdist(projected.double(), scorer.centroids.double(), p=1)
    assert torch.equal(to_each.argmin(dim=1), terms.nearest.long())
    for explanation, distances in zip(explain_nero(terms, scorer, bundle.class_names), to_each, strict=True):
        assert explanation["distance"] == pytest.approx(float(distances.min()), rel=1e-4)


def median_seconds(function, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def test_explanation_adds_under_5_percent_to_the_score_stage(bundle, frames):
    """Score stage = classify + relevance + score on one batch of 16 preprocessed frames (CPU)."""
    inputs = bundle.preprocess(frames)

    @torch.no_grad()
    def score_stage():
        features, _, patches = bundle.classifier(inputs)
        terms = bundle.scorer.terms(features)
        return terms, bundle.relevance_detector.score_relevance(terms.relevance, features, patches)

    inference = bundle.infer(frames)
    stage = median_seconds(score_stage)
    explain = median_seconds(lambda: explain_batch(inference, bundle))
    share = explain / stage
    print(f"\nscore stage {stage * 1e3:.1f} ms / 16 frames, explanation {explain * 1e3:.3f} ms ({share:.2%})")
    assert math.isfinite(share) and share < 0.05
