"""Entropy of the softmax: score = -sum_j p_j log p_j, with p clipped at 1e-6 as the NERO reference does.

The standard predictive-uncertainty baseline; used as a detector in the NERO comparison (Chhetri et al.,
MICCAI 2025) and in pytorch-ood.
"""

from __future__ import annotations

import torch

from pipeline.ood.detectors.base import Detector

PROB_FLOOR = 1e-6


class Entropy(Detector):
    name = "entropy"

    def score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits.float(), dim=1).clamp_min(PROB_FLOOR)
        return -(probs * probs.log()).sum(dim=1)
