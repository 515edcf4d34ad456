"""Relevance kNN: score = the distance from a frame's embedding e to the k-th nearest training embedding,

    e = [ sqrt(1 - w) * R(a) / ||R(a)||,  sqrt(w) * a / ||a|| ]     (w = feature_weight, 0 <= w < 1)

with R(a) NERO's neuron relevance at the feature layer (bias excluded, as NERO's distance term) and a the
penultimate features. w = 0 is pure relevance; w > 0 adds the feature evidence of deep-kNN (Sun et al., ICML
2022). e is a unit vector, and the squared distance to the k-th neighbour e' splits exactly over neurons:
score^2 = sum_i (1 - w)(r_i - r'_i)^2 + w (z_i - z'_i)^2, so neuron i's share of the score is its term / score.
An extension of NERO (Chhetri et al., MICCAI 2025): instead of one centroid per class, the whole training
set is the reference, so multi-modal classes need no clustering.

The bank is every training row, plus the unlabelled in-distribution rows when the fit data holds them
(`nero fit --bank`: windows of the training frames at any position and scale, whatever they hold, as a pan
shows them; the labelled windows are only clean polyp or mucosa views). On the bundled default, 4 such
windows per training frame (3,196) took the alert threshold for 1 false alarm per hour of in-distribution
video from 0.981 to 0.964 and the synthetic outliers over it from 19.8% to 21.0% (26.0% on another draw of
windows; docs/RESULTS.md).
`nero fit` stores the bank in the artifact (fp16) with each row's window name and class (the classifier's
prediction for an unlabelled row), so the explanation can show the nearest window. k and w are chosen on
in-distribution validation against synthetic outliers (`Tuned`, docs/RESULTS.md).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from pipeline.ood.detectors.base import FitData, RelevanceDetector, RelevanceScore, read_tensors
from pipeline.ood.index import NeighbourIndex
from pipeline.ood.nero import relevance

BANK_FILE = "relevance_bank.safetensors"


def relevance_embedding(relevance_full: torch.Tensor, features: torch.Tensor,
                        feature_weight: float = 0.0) -> torch.Tensor:
    """N x (D+1) relevance (neurons, then bias) and N x D features -> N x D unit vectors of the relevance
    (w = 0) or N x 2D unit vectors of relevance and features weighted by w."""
    neurons = F.normalize(relevance_full[:, :-1].float(), dim=1)
    if feature_weight == 0:
        return neurons
    return torch.cat([math.sqrt(1 - feature_weight) * neurons,
                      math.sqrt(feature_weight) * F.normalize(features.float(), dim=1)], dim=1)


class RelevanceKNN(RelevanceDetector):
    name = "relevance-knn"

    def __init__(self, k: int = 1, feature_weight: float = 0.0) -> None:
        if k < 1 or not 0 <= feature_weight < 1:
            raise ValueError(f"relevance-knn needs k >= 1 and 0 <= feature_weight < 1, got {k}, {feature_weight}")
        self.k = k
        self.feature_weight = float(feature_weight)
        self.ids: list[str] | None = None          # bank rows' training window names, when fitted by `nero fit`
        self.labels: torch.Tensor | None = None    # and their classes

    def fit(self, data: FitData) -> RelevanceKNN:
        super().fit(data)
        rows = data.features if data.unlabelled is None else torch.cat([data.features, data.unlabelled])
        embedding = relevance_embedding(relevance(rows.float(), self.weight.to(rows.device),
                                                  self.bias.to(rows.device)), rows, self.feature_weight)
        return self._with_bank(embedding)

    def _with_bank(self, bank: torch.Tensor) -> RelevanceKNN:
        self.k = min(self.k, len(bank))
        self.index = NeighbourIndex(bank.half().float())   # fp16, as the artifact stores it: fit = serve
        return self

    def score_relevance(self, relevance_full: torch.Tensor, features: torch.Tensor,
                        patches: torch.Tensor | None = None) -> RelevanceScore:
        embedding = relevance_embedding(relevance_full, features, self.feature_weight)
        distances, rows = self.index.search(embedding, self.k)
        score = distances[:, -1]
        squared = (embedding - self.index.bank.to(embedding.device).index_select(0, rows[:, -1])) ** 2
        dim = relevance_full.shape[1] - 1
        per_neuron = squared[:, :dim] + squared[:, dim:] if squared.shape[1] > dim else squared
        neurons = per_neuron / score.clamp_min(torch.finfo(score.dtype).tiny).unsqueeze(1)
        return RelevanceScore(score, neurons, {}, rows[:, 0])

    def params(self) -> dict[str, object]:
        return {"k": self.k, "feature_weight": self.feature_weight}

    def window(self, row: int) -> tuple[str, int] | None:
        if self.ids is None or self.labels is None:
            return None
        return self.ids[row], int(self.labels[row])

    @classmethod
    def from_bank(cls, bank: torch.Tensor, k: int, weight: torch.Tensor, bias: torch.Tensor,
                  feature_weight: float = 0.0, ids: list[str] | None = None,
                  labels: torch.Tensor | None = None) -> RelevanceKNN:
        """A detector over a bank of embeddings (`relevance_embedding` of the training rows); `ids` and
        `labels` name each row's training window and its class, for the explanation."""
        detector = cls(k, feature_weight)
        detector.weight, detector.bias = weight.float(), bias.float()
        detector.ids, detector.labels = ids, None if labels is None else labels.long()
        return detector._with_bank(bank)

    def save(self, directory: Path) -> dict:
        tensors = {"bank": self.index.bank.half().cpu().contiguous()}
        if self.labels is not None:
            tensors["labels"] = self.labels.cpu().to(torch.int32).contiguous()
        save_file(tensors, str(directory / BANK_FILE), metadata={"ids": json.dumps(self.ids)} if self.ids else None)
        return {"k": self.k, "feature_weight": self.feature_weight, "bank": BANK_FILE}

    @classmethod
    def load(cls, directory: Path, settings: dict, weight: torch.Tensor, bias: torch.Tensor) -> RelevanceKNN:
        tensors, metadata = read_tensors(directory / settings["bank"], str(weight.device))
        ids = json.loads(metadata["ids"]) if "ids" in metadata else None
        return cls.from_bank(tensors["bank"], settings["k"], weight, bias, settings.get("feature_weight", 0.0),
                             ids, tensors.get("labels"))
