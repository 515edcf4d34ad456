"""GradNorm: score = -|| d KL(u || softmax(W a + b)) / dW ||_1 = -||a||_1 * ||softmax(f) - u||_1, u = 1/C.

Huang, Geng, Li, "On the Importance of Gradients for Detecting Distributional Shifts in the Wild",
NeurIPS 2021 (T = 1). The paper, and the NERO reference, take the gradient of the last layer's weights only;
that gradient is the outer product (p - u) a^T, so its L1 norm factorises exactly (paper, Sec. 4) and needs
no backward pass: this is a feature-space detector. tests/pipeline/ood/detectors/test_gradnorm.py checks the
closed form against autograd.
"""

from __future__ import annotations

import torch

from pipeline.ood.detectors.base import Detector


class GradNorm(Detector):
    name = "gradnorm"

    def score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits.float(), dim=1)
        uniform = 1.0 / probs.shape[1]
        return -features.float().abs().sum(dim=1) * (probs - uniform).abs().sum(dim=1)
