import numpy as np

from pipeline.ood.detectors.maxlogit import MaxLogit


def test_maxlogit_is_minus_the_largest_logit(real):
    features, logits = real.ood
    np.testing.assert_array_equal(MaxLogit().score(features, logits).numpy(), -logits.numpy().max(axis=1))
