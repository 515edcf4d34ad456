"""ASH-S: prune all but the largest (100 - p)% of each feature vector, rescale what is left by
exp(sum before / sum after), then score = energy(W a' + b); p = 90.

Djurisic, Bozanic, Ashok, Liu, "Extremely Simple Activation Shaping for Out-of-Distribution Detection",
ICLR 2023 (ASH-S@90, the paper's ImageNet setting), applied after global pooling. ASH assumes non-negative
(post-ReLU) features; on a transformer's signed CLS token it is applied unchanged, as OpenOOD does.
"""

from __future__ import annotations

import torch

from pipeline.ood.detectors.base import Detector, FitData
from pipeline.ood.detectors.energy import energy


def ash_s(features: torch.Tensor, percentile: float) -> torch.Tensor:
    dim = features.shape[1]
    keep = dim - round(dim * percentile / 100.0)
    total = features.sum(dim=1, keepdim=True)
    values, indices = torch.topk(features, keep, dim=1)
    pruned = torch.zeros_like(features).scatter_(1, indices, values)
    kept = pruned.sum(dim=1, keepdim=True)
    kept = torch.where(kept == 0, torch.finfo(kept.dtype).tiny, kept)   # all-zero features: scale 1
    return pruned * torch.exp(total / kept)


class ASH(Detector):
    name = "ash"

    def __init__(self, percentile: float = 90.0) -> None:
        self.percentile = percentile

    def fit(self, data: FitData) -> ASH:
        self.weight, self.bias = data.weight.float(), data.bias.float()
        return self

    def score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        shaped = ash_s(features.float(), self.percentile)
        return energy(shaped @ self.weight.to(features.device).T + self.bias.to(features.device))

    def params(self) -> dict[str, object]:
        return {"percentile": self.percentile}
