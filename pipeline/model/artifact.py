"""A fitted NERO artifact: `centroids/NAME/manifest.json` + `arrays.safetensors` (+ the model weights).

The manifest records the sha256 of the model weights the centroids were fitted with; loading the artifact
against other weights is refused, since relevance vectors of another model lie nowhere near these centroids.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from pipeline.config import LIVE_DETECTORS
from pipeline.errors import UserError
from pipeline.ood.detectors.base import read_tensors
from pipeline.ood.nero import NeroScorer

MANIFEST_VERSION = 1   # of manifest.json; the messages have their own (pipeline.messages)
MANIFEST = "manifest.json"
ARRAYS = "arrays.safetensors"


@dataclass
class Artifact:
    path: Path
    manifest: dict[str, Any]
    scorer: NeroScorer

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["class_names"])

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"])


def _versions() -> dict[str, str]:
    import numpy

    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}
    try:
        import faiss

        versions["faiss"] = faiss.__version__
    except ImportError:
        pass
    return versions


def save_artifact(directory: str | Path, scorer: NeroScorer, **manifest: Any) -> Path:
    """Write the scorer's arrays and a manifest; `manifest` must hold class_names, threshold and model info."""
    for key in ("class_names", "threshold", "threshold_rule", "model"):
        if key not in manifest:
            raise ValueError(f"artifact manifest needs {key!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(scorer.arrays(), str(directory / ARRAYS))
    document = {
        "schema_version": MANIFEST_VERSION,
        "method": "NERO",
        "feature_dim": scorer.feature_dim,
        "n_components": scorer.n_components,
        "k": scorer.k,
        "lambda": scorer.lam,
        **manifest,
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (directory / MANIFEST).write_text(json.dumps(document, indent=2) + "\n")
    return directory


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no NERO artifact at {directory} (missing {MANIFEST}); run `nero fit` first") from None
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON: {error}") from None
    if manifest.get("schema_version") != MANIFEST_VERSION:
        raise UserError(f"{path} has schema version {manifest.get('schema_version')!r}; "
                        f"this nero-monitor reads version {MANIFEST_VERSION}")
    return manifest


def load_artifact(
    directory: str | Path,
    weights_sha256: str | None = None,
    device: torch.device | str = "cpu",
    index_backend: str = "auto",
) -> Artifact:
    """Load an artifact; with `weights_sha256`, refuse it unless it was fitted with exactly those weights."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    missing = [key for key in ("model", "class_names", "threshold", "lambda", "k") if key not in manifest]
    if missing or "sha256" not in manifest.get("model", {}):
        raise UserError(f"{directory / MANIFEST} lacks {', '.join(missing) or 'model.sha256'}: not a manifest "
                        "`nero fit` wrote; refit the artifact")
    fitted_with = manifest["model"]["sha256"]
    if weights_sha256 is not None and weights_sha256 != fitted_with:
        raise UserError(
            f"artifact {directory} was fitted for model weights {fitted_with[:12]}..., but the configured weights "
            f"are {weights_sha256[:12]}...; refit it with `nero fit` for this model"
        )
    arrays, _ = read_tensors(directory / ARRAYS)
    scorer = NeroScorer(**arrays, lam=manifest["lambda"], k=manifest["k"], device=device,
                        index_backend=index_backend)
    return Artifact(directory, manifest, scorer)


def detector_settings(manifest: dict, detector: str, artifact: Path) -> dict:
    """The manifest's entry for a live detector (its threshold, and what it needs), or a clear refusal."""
    if detector not in LIVE_DETECTORS:
        raise UserError(f"config key 'detector' must be one of {', '.join(LIVE_DETECTORS)}, got {detector!r}")
    fitted = manifest.get("detectors", {"nero": {"threshold": manifest["threshold"]}})
    if detector not in fitted:
        raise UserError(f"artifact {artifact} was fitted without {detector}; refit it with `nero fit`")
    return fitted[detector]
