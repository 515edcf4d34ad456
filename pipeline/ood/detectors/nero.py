"""NERO: score = (min_c ||PCA(R(a)) - centroid_c||_1 + lambda |R_b|) * rho, k = 175, PCA to int(2D/3).

Chhetri, Korhonen, Gyawali, Bhattarai, "NERO: Explainable Out-of-Distribution Detection with Neuron-level
Relevance", MICCAI 2025 (arXiv 2506.15404). A thin adapter: the one implementation is
`pipeline.ood.nero.NeroScorer` (formulas and the logit guard are documented there and in docs NERO.md), the
same object `nero fit` saves and the live monitor runs. With fewer training rows than int(2D/3) (a tiny
test subset), the PCA size is capped at the row count, the most components PCA can have.
"""

from __future__ import annotations

import torch

from pipeline.ood.detectors.base import Detector, FitData
from pipeline.ood.nero import DEFAULT_K, NeroScorer


class Nero(Detector):
    name = "nero"

    def __init__(self, k: int = DEFAULT_K, n_components: int | None = None) -> None:
        self.k = k
        self.n_components = n_components

    def fit(self, data: FitData) -> Nero:
        size = self.n_components or min(int(2 * data.feature_dim / 3), len(data.features))
        self.scorer = NeroScorer.fit(data.features, data.labels, data.weight, data.bias, k=self.k,
                                     n_components=size, device=data.features.device)
        return self

    def score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return self.scorer.terms(features).score

    def params(self) -> dict[str, object]:
        return {"k": self.scorer.k, "n_components": self.scorer.n_components}
