import numpy as np
import pytest
from scipy.special import logsumexp

from pipeline.ood.detectors.energy import Energy
from pipeline.ood.detectors.react import ReAct


def test_energy_of_logits_from_features_clipped_at_the_90th_percentile(real):
    clip = np.percentile(real.train.features.numpy(), 90)
    features, logits = real.ood
    clipped = np.minimum(features.double().numpy(), clip)
    w, b = real.train.weight.double().numpy(), real.train.bias.double().numpy()
    expected = -logsumexp(clipped @ w.T + b, axis=1)
    detector = ReAct().fit(real.train)
    assert detector.clip == pytest.approx(clip, rel=1e-6)
    np.testing.assert_allclose(detector.score(features, logits).numpy(), expected, rtol=1e-5)


def test_clipping_at_the_training_maximum_leaves_training_energy_unchanged(real):
    features, logits = real.train.features, real.train.logits
    np.testing.assert_allclose(ReAct(percentile=100).fit(real.train).score(features, logits).numpy(),
                               Energy().score(features, logits).numpy(), rtol=1e-5)
