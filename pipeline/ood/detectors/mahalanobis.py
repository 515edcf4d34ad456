"""Mahalanobis: score = min_c (a - mu_c)^T Sigma^+ (a - mu_c) on penultimate features a.

Lee, Lee, Lee, Shin, "A Simple Unified Framework for Detecting Out-of-Distribution Samples and Adversarial
Attacks", NeurIPS 2018. As in the NERO reference comparison: class means mu_c and one tied covariance Sigma
of the class-centred training features (maximum likelihood, pseudo-inverse), the last feature layer only,
no input preprocessing and no layer ensemble.
"""

from __future__ import annotations

import torch

from pipeline.ood.detectors.base import Detector, FitData, class_means


class Mahalanobis(Detector):
    name = "mahalanobis"

    def fit(self, data: FitData) -> Mahalanobis:
        features = data.features.double()
        means = class_means(features, data.labels, data.num_classes)
        centred = features - means[data.labels]
        covariance = centred.T @ centred / len(centred)
        self.means = means.float()
        self.precision = torch.linalg.pinv(covariance, hermitian=True).float()
        return self

    def score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        diff = features.float().unsqueeze(1) - self.means.to(features.device)       # N x C x D
        distance = torch.einsum("ncd,de,nce->nc", diff, self.precision.to(features.device), diff)
        return distance.amin(dim=1)
