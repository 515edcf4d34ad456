import numpy as np
from scipy.special import logsumexp

from pipeline.ood.detectors.ash import ASH


def _ash_s_row(a: np.ndarray, percentile: float) -> np.ndarray:
    keep = len(a) - round(len(a) * percentile / 100)
    top = np.argsort(-a)[:keep]
    pruned = np.zeros_like(a)
    pruned[top] = a[top]
    return pruned * np.exp(a.sum() / pruned.sum())


def test_ash_s_then_energy_matches_a_per_row_reference(real):
    features, logits = real.ood          # EfficientNet features are post-ReLU6, as ASH assumes
    w, b = real.train.weight.double().numpy(), real.train.bias.double().numpy()
    shaped = np.stack([_ash_s_row(row, 90) for row in features.double().numpy()])
    expected = -logsumexp(shaped @ w.T + b, axis=1)
    np.testing.assert_allclose(ASH().fit(real.train).score(features, logits).numpy(), expected, rtol=1e-4)
