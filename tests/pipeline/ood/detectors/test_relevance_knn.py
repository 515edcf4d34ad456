import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize

from pipeline.ood.detectors.relevance_knn import RelevanceKNN
from pipeline.ood.nero import relevance


def _neuron_relevance(a: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """LRP-0 relevance of each feature neuron from all class probabilities (docs NERO.md, section 1)."""
    f = a @ w.T + b
    p = np.exp(f - f.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return a * ((p / f) @ w)


@pytest.mark.parametrize("feature_weight", [0.0, 0.5])
def test_kth_neighbour_distance_matches_sklearn(real, feature_weight):
    w, b = real.train.weight.double().numpy(), real.train.bias.double().numpy()

    def embed(a: np.ndarray) -> np.ndarray:
        parts = [np.sqrt(1 - feature_weight) * normalize(_neuron_relevance(a, w, b))]
        return np.hstack(parts + [np.sqrt(feature_weight) * normalize(a)] if feature_weight else parts)

    features, logits = real.ood
    bank = embed(real.train.features.double().numpy())
    distances, _ = NearestNeighbors(n_neighbors=3).fit(bank).kneighbors(embed(features.double().numpy()))
    score = RelevanceKNN(k=3, feature_weight=feature_weight).fit(real.train).score(features, logits).numpy()
    np.testing.assert_allclose(score, distances[:, 2], rtol=2e-3, atol=1e-3)   # the bank is stored in fp16


def test_neuron_shares_add_up_to_the_score_and_nearest_is_the_closest_window(real):
    detector = RelevanceKNN(k=3, feature_weight=0.5).fit(real.train)
    features, _ = real.ood
    found = detector.score_relevance(relevance(features, real.train.weight, real.train.bias), features)
    torch.testing.assert_close(found.neurons.sum(dim=1), found.score, rtol=1e-4, atol=1e-5)
    # a training row is its own nearest window
    train = real.train.features[:5]
    own = detector.score_relevance(relevance(train, real.train.weight, real.train.bias), train)
    assert own.nearest.tolist() == [0, 1, 2, 3, 4]


def test_the_artifact_round_trip_keeps_scores_and_window_names(real, tmp_path):
    detector = RelevanceKNN(k=2, feature_weight=0.25).fit(real.train)
    detector.ids = [f"window{i}" for i in range(len(real.train.labels))]
    detector.labels = real.train.labels
    loaded = RelevanceKNN.load(tmp_path, detector.save(tmp_path), real.train.weight, real.train.bias)
    features, logits = real.ood
    torch.testing.assert_close(loaded.score(features, logits), detector.score(features, logits))
    assert loaded.window(7) == ("window7", int(real.train.labels[7]))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="feature_weight"):
        RelevanceKNN(k=1, feature_weight=1.0)
