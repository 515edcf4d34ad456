"""The score the live monitor alerts on: NERO itself, or relevance-kNN, chosen by the config key `detector`.

relevance-knn (pipeline/detectors/relevance_knn.py) is the distance from a frame's L2-normalised neuron
relevance to the nearest normalised relevance vector of the training set. For the bundled model it validated
best among the relevance-space detectors on in-distribution data (docs/RESULTS.md), so it is the default.
Both scores come from the same relevance vector, so the explanation (nearest class, score terms, deviating
neurons) describes what raised either of them.

`nero fit` writes what each needs: NERO's arrays, and the training relevance bank (fp16) with its own
threshold, set by the same 95%-of-validation rule.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from pipeline.config import DETECTORS
from pipeline.detectors.knn import NeighbourIndex
from pipeline.errors import UserError
from pipeline.nero import NeroTerms

BANK_FILE = "relevance_bank.safetensors"
KNN_K = 1   # chosen on in-distribution validation for the bundled model (docs/RESULTS.md)


def normalised_relevance(terms: NeroTerms) -> torch.Tensor:
    """N x D unit vectors: the neuron relevance, bias excluded (NERO's distance term uses the same)."""
    return F.normalize(terms.relevance[:, :-1].float(), dim=1)


class RelevanceKNN:
    """k-th nearest-neighbour distance in relevance space, over the bank `nero fit` stored."""

    def __init__(self, bank: torch.Tensor, k: int = KNN_K) -> None:
        self.bank = bank.half().float()      # what is stored, so fit and serve see the same vectors
        self.k = min(k, len(bank))
        self.index = NeighbourIndex(self.bank)

    def __call__(self, terms: NeroTerms) -> torch.Tensor:
        return self.index.kth_distance(normalised_relevance(terms), self.k)

    def save(self, directory: Path) -> dict:
        save_file({"bank": self.bank.half().cpu().contiguous()}, str(directory / BANK_FILE))
        return {"k": self.k, "bank": BANK_FILE}

    @classmethod
    def load(cls, directory: Path, settings: dict, device: torch.device) -> RelevanceKNN:
        path = directory / settings["bank"]
        if not path.is_file():
            raise UserError(f"artifact {directory} has no {settings['bank']}; refit it with `nero fit`")
        return cls(load_file(str(path))["bank"].to(device), settings["k"])


def detector_settings(manifest: dict, detector: str, artifact: Path) -> dict:
    """The manifest's entry for `detector` (threshold, and what it needs), or a clear refusal."""
    if detector not in DETECTORS:
        raise UserError(f"config key 'detector' must be one of {', '.join(DETECTORS)}, got {detector!r}")
    fitted = manifest.get("detectors", {"nero": {"threshold": manifest["threshold"]}})
    if detector not in fitted:
        raise UserError(f"artifact {artifact} was fitted without {detector}; refit it with `nero fit`")
    return fitted[detector]
