import numpy as np
import torch

from pipeline.ood.detectors.nero import Nero
from pipeline.ood.detectors.nero_kmeans import NeroKMeans
from pipeline.ood.nero import relevance


def test_one_cluster_per_class_is_plain_nero(real):
    features, logits = real.ood
    plain = Nero(k=16).fit(real.train).score(features, logits)
    torch.testing.assert_close(NeroKMeans(clusters=1, k=16).fit(real.train).score(features, logits), plain,
                               rtol=1e-4, atol=1e-5)


def test_distance_term_is_the_l1_distance_to_the_nearest_cluster(real):
    detector = NeroKMeans(clusters=3, k=16).fit(real.train)
    scorer = detector.scorer
    assert len(scorer.centroids) == 6 and detector.cluster_class.tolist() == [0, 0, 0, 1, 1, 1]
    features, _ = real.ood
    neurons = relevance(features, scorer.weight, scorer.bias)[:, :-1]
    projected = (neurons - scorer.pca_mean) @ scorer.pca_components.T
    expected = torch.cdist(projected.double(), scorer.centroids.double(), p=1).min(dim=1).values
    np.testing.assert_allclose(scorer.terms(features).distance.numpy(), expected.numpy(), rtol=1e-4)


def test_clustering_changes_only_the_centroids(real):
    """PCA, the class means of the raw relevance and lambda stay those of plain NERO."""
    detector = NeroKMeans(clusters=2, k=16).fit(real.train)
    plain = Nero(k=16).fit(real.train).scorer
    torch.testing.assert_close(detector.scorer.pca_components, plain.pca_components)
    torch.testing.assert_close(detector.scorer.raw_means, plain.raw_means)
    assert detector.scorer.lam == plain.lam
