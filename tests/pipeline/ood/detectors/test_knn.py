import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize

from pipeline.ood.detectors.knn import KNN
from pipeline.ood.index import NeighbourIndex


def test_kth_neighbour_distance_of_normalised_features_matches_sklearn(real):
    bank = normalize(real.train.features.double().numpy())
    features, logits = real.ood
    distances, _ = NearestNeighbors(n_neighbors=5).fit(bank).kneighbors(normalize(features.double().numpy()))
    detector = KNN(k=5).fit(real.train)
    score = detector.score(features, logits).numpy()
    np.testing.assert_allclose(score, distances[:, 4], rtol=1e-4, atol=1e-5)


def test_k_is_capped_at_the_training_set_size(real):
    assert KNN().fit(real.train).k == min(50, len(real.train.features))


@pytest.mark.parametrize("k", [1, 7])
def test_torch_fallback_gives_the_faiss_answer(real, k):
    bank = torch.nn.functional.normalize(real.train.features, dim=1)
    queries = torch.nn.functional.normalize(real.ood[0], dim=1)
    index, fallback = NeighbourIndex(bank, backend="faiss"), NeighbourIndex(bank, backend="torch")
    torch.testing.assert_close(index.kth_distance(queries, k), fallback.kth_distance(queries, k), rtol=1e-4,
                               atol=1e-5)
