"""NERO with several centroids per class: the distance term becomes min over the k-means centroids of
every class, d = min_{c, m} ||PCA(R(a)) - centroid_{c,m}||_1; everything else is plain NERO.

The NERO abstract speaks of clustering relevance; its reference code keeps one mean per class (docs
NERO.md). This is the clustering reading: FAISS k-means (L2, `clusters` per class, capped at the class
size) on the PCA-projected training relevance of each class. The fitted object is still a
`pipeline.ood.nero.NeroScorer` (its centroid index simply holds more rows), so the score terms and the
relevance-based explanation are unchanged; `cluster_class` maps a nearest centroid back to its class.
"""

from __future__ import annotations

import torch

from pipeline.ood.detectors.base import FitData
from pipeline.ood.detectors.nero import Nero
from pipeline.ood.index import faiss
from pipeline.ood.nero import DEFAULT_K, NeroScorer, as_tensor, relevance

KMEANS_ITERATIONS = 50


class NeroKMeans(Nero):
    name = "nero-kmeans"

    def __init__(self, clusters: int = 4, k: int = DEFAULT_K, n_components: int | None = None,
                 seed: int = 0) -> None:
        super().__init__(k, n_components)
        self.clusters = clusters
        self.seed = seed

    def fit(self, data: FitData) -> NeroKMeans:
        if faiss is None:
            raise ImportError("nero-kmeans clusters with FAISS: pip install 'nero-monitor[cpu]' (or [gpu])")
        plain = super().fit(data).scorer
        features = as_tensor(data.features, plain.device)
        neurons = relevance(features, plain.weight, plain.bias)[:, : plain.feature_dim]
        projected = ((neurons - plain.pca_mean) @ plain.pca_components.T).cpu().numpy()
        labels = data.labels.cpu()
        centroids, owners = [], []
        for c in range(data.num_classes):
            members = projected[(labels == c).numpy()]
            kmeans = faiss.Kmeans(members.shape[1], min(self.clusters, len(members)), niter=KMEANS_ITERATIONS,
                                  seed=self.seed, min_points_per_centroid=1,
                                  max_points_per_centroid=len(members))
            kmeans.train(members)
            centroids.append(torch.from_numpy(kmeans.centroids))
            owners += [c] * len(kmeans.centroids)
        self.cluster_class = torch.tensor(owners)
        self.scorer = NeroScorer(plain.weight, plain.bias, plain.pca_mean, plain.pca_components,
                                 torch.cat(centroids), plain.raw_means, plain.lam, plain.k, plain.device)
        return self

    def params(self) -> dict[str, object]:
        return {**super().params(), "clusters_per_class": self.clusters}
