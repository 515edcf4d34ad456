"""Relevance Mahalanobis: score = min_c (r - mu_c)^T Sigma^+ (r - mu_c), with r = R(a) / ||R(a)|| a frame's unit
neuron relevance (NERO's R, bias excluded), mu_c the class means and Sigma the tied covariance of the
class-centred training relevance (maximum likelihood, pseudo-inverse).

Lee et al.'s Mahalanobis detector (NeurIPS 2018) moved from the features into NERO's relevance space
(Chhetri et al., MICCAI 2025): where relevance-kNN asks "is a training window near?", this asks "is the
relevance pattern a plausible draw of its class?", and weighs the rare directions (tight in training) that a
Euclidean distance treats like any other. On the bundled model it separated the demo clip's laparoscopic
frames, which relevance-kNN did not (docs/RESULTS.md). The score splits exactly over neurons:
neuron i's share is d_i (Sigma^+ d)_i with d = r - mu_c for the nearest class c (signed; the shares sum to it).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from pipeline.ood.detectors.base import FitData, RelevanceDetector, RelevanceScore, class_means, read_tensors
from pipeline.ood.nero import relevance

GAUSSIAN_FILE = "relevance_gaussian.safetensors"


def unit_relevance(relevance_full: torch.Tensor) -> torch.Tensor:
    """N x (D+1) relevance (neurons, then bias) -> N x D unit vectors of the neuron relevance."""
    return F.normalize(relevance_full[:, :-1].double(), dim=1)


class RelevanceMahalanobis(RelevanceDetector):
    name = "relevance-mahalanobis"

    def fit(self, data: FitData) -> RelevanceMahalanobis:
        super().fit(data)
        full = relevance(data.features.double(), data.weight.double(), data.bias.double())
        unit = unit_relevance(full)
        means = class_means(unit, data.labels, data.num_classes)
        centred = unit - means[data.labels]
        self.means = means.float()
        self.precision = torch.linalg.pinv(centred.T @ centred / len(centred), hermitian=True).float()
        return self

    def score_relevance(self, relevance_full: torch.Tensor, features: torch.Tensor,
                        patches: torch.Tensor | None = None) -> RelevanceScore:
        unit = unit_relevance(relevance_full).float()
        means, precision = self.means.to(unit.device), self.precision.to(unit.device)
        diff = unit.unsqueeze(1) - means                                    # N x C x D
        whitened = diff @ precision                                         # precision is symmetric
        per_class = (diff * whitened).sum(dim=2)                            # N x C
        score, nearest = per_class.min(dim=1)
        rows = torch.arange(len(unit), device=unit.device)
        neurons = (diff * whitened)[rows, nearest]
        return RelevanceScore(score, neurons)

    def save(self, directory: Path) -> dict:
        save_file({"means": self.means.cpu().contiguous(), "precision": self.precision.cpu().contiguous()},
                  str(directory / GAUSSIAN_FILE))
        return {"gaussian": GAUSSIAN_FILE}

    @classmethod
    def load(cls, directory: Path, settings: dict, weight: torch.Tensor,
             bias: torch.Tensor) -> RelevanceMahalanobis:
        arrays, _ = read_tensors(directory / settings["gaussian"], str(weight.device))
        detector = cls()
        detector.weight, detector.bias = weight.float(), bias.float()
        detector.means, detector.precision = arrays["means"], arrays["precision"]
        return detector
