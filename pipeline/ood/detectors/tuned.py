"""Hyperparameters chosen on in-distribution data only, for detectors whose settings have no universal value.

Each candidate setting is fitted on the validation's training rows and judged by the AUROC of held-out
in-distribution images against synthetic outliers made from those same images (`Validation`); the best one
is refitted on the full training set. No reported OOD set is seen, which is the weakness of the published
k and PCA size (tuned with the OOD test set in view, docs NERO.md).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pipeline.ood.detectors.base import Detector, FitData, Validation


def validation_auroc(detector: Detector, validation: Validation) -> float:
    """AUROC (x100) of the synthetic outliers against the held-out inliers; OOD is the positive class."""
    # Imported here, by fitting only: scoring must not need scikit-learn (a GPU host's image may lack it).
    from sklearn.metrics import roc_auc_score

    inliers = detector.score(*validation.inliers).cpu()
    outliers = detector.score(*validation.outliers).cpu()
    truth = torch.cat([torch.zeros(len(inliers)), torch.ones(len(outliers))])
    return 100.0 * float(roc_auc_score(truth.numpy(), torch.cat([inliers, outliers]).double().numpy()))


class Tuned(Detector):
    """Wraps a detector family: `build(**setting)` for each setting that `grid(data)` proposes."""

    def __init__(self, name: str, build: Callable[..., Detector],
                 grid: Callable[[FitData], list[dict[str, object]]]) -> None:
        self.name = name
        self.build = build
        self.grid = grid

    def fit(self, data: FitData) -> Tuned:
        if data.validation is None:
            raise ValueError(f"{self.name} needs in-distribution validation data to choose its settings")
        validation = data.validation
        results = [(validation_auroc(self.build(**setting).fit(validation.train), validation), setting)
                   for setting in self.grid(data)]
        self.validation_auroc, self.setting = max(results, key=lambda result: result[0])
        self.detector = self.build(**self.setting).fit(data)
        return self

    def score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return self.detector.score(features, logits)

    def params(self) -> dict[str, object]:
        return self.detector.params()
