"""Energy+ReAct: score = energy(W min(a, c) + b), c = the 90th percentile of training activations.

Sun, Guo, Li, "ReAct: Out-of-distribution Detection With Rectified Activations", NeurIPS 2021. The paper
sets c from the in-distribution activations (percentile p = 90); the NERO reference hard-codes c = 0.9 for
ResNet-18 and 0.99 otherwise, values that do not carry over to other feature scales, so the paper's rule
is used.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.ood.detectors.base import Detector, FitData
from pipeline.ood.detectors.energy import energy


class ReAct(Detector):
    name = "react"

    def __init__(self, percentile: float = 90.0) -> None:
        self.percentile = percentile

    def fit(self, data: FitData) -> ReAct:
        self.clip = float(np.percentile(data.features.float().cpu().numpy(), self.percentile))
        self.weight, self.bias = data.weight.float(), data.bias.float()
        return self

    def score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        clipped = features.float().clamp(max=self.clip)
        return energy(clipped @ self.weight.to(features.device).T + self.bias.to(features.device))

    def params(self) -> dict[str, object]:
        return {"percentile": self.percentile, "clip": round(self.clip, 6)}
