"""The detector interface: fit on in-distribution training data, score batches; higher score = more OOD.

Two kinds, as the methods need:
- `Detector` works in feature/logit space: `score(features, logits)`. Everything the live monitor can run
  per frame is one of these (the features and logits are already there).
- `InputDetector` needs the classifier and the preprocessed images, because it differentiates through the
  network (ODIN's input perturbation): `score_inputs(classifier, inputs)`.

Both compute in torch on the device of their inputs, so the same object runs on CPU and GPU.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
from torch import nn


@dataclass
class FitData:
    """In-distribution training data and the classifier's final linear layer (W: C x D, b: C)."""

    features: torch.Tensor   # N x D penultimate features
    logits: torch.Tensor     # N x C
    labels: torch.Tensor     # N ground-truth class indices
    weight: torch.Tensor     # C x D
    bias: torch.Tensor       # C
    validation: Validation | None = field(default=None, repr=False)

    def subset(self, rows: torch.Tensor) -> FitData:
        """The same head with only the given training rows (and no validation data)."""
        return replace(self, features=self.features[rows], logits=self.logits[rows], labels=self.labels[rows],
                       validation=None)

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.weight.shape[1])


@dataclass
class Validation:
    """In-distribution data for choosing hyperparameters, never the OOD sets that are reported.

    Candidates fit on `train`; they are judged by the AUROC of `inliers` (held-out in-distribution images)
    against `outliers` (synthetic corruptions of those same images); each is a (features, logits) pair.
    """

    train: FitData
    inliers: tuple[torch.Tensor, torch.Tensor]
    outliers: tuple[torch.Tensor, torch.Tensor]


class Detector(ABC):
    """A feature/logit-space OOD detector. `fit` returns self; `score` gives N floats, higher = more OOD."""

    name: ClassVar[str]

    def fit(self, data: FitData) -> Detector:
        """Most logit-based detectors need no fitting; those that do override this."""
        return self

    @abstractmethod
    def score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """N x D features and N x C logits -> N scores on the same device (higher = more OOD)."""

    def params(self) -> dict[str, object]:
        """Hyperparameters worth reporting next to the results (chosen ones included)."""
        return {}


class InputDetector(ABC):
    """A detector that needs gradients through the classifier, so it scores preprocessed images."""

    name: ClassVar[str]

    def fit(self, data: FitData) -> InputDetector:
        return self

    @abstractmethod
    def score_inputs(self, classifier: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W preprocessed images -> N scores (higher = more OOD). `classifier(x)` -> (features,
        logits), as `pipeline.model.classifier.FeatureClassifier` returns."""

    def params(self) -> dict[str, object]:
        return {}


AnyDetector = Detector | InputDetector


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """C x D mean feature of each class (every class must occur)."""
    return torch.stack([features[labels == c].mean(dim=0) for c in range(num_classes)])
