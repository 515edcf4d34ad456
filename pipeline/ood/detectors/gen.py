"""GEN, generalized entropy: score = sum_{j in top-M} p_j^gamma (1 - p_j)^gamma, gamma = 0.1, M = 100.

Liu, Lochman, Zach, "GEN: Pushing the Limits of Softmax-Based Out-of-Distribution Detection", CVPR 2023.
The paper's confidence is the negative of this sum; larger generalized entropy = more OOD. M is capped at
the number of classes.
"""

from __future__ import annotations

import torch

from pipeline.ood.detectors.base import Detector


class GEN(Detector):
    name = "gen"

    def __init__(self, gamma: float = 0.1, top: int = 100) -> None:
        self.gamma = gamma
        self.top = top

    def score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits.float(), dim=1)
        probs = torch.topk(probs, min(self.top, probs.shape[1]), dim=1).values
        return (probs ** self.gamma * (1 - probs) ** self.gamma).sum(dim=1)

    def params(self) -> dict[str, object]:
        return {"gamma": self.gamma, "M": self.top}
