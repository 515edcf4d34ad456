"""ODIN: score = -max_j softmax(f(x~) / T)_j, x~ = x - eps * sign(-grad_x log max_j softmax(f(x) / T)_j).

Liang, Li, Srikant, "Enhancing The Reliability of Out-of-distribution Image Detection in Neural Networks",
ICLR 2018. T = 100 and eps = 0.0005 as the NERO reference runs it; like the reference, the perturbation is
taken in the normalised input space (no division by the per-channel standard deviation). The sign of a
zero gradient counts as +1, as in the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.ood.detectors.base import InputDetector


class ODIN(InputDetector):
    name = "odin"

    def __init__(self, temperature: float = 100.0, noise: float = 0.0005) -> None:
        self.temperature = temperature
        self.noise = noise

    def score_inputs(self, classifier: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs.detach().requires_grad_(True)
        with torch.enable_grad():
            scaled = classifier(x)[1].float() / self.temperature
            loss = F.cross_entropy(scaled, scaled.argmax(dim=1), reduction="sum")
            (gradient,) = torch.autograd.grad(loss, x)
        step = torch.where(gradient >= 0, 1.0, -1.0)
        with torch.no_grad():
            logits = classifier(x.detach() - self.noise * step)[1].float()
        return -torch.softmax(logits / self.temperature, dim=1).amax(dim=1)

    def params(self) -> dict[str, object]:
        return {"temperature": self.temperature, "noise": self.noise}
