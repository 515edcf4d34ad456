"""NECO, neural-collapse-inspired OOD score: score = -(||P_d z|| / ||z||) [* max_j f_j].

Ammar, Belkhir, Popescu, Manzanera, Franchi, "NECO: NEural Collapse Based Out-of-distribution Detection",
ICLR 2024. z = the standardised feature (training mean and standard deviation), P_d projects onto the
first d principal components of the standardised training features. As the NERO reference runs it:
d = 100, and the ratio is multiplied by the max logit for every architecture except ResNet-18.
"""

from __future__ import annotations

import torch

from pipeline.ood.detectors.base import Detector, FitData


class NECO(Detector):
    name = "neco"

    def __init__(self, dim: int = 100, maxlogit: bool = True) -> None:
        self.dim = dim
        self.maxlogit = maxlogit

    def fit(self, data: FitData) -> NECO:
        features = data.features.double()
        self.mean = features.mean(dim=0)
        std = features.std(dim=0, unbiased=False)
        self.std = torch.where(std > 0, std, torch.ones_like(std))     # as StandardScaler treats constants
        scaled = (features - self.mean) / self.std
        _, _, vh = torch.linalg.svd(scaled - scaled.mean(dim=0), full_matrices=False)
        self.components = vh[: self.dim].float()
        self.mean, self.std = self.mean.float(), self.std.float()
        return self

    def score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        device = features.device
        scaled = (features.float() - self.mean.to(device)) / self.std.to(device)
        ratio = (scaled @ self.components.to(device).T).norm(dim=1) / scaled.norm(dim=1)
        if self.maxlogit:
            ratio = ratio * logits.float().amax(dim=1)
        return -ratio

    def params(self) -> dict[str, object]:
        return {"dim": self.dim, "maxlogit": self.maxlogit}
