"""Relevance ensemble: score = ( knn(r, a) / s_knn + maha(r) / s_maha ) / 2, the mean of relevance-kNN and
relevance Mahalanobis, each divided by its own in-distribution scale.

Two questions about the same relevance vector: is a training window near (`relevance_knn`, local), and is
the pattern a plausible draw of its class (`relevance_mahalanobis`, global, weighing rare directions)? Each
misses outliers the other catches (docs/RESULTS.md: kNN the capsule images, Mahalanobis the laparoscopic
frames), and on in-distribution validation against synthetic outliers the mean beat both parts. The scales
make the parts comparable: s = the 95th percentile of a part's scores on a held-out 20% of the training rows
(seeded), the part fitted on the other 80%; then both parts are refitted on every row. A Mahalanobis score
of its own training rows would be no scale at all: with D = 1280 and 2,688 rows the fit nearly interpolates
them (measured: their scores sat far below held-out ones, and the mean became Mahalanobis alone).

The explanation keeps both parts (`parts`) and the neurons' shares, which add up to the score.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.ood.detectors.base import FitData, RelevanceDetector, RelevanceScore, held_out_scale
from pipeline.ood.detectors.relevance_knn import RelevanceKNN
from pipeline.ood.detectors.relevance_mahalanobis import RelevanceMahalanobis


class RelevanceEnsemble(RelevanceDetector):
    name = "relevance-ensemble"
    combined_by = "mean"     # how `parts` make the score (the explanation's figures say so)

    def __init__(self, k: int = 1, feature_weight: float = 0.5) -> None:
        self.k, self.feature_weight = k, feature_weight

    def _parts(self) -> tuple[RelevanceKNN, RelevanceMahalanobis]:
        return RelevanceKNN(self.k, self.feature_weight), RelevanceMahalanobis()

    def fit(self, data: FitData) -> RelevanceEnsemble:
        super().fit(data)
        fit_rows, held = data.held_out_split()
        self.scales = {}
        for part in self._parts():
            held_scores = part.fit(data.subset(fit_rows)).score(data.features[held], data.logits[held])
            self.scales[part.name] = held_out_scale(held_scores)
        self.knn, self.mahalanobis = (part.fit(data) for part in self._parts())
        return self

    def score_relevance(self, relevance_full: torch.Tensor, features: torch.Tensor,
                        patches: torch.Tensor | None = None) -> RelevanceScore:
        found = [(part.name, part.score_relevance(relevance_full, features)) for part in (self.knn, self.mahalanobis)]
        parts = {name: result.score / self.scales[name] for name, result in found}
        neurons = sum(result.neurons / self.scales[name] for name, result in found) / len(found)
        return RelevanceScore(sum(parts.values()) / len(parts), neurons, parts, found[0][1].nearest)

    def params(self) -> dict[str, object]:
        return {"k": self.k, "feature_weight": self.feature_weight,
                "scales": {name: round(scale, 6) for name, scale in getattr(self, "scales", {}).items()}}

    def window(self, row: int) -> tuple[str, int] | None:
        return self.knn.window(row)

    def save(self, directory: Path) -> dict:
        return {"knn": self.knn.save(directory), "mahalanobis": self.mahalanobis.save(directory),
                "scales": self.scales}

    @classmethod
    def load(cls, directory: Path, settings: dict, weight: torch.Tensor, bias: torch.Tensor) -> RelevanceEnsemble:
        knn = RelevanceKNN.load(directory, settings["knn"], weight, bias)
        detector = cls(knn.k, knn.feature_weight)
        detector.weight, detector.bias = weight.float(), bias.float()
        detector.knn = knn
        detector.mahalanobis = RelevanceMahalanobis.load(directory, settings["mahalanobis"], weight, bias)
        detector.scales = {name: float(scale) for name, scale in settings["scales"].items()}
        return detector
