"""Pixel heatmaps of NERO's neuron relevance: one LRP pass per batch of frames (rules: pipeline.explain.lrp).

Thread safety: while a map is computed, canonizers rewrite the model's weights and hooks sit on its layers
(both undone on exit). Never share the classifier with a thread that runs it concurrently; give the
explainer its own copy (`copy.deepcopy`), as `pipeline.explain.worker` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pipeline.explain.lrp import nero_composite
from pipeline.model.classifier import FeatureClassifier
from pipeline.model.preprocess import Preprocess, content_box


@dataclass
class Heatmap:
    """Pixel relevance of one frame, at the model's input resolution, and where it sits in the frame."""

    relevance: np.ndarray     # size x size float32, summed over colour channels; + supports, - contradicts
    box: tuple[int, int, int, int]  # (top, bottom, left, right) of the frame region the model saw
    total: float              # sum of pixel relevance
    feature_total: float      # sum of NERO's neuron relevance at the feature layer (= 1 - R_b)
    feature_l1: float         # sum of |neuron relevance|: the scale to judge a difference of totals by
    probs: np.ndarray         # class probabilities of this forward pass

    @property
    def conservation_error(self) -> float:
        """|pixel total - feature total| / feature L1 (the total itself can be near 0 when R_b is near 1)."""
        return abs(self.total - self.feature_total) / max(self.feature_l1, 1e-12)


class HeatmapExplainer:
    """Computes pixel heatmaps for uint8 RGB frames with a classifier it uses exclusively (see module doc)."""

    def __init__(self, classifier: FeatureClassifier, preprocess: Preprocess) -> None:
        self.classifier = classifier
        self.preprocess = preprocess
        self.composite = nero_composite(classifier, preprocess)

    @property
    def device(self) -> torch.device:
        return next(self.classifier.parameters()).device

    def __call__(self, frames: Sequence[np.ndarray]) -> list[Heatmap]:
        tensors = [torch.from_numpy(np.ascontiguousarray(frame)).to(self.device) for frame in frames]
        inputs = self.preprocess(tensors).requires_grad_(True)
        captured: dict[str, torch.Tensor] = {}

        def keep_feature_relevance(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            args[0].register_hook(lambda grad: captured.__setitem__("features", grad))

        # Registered before the composite's hooks, so it sees the head's real input, whose gradient under
        # the LRP hooks is the relevance arriving at the feature layer.
        handle = self.classifier.head.register_forward_pre_hook(keep_feature_relevance)
        try:
            with torch.enable_grad(), self.composite.context(self.classifier) as model:
                _, logits, _ = model(inputs)
                probs = torch.softmax(logits.detach(), dim=1)
                (pixels,) = torch.autograd.grad(logits, inputs, grad_outputs=probs)
        finally:
            handle.remove()
        maps = pixels.sum(dim=1).cpu().numpy()
        features = captured["features"].double()
        totals, norms = features.sum(dim=1).tolist(), features.abs().sum(dim=1).tolist()
        boxes = [self._box(frame) for frame in tensors]
        rows = zip(maps, boxes, totals, norms, probs.cpu().numpy(), strict=True)
        return [Heatmap(m, box, float(m.sum(dtype=np.float64)), total, norm, p)
                for m, box, total, norm, p in rows]

    def _box(self, frame: torch.Tensor) -> tuple[int, int, int, int]:
        if self.preprocess.crop_content:
            return content_box(frame)
        return 0, int(frame.shape[0]), 0, int(frame.shape[1])
