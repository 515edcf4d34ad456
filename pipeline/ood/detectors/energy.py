"""Energy: score = -T * logsumexp(f / T), T = 1 (higher energy = more OOD).

Liu, Wang, Owens, Li, "Energy-based Out-of-distribution Detection", NeurIPS 2020.
"""

from __future__ import annotations

import torch

from pipeline.ood.detectors.base import Detector


def energy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The free energy of the logits; ReAct and ASH score their rectified logits with it too."""
    return -temperature * torch.logsumexp(logits.float() / temperature, dim=1)


class Energy(Detector):
    name = "energy"

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return energy(logits, self.temperature)

    def params(self) -> dict[str, object]:
        return {"temperature": self.temperature}
