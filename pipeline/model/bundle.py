"""Everything a command needs to score frames: the classifier, its preprocessing and the fitted artifact.

`load_bundle(config)` is the one place that checks they belong together (weights checksum, preprocessing),
so `score`, `replay`, `live`, `eval` and `explain` cannot pair a model with another model's centroids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pipeline.config import AlertConfig, Config
from pipeline.errors import UserError
from pipeline.media.images import mosaic_tile, read_rgb
from pipeline.media.yuv import YuvImage
from pipeline.model.artifact import Artifact, detector_settings, load_artifact
from pipeline.model.backend import Forward, forward_precision, make_forward
from pipeline.model.classifier import FeatureClassifier, file_sha256, load_classifier
from pipeline.model.preprocess import Preprocess
from pipeline.model.quantize import read_quantized
from pipeline.ood.alert import AlertRule
from pipeline.ood.detectors import LIVE
from pipeline.ood.detectors.base import RelevanceDetector, RelevanceScore
from pipeline.ood.nero import NeroScorer, NeroTerms
from pipeline.ood.operating_point import threshold_for_rate
from pipeline.ood.quality import quality_reasons

log = logging.getLogger(__name__)


@dataclass
class ModelPass:
    """One batch through the network, on the model's device: what the scoring needs from it. The monitor
    runs the network and the scoring in two threads (pipeline/stream/runner.py), so this crosses between
    them."""

    inputs: torch.Tensor           # N x 3 x S x S, normalised (the quality guard reads them)
    features: torch.Tensor         # N x D at the feature layer
    logits: torch.Tensor           # N x C
    patches: torch.Tensor          # N x P x C' patch features (relevance-patch's evidence)


@dataclass
class Inference:
    """One scoring pass over a batch of frames."""

    probs: torch.Tensor            # N x C class probabilities
    terms: NeroTerms               # `terms.score` is the configured detector's score; the rest is NERO's
    quality: list[str | None]      # per frame: why it is unusable (pipeline.ood.quality), or None
    relevance_score: RelevanceScore | None = None   # a relevance detector's split of `terms.score`


@dataclass
class Bundle:
    """The model side only: runtime settings (queues, batching, alerts, publishing) stay in the config."""

    arch: str
    device: torch.device
    classifier: FeatureClassifier
    preprocess: Preprocess
    artifact: Artifact
    detector: str                         # the score the monitor alerts on (config key `detector`)
    threshold: float                      # of that detector
    relevance_detector: RelevanceDetector | None = None   # None when the detector is NERO itself
    alert_threshold: float | None = None   # the operating point for alert.false_alarms_per_hour, if calibrated
    forward: Forward | None = None        # where the forward pass runs (model.backend); None: the classifier
    _mosaic: np.ndarray | None = field(default=None, repr=False)   # the bank's thumbnails, read when first needed
    _warmed_up_to: dict[tuple[int, int] | None, int] = field(default_factory=dict, repr=False)   # per frame
    # shape, the largest batch warm_up has run

    def alert_rule(self, alert: AlertConfig) -> AlertRule:
        """A fresh alert rule for one stream: the configured hysteresis over the calibrated alert threshold
        where there is one, else over the per-frame threshold."""
        return AlertRule(self.threshold, alert.on_count, alert.window, alert.off_after, alert.smoothing,
                         alert.smoothing_window, self.alert_threshold)

    @property
    def scorer(self) -> NeroScorer:
        return self.artifact.scorer

    @property
    def class_names(self) -> list[str]:
        return self.artifact.class_names

    @torch.no_grad()
    def infer(self, frames: torch.Tensor | list[torch.Tensor | YuvImage]) -> Inference:
        """uint8 RGB frames (N x H x W x 3, any device) or YUV frames -> probabilities, NERO terms and input
        quality.

        `terms.score` is the configured detector's score (compare it with `self.threshold`); the other terms
        are NERO's decomposition of the same relevance vector, which the explanation reports.
        """
        return self.score_pass(self.run_model(frames))

    @torch.no_grad()
    def run_model(self, frames: torch.Tensor | list[torch.Tensor | YuvImage]) -> ModelPass:
        """The first half of `infer`: preprocess and forward, results left on the model's device."""
        if isinstance(frames, torch.Tensor):
            frames = frames.to(self.device, non_blocking=True)
        else:
            frames = [frame.to(self.device, non_blocking=True) for frame in frames]
        inputs = self.preprocess(frames)
        return ModelPass(inputs, *(self.forward or self.classifier)(inputs))

    @torch.no_grad()
    def score_pass(self, model_pass: ModelPass) -> Inference:
        """The second half of `infer`: probabilities, the detector's score and NERO's terms, input quality."""
        terms, split = self.score_features(model_pass.features.float(), model_pass.patches)
        quality = quality_reasons(model_pass.inputs, self.preprocess.mean, self.preprocess.std)
        return Inference(torch.softmax(model_pass.logits.float(), dim=1), terms, quality, split)

    def score_features(self, features: torch.Tensor,
                       patches: torch.Tensor | None = None) -> tuple[NeroTerms, RelevanceScore | None]:
        """NERO's terms of these features with `terms.score` the configured detector's score, and a relevance
        detector's split of it (None for NERO itself); relevance-patch also scores the patch features."""
        terms = self.scorer.terms(features)
        split = None
        if self.relevance_detector is not None:
            split = self.relevance_detector.score_relevance(terms.relevance, features, patches)
            terms.score = split.score
        return terms, split

    def warm_up(self, max_batch: int, frame_shape: tuple[int, int] | None = None) -> None:
        """On a GPU, score frames of random pixels once at every batch size the forward will meet (powers of two
        up to `max_batch`), so that what it builds on first use (a CUDA graph per size, each checked on these
        frames; cuDNN's choice of kernels) is not paid by a stream's first frames. With `frame_shape` (the
        streams' height and width) the frames are YUV planes of that size, as a GPU model's sources deliver
        them, so the colour conversion and the resize from that size run too: CUDA loads a kernel when it is
        first launched, and the resize's weights are computed once per size. Once per bundle and shape: a
        bench that runs the monitor round after round times it only the first time, before its rounds. The
        CPU's backends build nothing per batch size."""
        if self.device.type != "cuda" or max_batch <= self._warmed_up_to.get(frame_shape, 0):
            return
        count = 1
        while True:
            self.infer(random_frames(min(count, max_batch), self.preprocess.size, self.device, frame_shape))
            if count >= max_batch:
                break
            count *= 2
        self._warmed_up_to[frame_shape] = max_batch

    def warm_up_thread(self) -> None:
        """On a GPU, score one frame of random pixels in the calling thread. torch gives each thread its own
        cuBLAS and cuDNN handles, made on the thread's first call, so the monitor's forward and score threads,
        which start after `warm_up`, would still pay for them on their first batch. On the lent H200 every
        run's score stage stalled once, early (inference maximum 79-213 ms against a median of 3.5-16 ms); this
        is meant to move that cost before the first frame. Not yet measured on a GPU."""
        if self.device.type == "cuda":
            self.infer(random_frames(1, self.preprocess.size, self.device))

    def thumbnail(self, row: int) -> np.ndarray | None:
        """The stored thumbnail of relevance-kNN bank row `row` (RGB), or None if the artifact has none."""
        settings = self.artifact.manifest.get("thumbnails")
        if settings is None:
            return None
        if self._mosaic is None:
            self._mosaic = read_rgb(self.artifact.path / settings["file"])
        return mosaic_tile(self._mosaic, row, settings["side"])


def random_frames(count: int, side: int, device: torch.device,
                  frame_shape: tuple[int, int] | None = None) -> torch.Tensor | list[YuvImage]:
    """`count` frames of random pixels for warming up: side x side RGB (the model's input size, nothing to
    resize), or YUV 4:2:0 planes of `frame_shape` (height, width), as the GPU path's sources deliver them."""
    pixels = torch.Generator(device=device).manual_seed(0)

    def plane(*shape: int) -> torch.Tensor:
        return torch.randint(0, 256, shape, generator=pixels, dtype=torch.uint8, device=device)

    if frame_shape is None:
        return plane(count, side, side, 3)
    height, width = frame_shape
    return [YuvImage(plane(height, width), plane(2, (height + 1) // 2, (width + 1) // 2)) for _ in range(count)]


def operating_point(settings: dict, alert: AlertConfig, artifact: Path) -> float | None:
    """The alert threshold for the configured false-alarm rate from a detector's manifest entry; None (and a
    warning) when the artifact was fitted without a calibration video, None when the rate is null."""
    rate = alert.false_alarms_per_hour
    if rate is None:
        return None
    table = settings.get("operating_points")
    if table is None:
        log.warning("artifact %s has no false-alarm calibration (fit it with --calibration-video): the alert "
                    "counts frames over the per-frame threshold, and its false alarms per hour are unknown",
                    artifact)
        return None
    for key in ("on_count", "window"):
        if getattr(alert, key) != table[key]:
            raise UserError(f"config key 'alert.{key}' is {getattr(alert, key)}, but the artifact's operating "
                            f"points were calibrated for {table[key]}: set it back, refit with "
                            "--calibration-video, or set alert.false_alarms_per_hour: null")
    if alert.smoothing != "none":
        raise UserError("config key 'alert.smoothing' must be none while alert.false_alarms_per_hour is set: "
                        "the operating points were calibrated on unsmoothed scores")
    try:
        return threshold_for_rate(table["thresholds"], rate)
    except ValueError as error:
        raise UserError(f"config key 'alert.false_alarms_per_hour': {error}") from None


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
    weights_sha256 = file_sha256(weights)
    artifact = load_artifact(config.resolve(config.artifact), weights_sha256, device, index_backend)
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
    alert_threshold = operating_point(settings, config.alert, artifact.path)
    scorer = artifact.scorer
    detector = LIVE[config.detector].load(artifact.path, settings, scorer.weight, scorer.bias) \
        if config.detector in LIVE else None
    int8_model = read_quantized(artifact.path, artifact.manifest) if config.model.precision == "int8" else None
    classifier, preprocess, _ = configured_model(config, device)
    forward = make_forward(config.model.backend, classifier, device, config.model.arch, weights_sha256,
                           config.preprocess.size, config.model.precision, config.model.cuda_graphs, int8_model)
    fitted_in = artifact.manifest["model"].get("precision", "float32")
    if forward_precision(forward) != fitted_in:
        log.warning("artifact %s was fitted with %s features but the model runs in %s: scores move a little and "
                    "its false alarms per hour hold only roughly (refit it with this config: nero fit --config)",
                    artifact.path, fitted_in, forward_precision(forward))
    return Bundle(config.model.arch, device, classifier, preprocess, artifact, config.detector,
                  float(settings["threshold"]), detector, alert_threshold, forward)
