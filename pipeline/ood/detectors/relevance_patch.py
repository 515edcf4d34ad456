"""Relevance + patch evidence: score = max( knn(r, a) / s_knn, patch(x) / s_patch ), the larger of
relevance-kNN (`relevance_knn`) and patch kNN (`patch_knn`), each divided by its own in-distribution scale.

Two questions about a frame: does its neuron relevance lie near a training window's (the global pattern the
classifier's decision rests on), and does its texture and colour, patch by patch, lie near in-distribution
patches? Relevance alone let whole scenes from elsewhere pass: the demo clip's laparoscopic frames scored
below views of 11 minutes of in-distribution video, so at 1 false alarm an hour they never alerted. The
patch part puts them above every view of that video (docs/RESULTS.md, 2026-12-04). The larger of the two
decides, so a frame is as far out as its farthest evidence, and the explanation names which one it was.

Chosen as the live detectors were chosen, on in-distribution data only: the synthetic validation outliers
over each candidate's alert threshold for 1 false alarm an hour of the calibration video were relevance-kNN
20.6%, patch kNN alone 43.9%, the mean of the two parts 39.1%, this maximum 46.2%
(`scripts/live_detector_check.py`, docs/RESULTS.md).

The scales make the parts comparable, as in `relevance_ensemble`: s = the 95th percentile of a part's scores
on a held-out 20% of the training rows (seeded), the part fitted on the rest; then both parts are refitted on
every row. The explanation keeps both parts (`parts`), relevance-kNN's neuron shares over its scale (they
add up to the relevance part) and each patch's share of the patch part (`patches`: where in the frame).
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.errors import UserError
from pipeline.ood.detectors.base import FitData, RelevanceDetector, RelevanceScore, held_out_scale
from pipeline.ood.detectors.patch_knn import BANK_SIZE, PatchKNN
from pipeline.ood.detectors.relevance_knn import RelevanceKNN


class RelevancePatch(RelevanceDetector):
    name = "relevance-patch"
    combined_by = "max"      # how `parts` make the score (the explanation's figures say so)

    def __init__(self, k: int = 20, feature_weight: float = 0.75, bank_size: int = BANK_SIZE) -> None:
        self.k, self.feature_weight, self.bank_size = k, feature_weight, bank_size

    def _fit_parts(self, data: FitData) -> tuple[RelevanceKNN, PatchKNN]:
        if data.patches is None:
            raise UserError("relevance-patch needs the training images' patch features")
        patches = data.patches if data.unlabelled_patches is None else \
            torch.cat([data.patches, data.unlabelled_patches.to(data.patches.device)])
        return RelevanceKNN(self.k, self.feature_weight).fit(data), PatchKNN(self.bank_size).fit(patches)

    def fit(self, data: FitData) -> RelevancePatch:
        super().fit(data)
        fit_rows, held = data.held_out_split()
        knn, patch = self._fit_parts(data.subset(fit_rows))
        held_patches = data.patches[held.to(data.patches.device)]
        held_scores = {knn.name: knn.score(data.features[held], data.logits[held]),
                       patch.name: patch.score(held_patches)}
        self.scales = {name: held_out_scale(scores) for name, scores in held_scores.items()}
        self.knn, self.patch = self._fit_parts(data)
        return self

    def score_relevance(self, relevance_full: torch.Tensor, features: torch.Tensor,
                        patches: torch.Tensor | None = None) -> RelevanceScore:
        if patches is None:
            raise ValueError("relevance-patch scores patch features; none were given")
        found = self.knn.score_relevance(relevance_full, features)
        distances = self.patch.distances(patches) / self.scales[self.patch.name]
        parts = {self.knn.name: found.score / self.scales[self.knn.name], self.patch.name: distances.mean(dim=1)}
        return RelevanceScore(torch.maximum(*parts.values()), found.neurons / self.scales[self.knn.name], parts,
                              found.nearest, distances / distances.shape[1])

    def params(self) -> dict[str, object]:
        return {"k": self.k, "feature_weight": self.feature_weight, "bank_size": self.bank_size,
                "scales": {name: round(scale, 6) for name, scale in getattr(self, "scales", {}).items()}}

    def window(self, row: int) -> tuple[str, int] | None:
        return self.knn.window(row)

    def save(self, directory: Path) -> dict:
        return {"knn": self.knn.save(directory), "patch": self.patch.save(directory), "scales": self.scales}

    @classmethod
    def load(cls, directory: Path, settings: dict, weight: torch.Tensor, bias: torch.Tensor) -> RelevancePatch:
        knn = RelevanceKNN.load(directory, settings["knn"], weight, bias)
        patch = PatchKNN.load(directory, settings["patch"], weight.device)
        detector = cls(knn.k, knn.feature_weight, patch.bank_size)
        detector.weight, detector.bias = weight.float(), bias.float()
        detector.knn, detector.patch = knn, patch
        detector.scales = {name: float(scale) for name, scale in settings["scales"].items()}
        return detector
