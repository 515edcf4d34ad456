"""Everything a command needs to score frames: the classifier, its preprocessing and the fitted artifact.

`load_bundle(config)` is the one place that checks they belong together (weights checksum, preprocessing),
so `score`, `replay`, `live`, `eval` and `explain` cannot pair a model with another model's centroids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.config import Config
from pipeline.errors import UserError
from pipeline.model.artifact import Artifact, detector_settings, load_artifact
from pipeline.model.classifier import FeatureClassifier, file_sha256, load_classifier
from pipeline.model.preprocess import Preprocess
from pipeline.ood.detectors.relevance_knn import RelevanceKNN
from pipeline.ood.nero import NeroScorer, NeroTerms
from pipeline.ood.quality import quality_reasons


@dataclass
class Inference:
    """One scoring pass over a batch of frames."""

    probs: torch.Tensor            # N x C class probabilities
    terms: NeroTerms               # `terms.score` is the configured detector's score; the rest is NERO's
    quality: list[str | None]      # per frame: why it is unusable (pipeline.ood.quality), or None


@dataclass
class Bundle:
    """The model side only: runtime settings (queues, batching, alerts, publishing) stay in the config."""

    arch: str
    device: torch.device
    classifier: FeatureClassifier
    preprocess: Preprocess
    artifact: Artifact
    detector: str                         # the score the monitor alerts on: nero | relevance-knn
    threshold: float                      # of that detector
    knn: RelevanceKNN | None = None       # set when the detector is relevance-knn

    @property
    def scorer(self) -> NeroScorer:
        return self.artifact.scorer

    @property
    def class_names(self) -> list[str]:
        return self.artifact.class_names

    @torch.no_grad()
    def infer(self, frames: torch.Tensor | list[torch.Tensor]) -> Inference:
        """uint8 RGB frames (N x H x W x 3, any device) -> probabilities, NERO terms and input quality.

        `terms.score` is the configured detector's score (compare it with `self.threshold`); the other terms
        are NERO's decomposition of the same relevance vector, which the explanation reports.
        """
        if isinstance(frames, torch.Tensor):
            frames = frames.to(self.device, non_blocking=True)
        else:
            frames = [frame.to(self.device, non_blocking=True) for frame in frames]
        inputs = self.preprocess(frames)
        features, logits = self.classifier(inputs)
        terms = self.scorer.terms(features.float())
        if self.knn is not None:
            terms.score = self.knn.score_relevance(terms.relevance)
        return Inference(torch.softmax(logits.float(), dim=1), terms, quality_reasons(self.preprocess.pixels(inputs)))


def preprocess_settings(config: Config) -> dict:
    """The preprocessing facts an artifact must share with the model that produced its features."""
    return {"size": config.preprocess.size, "mean": config.preprocess.mean, "std": config.preprocess.std}


def configured_weights(config: Config) -> Path:
    weights = config.resolve(config.model.weights)
    if not weights.is_file():
        raise UserError(f"model weights not found: {weights} (config key 'model.weights')")
    return weights


def configured_model(config: Config, device: torch.device | str) -> tuple[FeatureClassifier, Preprocess, Path]:
    """The configured classifier (eval mode, on `device`), its preprocessing, and its weights file."""
    weights = configured_weights(config)
    classifier = load_classifier(config.model.arch, weights, config.model.num_classes, device)
    settings = config.preprocess
    return classifier, Preprocess(settings.size, settings.mean, settings.std, settings.crop_content), weights


def load_bundle(config: Config, device: str | None = None, index_backend: str = "auto") -> Bundle:
    device = torch.device(device or config.torch_device())
    weights = configured_weights(config)
    artifact = load_artifact(config.resolve(config.artifact), file_sha256(weights), device, index_backend)
    fitted = artifact.manifest.get("preprocess", {})
    wanted = preprocess_settings(config)
    mismatched = [key for key in wanted if key in fitted and fitted[key] != wanted[key]]
    if mismatched:
        raise UserError(f"config preprocess.{mismatched[0]} = {wanted[mismatched[0]]} but artifact "
                        f"{artifact.path} was fitted with {fitted[mismatched[0]]}")
    if len(artifact.class_names) != config.model.num_classes:
        raise UserError(f"config model.num_classes = {config.model.num_classes} but artifact {artifact.path} "
                        f"has {len(artifact.class_names)} classes")
    settings = detector_settings(artifact.manifest, config.detector, artifact.path)
    scorer = artifact.scorer
    knn = RelevanceKNN.load(artifact.path, settings, scorer.weight, scorer.bias) \
        if config.detector == "relevance-knn" else None
    classifier, preprocess, _ = configured_model(config, device)
    return Bundle(config.model.arch, device, classifier, preprocess, artifact, config.detector,
                  float(settings["threshold"]), knn)
