"""OOD detectors behind one interface (`base.Detector`: fit, score; higher = more OOD), by name.

`PUBLISHED` is the NERO paper's comparison, in its table order; `EXTRA` adds baselines it did not run;
`EXTENSIONS` are our NERO variants, each choosing its settings on in-distribution validation data; `LIVE`
those of them the monitor can alert on.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.ood.detectors.ash import ASH
from pipeline.ood.detectors.base import AnyDetector, Detector, FitData, InputDetector, RelevanceDetector, Validation
from pipeline.ood.detectors.energy import Energy
from pipeline.ood.detectors.entropy import Entropy
from pipeline.ood.detectors.gen import GEN
from pipeline.ood.detectors.gradnorm import GradNorm
from pipeline.ood.detectors.knn import KNN
from pipeline.ood.detectors.mahalanobis import Mahalanobis
from pipeline.ood.detectors.maxlogit import MaxLogit
from pipeline.ood.detectors.msp import MSP
from pipeline.ood.detectors.neco import NECO
from pipeline.ood.detectors.nero import Nero
from pipeline.ood.detectors.nero_kmeans import NeroKMeans
from pipeline.ood.detectors.odin import ODIN
from pipeline.ood.detectors.react import ReAct
from pipeline.ood.detectors.relevance_ensemble import RelevanceEnsemble
from pipeline.ood.detectors.relevance_knn import RelevanceKNN
from pipeline.ood.detectors.relevance_mahalanobis import RelevanceMahalanobis
from pipeline.ood.detectors.relevance_patch import RelevancePatch
from pipeline.ood.detectors.tuned import Tuned
from pipeline.ood.detectors.vim import ViM
from pipeline.ood.nero import DEFAULT_K

__all__ = ["AnyDetector", "Detector", "RelevanceDetector", "FitData", "InputDetector", "Validation", "DETECTORS",
           "PUBLISHED", "EXTRA", "EXTENSIONS", "LIVE", "build_detector"]


def _nero_grid(data: FitData) -> list[dict[str, object]]:
    """k and PCA size as fractions of D (plus the reference k = 175), PCA capped by the training rows."""
    dim = data.feature_dim
    rows = len(data.validation.train.features) if data.validation is not None else len(data.features)
    ks = sorted({max(1, round(dim * f)) for f in (0.05, 0.1, 0.2, 0.35, 0.5)} | {min(DEFAULT_K, dim)})
    sizes = sorted({min(max(1, round(dim * f)), rows) for f in (0.1, 0.25, 0.5, 2 / 3)})
    return [{"k": k, "n_components": p} for k in ks for p in sizes]


def _nero_tuned() -> Tuned:
    return Tuned("nero-tuned", Nero, _nero_grid)


def _nero_kmeans() -> Tuned:
    return Tuned("nero-kmeans", NeroKMeans, lambda data: [{"clusters": m} for m in (2, 4, 8, 16)])


# Relevance alone (0) up to mostly features (0.75); the feature share is what validation trades against.
FEATURE_WEIGHTS = (0.0, 0.25, 0.5, 0.75)
NEIGHBOURS = (1, 5, 10, 20, 50)


def _knn_grid(data: FitData) -> list[dict[str, object]]:
    return [{"k": k, "feature_weight": w} for w in FEATURE_WEIGHTS for k in NEIGHBOURS]


def _relevance_knn() -> Tuned:
    return Tuned("relevance-knn", RelevanceKNN, _knn_grid)


def _relevance_ensemble() -> Tuned:
    return Tuned("relevance-ensemble", RelevanceEnsemble, _knn_grid)


DETECTORS: dict[str, Callable[[], AnyDetector]] = {
    "msp": MSP, "odin": ODIN, "energy": Energy, "entropy": Entropy, "maxlogit": MaxLogit,
    "mahalanobis": Mahalanobis, "vim": ViM, "neco": NECO, "react": ReAct, "gradnorm": GradNorm, "nero": Nero,
    "knn": KNN, "ash": ASH, "gen": GEN,
    "nero-tuned": _nero_tuned, "nero-kmeans": _nero_kmeans, "relevance-knn": _relevance_knn,
    "relevance-mahalanobis": RelevanceMahalanobis, "relevance-ensemble": _relevance_ensemble,
}
PUBLISHED = ("msp", "odin", "energy", "entropy", "maxlogit", "mahalanobis", "vim", "neco", "react",
             "gradnorm", "nero")
EXTRA = ("knn", "ash", "gen")
# The relevance detectors the live monitor can alert on (besides NERO): `nero fit` stores them in the artifact.
# relevance-patch also needs the patch features, so `nero eval` reports it as the artifact holds it (`live`).
LIVE: dict[str, type[RelevanceDetector]] = {
    "relevance-knn": RelevanceKNN, "relevance-mahalanobis": RelevanceMahalanobis,
    "relevance-ensemble": RelevanceEnsemble, "relevance-patch": RelevancePatch}
EXTENSIONS = ("nero-tuned", "nero-kmeans", "relevance-knn", "relevance-mahalanobis", "relevance-ensemble")

# The NERO reference runs NECO without the max-logit factor on ResNet-18 only.
ARCH_SETTINGS: dict[str, dict[str, Callable[[], AnyDetector]]] = {
    "resnet18": {"neco": lambda: NECO(maxlogit=False)},
}


def build_detector(name: str, arch: str | None = None) -> AnyDetector:
    """A fresh, unfitted detector; `arch` picks the reference's per-architecture setting where it has one."""
    if name not in DETECTORS:
        raise KeyError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}")
    return ARCH_SETTINGS.get(arch or "", {}).get(name, DETECTORS[name])()
