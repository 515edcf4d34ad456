"""OOD evaluation: fit every detector on in-distribution training images, score the ID test set, each OOD
set and optionally a video; the work behind `nero eval` (files: `pipeline.evaluation.report`).

Hyperparameters that some detectors choose (`pipeline.ood.detectors.tuned`) are chosen on in-distribution
data only (`pipeline.evaluation.validation`), never on the OOD sets reported here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from pipeline.errors import UserError
from pipeline.evaluation.cache import FeatureCache
from pipeline.evaluation.datasets import ImageSet
from pipeline.evaluation.metrics import ALL, Intervals, Results, intervals_by_set, metrics_by_set
from pipeline.evaluation.validation import build_validation
from pipeline.evaluation.video import Video
from pipeline.model.artifact import detector_settings
from pipeline.model.bundle import Bundle
from pipeline.ood.alert import threshold_for
from pipeline.ood.detectors import DETECTORS, AnyDetector, Detector, FitData, InputDetector, Validation, build_detector
from pipeline.ood.detectors.tuned import Tuned, validation_auroc

LIVE = "live"   # the detector the monitor alerts on, exactly as the config's artifact holds it


class LiveDetector(Detector):
    """The config's live detector as fitted in its artifact (`nero fit`), not refitted here: what the monitor
    scores, with its alert threshold. Its training rows include every row the validation holds out, so it
    has no validation AUROC."""

    name = LIVE

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle

    def score(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        raise TypeError("the live detector scores the model's outputs with its patch features: score_outputs")

    def score_outputs(self, features: torch.Tensor, logits: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """The monitor's own score of these rows (`Bundle.score_features`)."""
        device = self.bundle.device
        return self.bundle.score_features(features.to(device), patches.to(device))[0].score

    def params(self) -> dict[str, object]:
        settings = detector_settings(self.bundle.artifact.manifest, self.bundle.detector, self.bundle.artifact.path)
        return {"detector": self.bundle.detector, "artifact": str(self.bundle.artifact.path),
                **{key: value for key, value in settings.items() if isinstance(value, int | float | str)},
                "alert_threshold": self.bundle.alert_threshold}


@dataclass
class Evaluation:
    """Everything `write_report` needs: scores per detector and set, metrics, and how they came about."""

    id_name: str
    scores: dict[str, dict[str, np.ndarray]]                  # method -> set -> scores (id set included)
    results: Results
    intervals: Intervals = field(default_factory=dict)                 # 95% bootstrap intervals of the results
    info: dict[str, dict[str, object]] = field(default_factory=dict)   # method -> params, timings, validation
    meta: dict[str, object] = field(default_factory=dict)
    video: Video | None = None


def _score(detector: AnyDetector, cache: FeatureCache, image_set: ImageSet,
           features: dict[str, tuple[torch.Tensor, ...]], device: torch.device | str) -> np.ndarray:
    if isinstance(detector, InputDetector):
        return cache.input_scores(detector, image_set).numpy()
    return _frame_scores(detector, features[image_set.name], device)


def _frame_scores(detector: Detector, outputs: tuple[torch.Tensor, ...], device: torch.device | str) -> np.ndarray:
    """A feature-space detector's scores of cached (features, logits, patch features)."""
    features, logits, patches = (t.to(device) for t in outputs)
    if isinstance(detector, LiveDetector):
        return detector.score_outputs(features, logits, patches).double().cpu().numpy()
    return detector.score(features, logits).double().cpu().numpy()


def evaluate(
    cache: FeatureCache,
    head: torch.nn.Linear,
    id_train: ImageSet,
    id_test: ImageSet,
    oods: Sequence[ImageSet],
    detectors: Sequence[str],
    arch: str | None = None,
    id_val: ImageSet | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    video: Video | None = None,
    live: Bundle | None = None,
) -> Evaluation:
    """Fit each detector on `id_train`, score `id_test`, every OOD set and the video, compute the metrics."""
    device = cache.device
    test_sets = [id_test, *oods]
    names = [s.name for s in test_sets]
    if len(set(names)) != len(names) or ALL in names:
        raise UserError(f"test sets need distinct names other than {ALL!r}; got {names}")
    train_features, train_logits, _ = cache.features(id_train)
    features = {s.name: cache.features(s) for s in test_sets}
    train = FitData(train_features.to(device), train_logits.to(device),
                    torch.tensor(id_train.labels, device=device),
                    head.weight.detach().float().to(device), head.bias.detach().float().to(device))
    train.validation, validation_info = build_validation(cache, train, id_train, id_val, val_fraction, seed)
    video_outputs = cache.video_features(video.clip) if video is not None else None

    evaluation = Evaluation(id_test.name, {}, {}, video=video)
    for name in tqdm(detectors, desc="detectors", unit="detector", disable=None):
        detector = LiveDetector(live) if name == LIVE else build_detector(name, arch)
        started = time.perf_counter()
        detector.fit(train)
        fitted = time.perf_counter()
        scores = {s.name: _score(detector, cache, s, features, device) for s in test_sets}
        info: dict[str, object] = {"params": detector.params(), "fit_s": round(fitted - started, 3),
                                   "score_s": round(time.perf_counter() - fitted, 3)}
        if isinstance(detector, Detector):
            if name != LIVE:
                info["validation_auroc"] = round(_validation_auroc(name, arch, detector, train.validation), 2)
            if video is not None:
                frame_scores = _frame_scores(detector, video_outputs, device)
                if name == LIVE:   # the monitor's own thresholds, operating point included
                    video.add(name, frame_scores, live.threshold, live.alert_threshold)
                else:
                    video.add(name, frame_scores, threshold_for(scores[id_test.name]))
        evaluation.scores[name] = scores
        evaluation.results[name] = metrics_by_set(scores, id_test.name, [s.name for s in oods])
        evaluation.intervals[name] = intervals_by_set(scores, id_test.name, [s.name for s in oods])
        evaluation.info[name] = info

    correct = features[id_test.name][1].argmax(dim=1) == torch.tensor(id_test.labels)
    evaluation.meta = {
        "id_train": len(id_train.paths), "id_test": len(id_test.paths),
        "ood": {s.name: len(s.paths) for s in oods},
        "id_test_accuracy": round(100.0 * correct.float().mean().item(), 2),
        "validation": validation_info,
    }
    return evaluation


def _validation_auroc(name: str, arch: str | None, detector: Detector, validation: Validation) -> float:
    """A tuned detector reports its chosen setting's validation AUROC; the others are refitted on the
    validation's training rows, so that no held-out image is in what they were fitted on."""
    if isinstance(detector, Tuned):
        return detector.validation_auroc
    refit = build_detector(name, arch)
    return validation_auroc(refit.fit(validation.train), validation)


def known_detectors(names: str) -> list[str]:
    """A comma-separated list (or "all") checked against the registry, plus `live` (the config's own)."""
    chosen = list(DETECTORS) if names == "all" else [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in DETECTORS and n != LIVE]
    if unknown or not chosen:
        raise UserError(f"unknown detector(s) {unknown or names!r}; choose from: all, {LIVE}, "
                        f"{', '.join(DETECTORS)}")
    return chosen

