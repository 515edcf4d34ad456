import numpy as np
from scipy.special import softmax

from pipeline.ood.detectors.msp import MSP


def test_msp_is_minus_the_largest_softmax_probability(real):
    features, logits = real.test
    expected = -softmax(logits.double().numpy(), axis=1).max(axis=1)
    np.testing.assert_allclose(MSP().fit(real.train).score(features, logits).numpy(), expected, rtol=1e-6)
