import numpy as np
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize

from pipeline.ood.detectors.relevance_knn import RelevanceKNN


def _neuron_relevance(a: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """LRP-0 relevance of each feature neuron from all class probabilities (docs NERO.md, section 1)."""
    f = a @ w.T + b
    p = np.exp(f - f.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return a * ((p / f) @ w)


def test_kth_neighbour_distance_in_relevance_space_matches_sklearn(real):
    w, b = real.train.weight.double().numpy(), real.train.bias.double().numpy()
    bank = normalize(_neuron_relevance(real.train.features.double().numpy(), w, b))
    features, logits = real.ood
    queries = normalize(_neuron_relevance(features.double().numpy(), w, b))
    distances, _ = NearestNeighbors(n_neighbors=3).fit(bank).kneighbors(queries)
    score = RelevanceKNN(k=3).fit(real.train).score(features, logits).numpy()
    np.testing.assert_allclose(score, distances[:, 2], rtol=1e-3, atol=1e-4)
