"""In-distribution validation data for the detectors that choose their own settings (`ood.detectors.tuned`).

Held-out training images (or --id-val) against synthetic outliers made from them (patch-shuffled and
colour-channel-rotated copies), never the OOD sets that are reported.
"""

from __future__ import annotations

import torch

from pipeline.errors import UserError
from pipeline.evaluation.cache import FeatureCache
from pipeline.evaluation.datasets import OUTLIER_TRANSFORMS, ImageSet
from pipeline.ood.detectors import FitData, Validation


def held_out_rows(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """A stratified random `fraction` of the row indices (at least one row per class is kept for fitting)."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for c in torch.unique(labels):
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        rows.append(members[: min(int(round(fraction * len(members))), len(members) - 1)])
    return torch.sort(torch.cat(rows)).values


def build_validation(cache: FeatureCache, train: FitData, train_set: ImageSet, id_val: ImageSet | None,
                     fraction: float, seed: int) -> tuple[Validation, dict[str, object]]:
    """In-distribution validation data for the tuned detectors (see the module docstring)."""
    if id_val is None:
        held = held_out_rows(train.labels.cpu(), fraction, seed)
        if len(held) < 2:
            raise UserError(f"--id-train is too small to hold out {fraction:.0%} for choosing settings; "
                            "pass --id-val or a larger --val-fraction")
        keep = torch.ones(len(train.labels), dtype=torch.bool)
        keep[held] = False
        inlier_set = ImageSet(f"{train_set.name}.held-out", [train_set.paths[i] for i in held.tolist()])
        fit_on = train.subset(torch.nonzero(keep).flatten().to(train.labels.device))
        source = f"{len(held)} held-out training images ({fraction:.0%}, seed {seed})"
    else:
        inlier_set, fit_on = id_val, train.subset(torch.arange(len(train.labels), device=train.labels.device))
        source = f"{len(id_val.paths)} images of {id_val.name}"
    device = train.features.device
    inliers = tuple(t.to(device) for t in cache.features(inlier_set)[:2])     # features, logits
    transformed = [cache.features(inlier_set, name)[:2] for name in OUTLIER_TRANSFORMS]
    outliers = tuple(torch.cat(parts).to(device) for parts in zip(*transformed, strict=True))
    described = {"inliers": source, "outliers": f"{' + '.join(OUTLIER_TRANSFORMS)} copies of the inliers",
                 "fit_rows": len(fit_on.labels)}
    return Validation(fit_on, inliers, outliers), described

