"""MSP, maximum softmax probability: score = -max_j softmax(f)_j.

Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and Out-of-Distribution Examples in Neural
Networks", ICLR 2017.
"""

from __future__ import annotations

import torch

from pipeline.ood.detectors.base import Detector


class MSP(Detector):
    name = "msp"

    def score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return -torch.softmax(logits.float(), dim=1).amax(dim=1)
