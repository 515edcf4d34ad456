import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from pipeline.ood.detectors.energy import Energy


def test_energy_is_minus_logsumexp_of_the_logits(real):
    features, logits = real.ood
    expected = -logsumexp(logits.double().numpy(), axis=1)
    np.testing.assert_allclose(Energy().score(features, logits).numpy(), expected, rtol=1e-6)


def test_temperature_scales_inside_and_outside():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    expected = -3.0 * logsumexp(np.array([2.0, -1.0, 0.5]) / 3.0)
    score = Energy(temperature=3.0).score(torch.zeros(1, 4), logits)
    assert score.item() == pytest.approx(expected, rel=1e-6)
