"""Relevance kNN: score = the distance from a frame's L2-normalised neuron relevance vector R(a) (bias
excluded, as NERO's distance term) to its k-th nearest normalised training relevance vector.

An extension of NERO (Chhetri et al., MICCAI 2025) in the manner of deep-nearest-neighbour OOD detection
(Sun et al., ICML 2022): instead of one centroid per class, the whole training set of relevance vectors is
the reference, so multi-modal classes need no clustering. For unit vectors the Euclidean distance ranks
exactly as the cosine distance (||u - v||^2 = 2 - 2 cos). Same FAISS index as `knn`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.detectors.base import FitData
from pipeline.detectors.knn import KNN
from pipeline.nero import relevance


class RelevanceKNN(KNN):
    name = "relevance-knn"

    def fit(self, data: FitData) -> RelevanceKNN:
        self.weight, self.bias = data.weight.float(), data.bias.float()
        return super().fit(data)

    def embed(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight.to(features.device), self.bias.to(features.device)
        return F.normalize(relevance(features.float(), weight, bias)[:, :-1], dim=1)
