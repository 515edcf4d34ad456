"""KNN: score = || z - z_(k) ||, the distance from the L2-normalised feature z to its k-th nearest
L2-normalised training feature; k = 50.

Sun, Ming, Zhu, Li, "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022 (k = 50 is the
paper's setting for its 50k-image training set; it is capped at the training-set size). The search is an
exact FAISS index (`pipeline.ood.index.NeighbourIndex`: on the GPU when the features are there), with a
torch fallback where faiss is not installed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.ood.detectors.base import Detector, FitData
from pipeline.ood.index import NeighbourIndex


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
