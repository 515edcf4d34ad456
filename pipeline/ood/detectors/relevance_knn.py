"""Relevance kNN: score = the distance from a frame's L2-normalised neuron relevance vector R(a) (bias
excluded, as NERO's distance term) to its k-th nearest normalised training relevance vector.

An extension of NERO (Chhetri et al., MICCAI 2025) in the manner of deep-nearest-neighbour OOD detection
(Sun et al., ICML 2022): instead of one centroid per class, the whole training set of relevance vectors is
the reference, so multi-modal classes need no clustering. For unit vectors the Euclidean distance ranks
exactly as the cosine distance (||u - v||^2 = 2 - 2 cos). Same FAISS index as `knn`.

The one implementation for `nero eval` and the live monitor: `nero fit` stores the training bank in the
artifact (fp16, `save`), the monitor loads it (`load`) and scores the relevance vectors NERO's pass has
already computed (`score_relevance`), so a frame's relevance is computed once for both scores. k = 1 in the
artifact: chosen on in-distribution validation for the bundled model (docs/RESULTS.md).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from pipeline.errors import UserError
from pipeline.ood.detectors.base import FitData
from pipeline.ood.detectors.knn import KNN
from pipeline.ood.index import NeighbourIndex
from pipeline.ood.nero import relevance

BANK_FILE = "relevance_bank.safetensors"
ARTIFACT_K = 1


def relevance_embedding(relevance_full: torch.Tensor) -> torch.Tensor:
    """N x (D+1) relevance (neurons, then bias) -> N x D unit vectors of the neuron relevance."""
    return F.normalize(relevance_full[:, :-1].float(), dim=1)


class RelevanceKNN(KNN):
    name = "relevance-knn"

    def fit(self, data: FitData) -> RelevanceKNN:
        self.weight, self.bias = data.weight.float(), data.bias.float()
        return super().fit(data)

    def embed(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight.to(features.device), self.bias.to(features.device)
        return relevance_embedding(relevance(features.float(), weight, bias))

    def score_relevance(self, relevance_full: torch.Tensor) -> torch.Tensor:
        """The score of rows whose NERO relevance (N x (D+1)) is already computed."""
        return self.index.kth_distance(relevance_embedding(relevance_full), self.k)

    @classmethod
    def from_bank(cls, bank: torch.Tensor, k: int, weight: torch.Tensor, bias: torch.Tensor) -> RelevanceKNN:
        """A detector over unit relevance vectors rounded to fp16 as the artifact stores them, so fit and
        serve see the same bank; `weight` and `bias` are the classifier's head."""
        detector = cls(k=min(k, len(bank)))
        detector.weight, detector.bias = weight.float(), bias.float()
        detector.index = NeighbourIndex(bank.half().float())
        return detector

    def save(self, directory: Path) -> dict:
        """Write the bank into an artifact folder; returns the manifest entry (threshold added by the caller)."""
        save_file({"bank": self.index.bank.half().cpu().contiguous()}, str(directory / BANK_FILE))
        return {"k": self.k, "bank": BANK_FILE}

    @classmethod
    def load(cls, directory: Path, settings: dict, weight: torch.Tensor, bias: torch.Tensor) -> RelevanceKNN:
        path = directory / settings["bank"]
        if not path.is_file():
            raise UserError(f"artifact {directory} has no {settings['bank']}; refit it with `nero fit`")
        return cls.from_bank(load_file(str(path))["bank"].to(weight.device), settings["k"], weight, bias)
