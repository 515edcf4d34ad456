"""ViM, virtual-logit matching: score = alpha * ||(a - o) P_res|| - logsumexp(f).

Wang, Li, Feng, Zhang, "ViM: Out-Of-Distribution with Virtual-logit Matching", CVPR 2022.
o = -pinv(W) b is the origin of the logit space; P_res projects onto the eigenvectors of the (uncentred,
around o) training-feature covariance beyond the first `principal` ones; alpha = mean training max-logit /
mean training residual norm. The principal size follows the paper and the NERO reference: 1000 for
D >= 2048, 512 for D >= 768, D // 2 otherwise.
"""

from __future__ import annotations

import torch

from pipeline.ood.detectors.base import Detector, FitData


def principal_size(dim: int) -> int:
    if dim >= 2048:
        return 1000
    return 512 if dim >= 768 else dim // 2


class ViM(Detector):
    name = "vim"

    def __init__(self, principal: int | None = None) -> None:
        self.principal = principal

    def fit(self, data: FitData) -> ViM:
        features = data.features.double()
        weight, bias = data.weight.double(), data.bias.double()
        self.principal = self.principal or principal_size(data.feature_dim)
        origin = -torch.linalg.pinv(weight) @ bias
        centred = features - origin
        _, vectors = torch.linalg.eigh(centred.T @ centred / len(centred))   # ascending eigenvalues
        residual_space = vectors[:, : data.feature_dim - self.principal]
        residual = (centred @ residual_space).norm(dim=1)
        self.alpha = float(data.logits.double().amax(dim=1).mean() / residual.mean())
        self.origin = origin.float()
        self.residual_space = residual_space.float()
        return self

    def score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        centred = features.float() - self.origin.to(features.device)
        virtual = self.alpha * (centred @ self.residual_space.to(features.device)).norm(dim=1)
        return virtual - torch.logsumexp(logits.float(), dim=1)

    def params(self) -> dict[str, object]:
        return {"principal": self.principal}
