import numpy as np
import torch
from sklearn.covariance import EmpiricalCovariance
from sklearn.preprocessing import normalize

from pipeline.ood.detectors.relevance_mahalanobis import RelevanceMahalanobis
from pipeline.ood.nero import relevance


def _unit_relevance(features: torch.Tensor, real) -> np.ndarray:
    return normalize(relevance(features.double(), real.train.weight.double(), real.train.bias.double())[:, :-1].numpy())


def test_min_class_distance_of_unit_relevance_matches_sklearn(real):
    r = _unit_relevance(real.train.features, real)
    y = real.train.labels.numpy()
    means = np.stack([r[y == c].mean(axis=0) for c in (0, 1)])
    covariance = EmpiricalCovariance(assume_centered=True).fit(r - means[y])
    features, logits = real.ood
    x = _unit_relevance(features, real)
    expected = np.min([covariance.mahalanobis(x - m) for m in means], axis=0)
    score = RelevanceMahalanobis().fit(real.train).score(features, logits).numpy()
    np.testing.assert_allclose(score, expected, rtol=5e-3)


def test_neuron_shares_add_up_to_the_score(real):
    detector = RelevanceMahalanobis().fit(real.train)
    features, _ = real.ood
    found = detector.score_relevance(relevance(features, real.train.weight, real.train.bias), features)
    torch.testing.assert_close(found.neurons.sum(dim=1), found.score, rtol=1e-3, atol=1e-3)


def test_the_artifact_round_trip_keeps_scores(real, tmp_path):
    detector = RelevanceMahalanobis().fit(real.train)
    loaded = RelevanceMahalanobis.load(tmp_path, detector.save(tmp_path), real.train.weight, real.train.bias)
    features, logits = real.ood
    torch.testing.assert_close(loaded.score(features, logits), detector.score(features, logits))
