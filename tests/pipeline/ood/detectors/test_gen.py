import numpy as np
import pytest
import torch
from scipy.special import softmax

from pipeline.ood.detectors.gen import GEN


def test_generalized_entropy_over_the_top_classes(real):
    features, logits = real.test
    p = softmax(logits.double().numpy(), axis=1)
    expected = (p ** 0.1 * (1 - p) ** 0.1).sum(axis=1)      # M = 100 > C = 2: every class counts
    np.testing.assert_allclose(GEN().score(features, logits).numpy(), expected, rtol=1e-5)


def test_only_the_top_m_probabilities_count():
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1]]))
    top2 = sum(q ** 0.5 * (1 - q) ** 0.5 for q in (0.6, 0.3))
    assert GEN(gamma=0.5, top=2).score(torch.zeros(1, 1), logits).item() == pytest.approx(top2, rel=1e-6)
