"""KNN: score = || z - z_(k) ||, the distance from the L2-normalised feature z to its k-th nearest
L2-normalised training feature; k = 50.

Sun, Ming, Zhu, Li, "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022 (k = 50 is the
paper's setting for its 50k-image training set; it is capped at the training-set size). The search is an
exact FAISS index (`GpuIndexFlatL2` when the features are on a GPU and faiss has GPU support), with a torch
fallback where faiss is not installed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.centroid_index import faiss, faiss_has_gpu
from pipeline.detectors.base import Detector, FitData

QUERY_CHUNK = 4096


class NeighbourIndex:
    """Exact L2 index over a bank of vectors; `kth_distance(queries, k)`: N distances, queries' device."""

    def __init__(self, bank: torch.Tensor) -> None:
        self.bank = bank.float().contiguous()
        self._on_gpu = faiss is not None and self.bank.is_cuda and faiss_has_gpu()
        self._index = None
        if self._on_gpu:
            self._resources = faiss.StandardGpuResources()
            config = faiss.GpuIndexFlatConfig()
            config.device = self.bank.device.index or 0
            self._index = faiss.GpuIndexFlatL2(self._resources, self.bank.shape[1], config)
            self._index.add(self.bank)
        elif faiss is not None:
            self._index = faiss.IndexFlatL2(self.bank.shape[1])
            self._index.add(self.bank.cpu())

    def kth_distance(self, queries: torch.Tensor, k: int) -> torch.Tensor:
        queries = queries.float().contiguous()
        if self._index is None:
            bank = self.bank.to(queries.device)
            chunks = queries.split(QUERY_CHUNK)
            return torch.cat([torch.cdist(chunk, bank).kthvalue(k, dim=1).values for chunk in chunks])
        squared, _ = self._index.search(queries if self._on_gpu else queries.cpu(), k)
        return squared[:, k - 1].clamp_min(0).sqrt().to(queries.device)


class KNN(Detector):
    name = "knn"

    def __init__(self, k: int = 50) -> None:
        self.k = k

    def embed(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The space the neighbours are searched in: normalised penultimate features."""
        return F.normalize(features.float(), dim=1)

    def fit(self, data: FitData) -> KNN:
        self.k = min(self.k, len(data.features))
        self.index = NeighbourIndex(self.embed(data.features, data.logits))
        return self

    def score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return self.index.kth_distance(self.embed(features, logits), self.k)

    def params(self) -> dict[str, object]:
        return {"k": self.k}
