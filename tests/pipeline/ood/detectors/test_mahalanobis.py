import numpy as np
from sklearn.covariance import EmpiricalCovariance

from pipeline.ood.detectors.mahalanobis import Mahalanobis


def test_min_class_distance_with_a_tied_covariance_matches_sklearn(real):
    a = real.train.features.double().numpy()
    y = real.train.labels.numpy()
    means = np.stack([a[y == c].mean(axis=0) for c in (0, 1)])
    covariance = EmpiricalCovariance(assume_centered=True).fit(a - means[y])
    features, logits = real.ood
    x = features.double().numpy()
    expected = np.min([covariance.mahalanobis(x - m) for m in means], axis=0)
    score = Mahalanobis().fit(real.train).score(features, logits).numpy()
    np.testing.assert_allclose(score, expected, rtol=2e-3)


def test_training_class_means_score_zero(real):
    detector = Mahalanobis().fit(real.train)
    assert detector.score(detector.means, real.train.logits[:2]).abs().max() < 1e-3
