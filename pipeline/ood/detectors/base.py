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
from pathlib import Path
from typing import ClassVar

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from pipeline.errors import UserError
from pipeline.ood.nero import relevance


def read_tensors(path: Path, device: str = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file of an artifact, or a one-line error: missing, truncated or
    not a safetensors file, or holding NaN or infinity (no detector can score with those)."""
    if not path.is_file():
        raise UserError(f"artifact file {path} is missing; refit the artifact with `nero fit`")
    try:
        with safe_open(str(path), "pt", device=device) as file:
            metadata = file.metadata() or {}
            tensors = {name: file.get_tensor(name) for name in file.keys()}   # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError) as error:
        raise UserError(f"artifact file {path} is damaged ({error}); refit the artifact with `nero fit`") from None
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise UserError(f"artifact file {path} holds NaN or infinity in {name!r}; refit it with `nero fit`")
    return tensors, metadata


# A combined detector's parts are made comparable by one rule (relevance-ensemble, relevance-patch): each part
# fitted on the training rows but a held-out HELD_OUT share, its scale the SCALE_QUANTILE of its scores there.
HELD_OUT = 0.2
SCALE_QUANTILE = 0.95


def held_out_scale(scores: torch.Tensor) -> float:
    """A part's scale from its scores of held-out training rows: a typical high in-distribution value."""
    return float(torch.quantile(scores.double().cpu(), SCALE_QUANTILE))


@dataclass
class FitData:
    """In-distribution training data and the classifier's final linear layer (W: C x D, b: C)."""

    features: torch.Tensor   # N x D penultimate features
    logits: torch.Tensor     # N x C
    labels: torch.Tensor     # N ground-truth class indices
    weight: torch.Tensor     # C x D
    bias: torch.Tensor       # C
    validation: Validation | None = field(default=None, repr=False)
    # In-distribution views without a label (windows a pan shows that no clean class holds): detectors that
    # need no labels add them to their reference set (relevance-kNN's bank); M x D features.
    unlabelled: torch.Tensor | None = field(default=None, repr=False)
    # The patch features of the training rows (N x P x C) and of the unlabelled ones (M x P x C), where the
    # detector needs them (relevance-patch)
    patches: torch.Tensor | None = field(default=None, repr=False)
    unlabelled_patches: torch.Tensor | None = field(default=None, repr=False)

    def subset(self, rows: torch.Tensor) -> FitData:
        """The same head with only the given training rows (and no validation data)."""
        patches = None if self.patches is None else self.patches[torch.as_tensor(rows, device=self.patches.device)]
        return replace(self, features=self.features[rows], logits=self.logits[rows], labels=self.labels[rows],
                       patches=patches, validation=None)

    def held_out_split(self, share: float = HELD_OUT, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(fit rows, held-out rows): a seeded random `share` of the training rows held out, at least one."""
        order = torch.randperm(len(self.features), generator=torch.Generator().manual_seed(seed))
        cut = len(order) - max(1, int(share * len(order)))
        return order[:cut].to(self.features.device), order[cut:].to(self.features.device)

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


@dataclass
class RelevanceScore:
    """A live detector's score of a batch, split over the feature neurons so that the alert can say why.

    `neurons` rows sum to `score` (each detector's docstring gives its split); `parts` are the calibrated
    parts of a combined score; `nearest` names the training row nearest each frame, where the detector has
    one (the explanation shows that training window); `patches` where the detector scores patch features, each
    patch's share of its part (where in the frame the evidence lies).
    """

    score: torch.Tensor                        # N, higher = more OOD
    neurons: torch.Tensor                      # N x D: each neuron's share of the score (signed)
    parts: dict[str, torch.Tensor] = field(default_factory=dict)   # name -> N
    nearest: torch.Tensor | None = None        # N: bank row of the nearest training window
    patches: torch.Tensor | None = None        # N x P: each patch's share of the patch part


class RelevanceDetector(Detector):
    """A detector the live monitor can alert on: it scores NERO's relevance vectors, which the monitor computes
    once per frame for all scores, and it is stored in the artifact (`save`, `load`)."""

    def fit(self, data: FitData) -> RelevanceDetector:
        self.weight, self.bias = data.weight.float(), data.bias.float()
        return self

    def score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        full = relevance(features.float(), self.weight.to(features.device), self.bias.to(features.device))
        return self.score_relevance(full, features).score

    @abstractmethod
    def score_relevance(self, relevance_full: torch.Tensor, features: torch.Tensor,
                        patches: torch.Tensor | None = None) -> RelevanceScore:
        """N x (D+1) NERO relevance (neurons, then bias), N x D features and, for the detectors that use them,
        N x P x C patch features -> the score and its split."""

    def window(self, row: int) -> tuple[str, int] | None:
        """(name, class index) of the training window at `RelevanceScore.nearest` row `row`, where known."""
        return None

    @abstractmethod
    def save(self, directory: Path) -> dict:
        """Write the fitted state into an artifact folder; returns its manifest entry."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, settings: dict, weight: torch.Tensor, bias: torch.Tensor) -> RelevanceDetector:
        """The detector `save` wrote, for a classifier head (weight C x D, bias C) on the head's device."""


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
