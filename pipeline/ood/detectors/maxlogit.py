"""MaxLogit: score = -max_j f_j.

Hendrycks, Basart, Mazeika, Zou, Kwon, Mostajabi, Steinhardt, Song, "Scaling Out-of-Distribution Detection
for Real-World Settings", ICML 2022.
"""

from __future__ import annotations

import torch

from pipeline.ood.detectors.base import Detector


class MaxLogit(Detector):
    name = "maxlogit"

    def score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return -logits.float().amax(dim=1)
