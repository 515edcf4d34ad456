"""Features (and ODIN's input-gradient scores), computed once per model and image set and cached on disk.

Keyed by the weights' sha256, the preprocessing and the image files, so a rerun with other detectors or
another output folder costs no forward pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from pipeline.config import Config
from pipeline.evaluation.datasets import OUTLIER_TRANSFORMS, ImageSet
from pipeline.media.images import read_rgb
from pipeline.model.backend import Forward
from pipeline.model.bundle import configured_model
from pipeline.model.classifier import FeatureClassifier, file_sha256
from pipeline.model.features import extract_features, extract_video_features
from pipeline.model.preprocess import Preprocess
from pipeline.ood.detectors import InputDetector

OUTPUTS = ("features", "logits", "patches")   # what a cached file holds per image (caches written before
# the patch features were named otherwise, so they are not read)


class Transformed(torch.nn.Module):
    """The classifier (or another forward of it) seen through an input transform (for the synthetic validation
    outliers)."""

    def __init__(self, classifier: FeatureClassifier | Forward,
                 transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.classifier = classifier
        self.transform = transform

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.classifier(self.transform(x))


class FeatureCache:
    """Per-model, per-image-set cache of features, logits, patch features (float16) and input-detector scores
    (safetensors files)."""

    def __init__(self, directory: Path, classifier: FeatureClassifier, preprocess: Preprocess, model_key: str,
                 device: torch.device | str, batch_size: int = 32) -> None:
        self.directory = Path(directory)
        self.classifier = classifier
        self.preprocess = preprocess
        self.model_key = model_key
        self.device = device
        self.batch_size = batch_size

    def _file(self, kind: str, paths: Sequence[Path]) -> Path:
        digest = hashlib.sha256(f"{self.model_key}|{kind}".encode())
        for path in paths:
            stat = Path(path).stat()
            digest.update(f"|{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return self.directory / f"{kind}-{digest.hexdigest()[:20]}.safetensors"

    def _cached(self, kind: str, paths: Sequence[Path],
                compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        file = self._file(kind, paths)
        if file.is_file():
            return load_file(str(file))
        tensors = {name: t.contiguous() for name, t in compute().items()}
        self.directory.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(file))
        return tensors

    def features(self, image_set: ImageSet, transform: str | None = None) -> tuple[torch.Tensor, ...]:
        """(features N x D, logits N x C, patch features N x P x C') of a set, optionally through one of
        OUTLIER_TRANSFORMS."""
        model, label = self.classifier, image_set.name
        if transform is not None:
            model, label = Transformed(self.classifier, OUTLIER_TRANSFORMS[transform]), f"{label}.{transform}"

        def compute() -> dict[str, torch.Tensor]:
            return dict(zip(OUTPUTS, extract_features(model, self.preprocess, image_set.paths, self.batch_size,
                                                      self.device, desc=label), strict=True))

        tensors = self._cached(f"outputs{'.' + transform if transform else ''}", image_set.paths, compute)
        return tuple(tensors[name] for name in OUTPUTS)

    def video_features(self, clip: Path) -> tuple[torch.Tensor, ...]:
        """(features, logits, patch features) of every decoded frame of a video file, in order."""

        def compute() -> dict[str, torch.Tensor]:
            return dict(zip(OUTPUTS, extract_video_features(self.classifier, self.preprocess, clip,
                                                            self.batch_size, self.device), strict=True))

        tensors = self._cached("video-outputs", [clip], compute)
        return tuple(tensors[name] for name in OUTPUTS)

    def input_scores(self, detector: InputDetector, image_set: ImageSet) -> torch.Tensor:
        """An input-gradient detector's scores of a set, batch by batch through the classifier."""
        settings = ",".join(f"{k}={v}" for k, v in sorted(detector.params().items()))

        def compute() -> dict[str, torch.Tensor]:
            scores = []
            paths = image_set.paths
            with tqdm(total=len(paths), desc=f"{detector.name} {image_set.name}", unit="img", leave=False,
                      disable=None) as bar:
                for start in range(0, len(paths), self.batch_size):
                    chunk = paths[start:start + self.batch_size]
                    frames = [torch.from_numpy(read_rgb(path)).to(self.device) for path in chunk]
                    scores.append(detector.score_inputs(self.classifier, self.preprocess(frames)).cpu())
                    bar.update(len(chunk))
            return {"scores": torch.cat(scores).float()}

        return self._cached(f"{detector.name}[{settings}]", image_set.paths, compute)["scores"]


def model_for(config: Config, device: torch.device | str) -> tuple[FeatureClassifier, Preprocess, str]:
    """The configured classifier and preprocessing, and the cache key that identifies them."""
    classifier, preprocess, weights = configured_model(config, str(device))
    p = config.preprocess
    key = f"{config.model.arch}|{file_sha256(weights)}|{p.size}|{p.mean}|{p.std}|{p.crop_content}"
    return classifier, preprocess, key

