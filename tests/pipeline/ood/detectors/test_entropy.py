import numpy as np
import pytest
import torch
from scipy.special import softmax
from scipy.stats import entropy

from pipeline.ood.detectors.entropy import PROB_FLOOR, Entropy


def test_entropy_of_the_softmax(real):
    features, logits = real.test
    probs = softmax(logits.double().numpy(), axis=1)
    np.testing.assert_allclose(Entropy().score(features, logits).numpy(), entropy(probs, axis=1), rtol=1e-5)


def test_confident_predictions_stay_finite_thanks_to_the_floor():
    score = Entropy().score(torch.zeros(1, 2), torch.tensor([[0.0, 200.0]]))
    assert score.item() == pytest.approx(-PROB_FLOOR * np.log(PROB_FLOOR), rel=1e-4)
