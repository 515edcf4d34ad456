"""Patch kNN: score = (1/P) sum_p min_b || x_p - b ||_2, the mean over a frame's P patch descriptors of each
one's distance to the nearest in-distribution patch descriptor b of the bank.

The descriptors are mid-level feature maps on a 7 x 7 grid (`pipeline.model.classifier.patch_grid`): local
texture and colour, which the pooled feature layer averages away. PatchCore (Roth et al., "Towards Total
Recall in Industrial Anomaly Detection", CVPR 2022) scores a memory bank of such patches too, with the
maximum over patches. The mean is used here: a frame that is wholly another scene (a laparoscopic view, a
capsule image, an X-ray) departs everywhere, while an in-distribution frame may hold one odd patch (a
reflection, a dye spot, burned-in text). At the alert threshold for 1 false alarm an hour of the calibration
video, the mean put 43.9% of the synthetic validation outliers over it, the maximum 9.8%
(`scripts/live_detector_check.py`); on the demo clip the maximum missed the laparoscopic segment.

The bank is a seeded random sample of `bank_size` patch descriptors of the training and unlabelled windows
(4,000 of 288,316 for the bundled model): enough for the same separation as 10,000 (measured as above), at
49 x 4,000 distances a frame (0.7 ms a frame on the 2-core CPU). Stored in float16, as it is searched.
Higher = more OOD. It needs patch features, so it is a part of `relevance-patch`, not a detector alone.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from pipeline.ood.detectors.base import read_tensors
from pipeline.ood.index import QUERY_CHUNK

BANK_FILE = "patch_bank.safetensors"
BANK_SIZE = 4000
SEED = 0


class PatchKNN:
    name = "patch-knn"

    def __init__(self, bank_size: int = BANK_SIZE) -> None:
        if bank_size < 1:
            raise ValueError(f"patch-knn needs a bank of at least one patch, got {bank_size}")
        self.bank_size = bank_size

    def fit(self, patches: torch.Tensor) -> PatchKNN:
        """N x P x C patch descriptors of in-distribution images -> a bank of `bank_size` of them."""
        rows = patches.reshape(-1, patches.shape[-1])
        chosen = torch.randperm(len(rows), generator=torch.Generator().manual_seed(SEED))[: self.bank_size]
        return self._with_bank(rows[chosen.to(rows.device)])

    def _with_bank(self, bank: torch.Tensor) -> PatchKNN:
        self.bank = bank.half().float()          # as the artifact stores it: fit = serve
        self.bank_norms = self.bank.square().sum(dim=1)
        return self

    def distances(self, patches: torch.Tensor) -> torch.Tensor:
        """N x P x C patch descriptors -> N x P distances to the nearest bank descriptor."""
        count, grid, channels = patches.shape
        bank, norms = self.bank.to(patches.device), self.bank_norms.to(patches.device)
        nearest = []
        for queries in patches.reshape(-1, channels).split(QUERY_CHUNK):   # a calibration video at once too
            queries = queries.float()
            # |q - b|^2 = |q|^2 + |b|^2 - 2 q.b, one matrix product; rounding can take it a hair below zero
            squared = torch.addmm(norms, queries, bank.T, alpha=-2).amin(dim=1) + queries.square().sum(dim=1)
            nearest.append(squared.clamp_min_(0).sqrt_())
        return torch.cat(nearest).reshape(count, grid)

    def score(self, patches: torch.Tensor) -> torch.Tensor:
        return self.distances(patches).mean(dim=1)

    def save(self, directory: Path) -> dict:
        save_file({"bank": self.bank.half().cpu().contiguous()}, str(directory / BANK_FILE))
        return {"bank": BANK_FILE, "bank_size": len(self.bank)}

    @classmethod
    def load(cls, directory: Path, settings: dict, device: torch.device | str) -> PatchKNN:
        tensors, _ = read_tensors(directory / settings["bank"], str(device))
        return cls(settings["bank_size"])._with_bank(tensors["bank"])
