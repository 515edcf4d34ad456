"""Fit NERO for a classifier on ImageFolder data and write the artifact (the work behind `nero fit`)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from pipeline.config import Config
from pipeline.errors import UserError
from pipeline.media.images import image_folder, list_images, read_rgb, thumbnail, write_mosaic
from pipeline.media.video import video_info
from pipeline.model.artifact import save_artifact
from pipeline.model.backend import forward_precision, make_forward, openvino_model
from pipeline.model.bundle import configured_model, preprocess_settings
from pipeline.model.classifier import file_sha256
from pipeline.model.features import extract_features, extract_video_features
from pipeline.model.quantize import calibration_frames, quantize, save_quantized
from pipeline.ood.alert import ID_QUANTILE, threshold_for
from pipeline.ood.detectors.base import FitData
from pipeline.ood.detectors.relevance_ensemble import RelevanceEnsemble
from pipeline.ood.detectors.relevance_patch import RelevancePatch
from pipeline.ood.nero import DEFAULT_K, NeroScorer, NeroTerms
from pipeline.ood.operating_point import calibrate

WEIGHTS_NAME = "model.safetensors"
THUMBNAILS = "relevance_bank_thumbnails.jpg"   # one tile per bank row, in bank order (the explanation's)
THUMBNAIL_SIDE = 48


@dataclass
class FitReport:
    artifact: Path
    n_train: int
    n_val: int
    val_accuracy: float
    detector: str                  # the config's live detector, which the next lines describe
    threshold: float
    val_flagged: float
    operating_points: dict | None  # pipeline.ood.operating_point.Calibration.as_dict(), with a calibration video


def live_scores(terms: NeroTerms, features: torch.Tensor, patches: torch.Tensor, ensemble: RelevanceEnsemble,
                with_patches: RelevancePatch) -> dict[str, np.ndarray]:
    """Every live detector's scores of the same rows (NERO's pass already computed their relevance)."""
    features, patches = features.to(terms.relevance.device), patches.to(terms.relevance.device)
    scores = {"nero": terms.score}
    for detector in (ensemble.knn, ensemble.mahalanobis, ensemble, with_patches):
        scores[detector.name] = detector.score_relevance(terms.relevance, features, patches).score
    return {name: value.double().cpu().numpy() for name, value in scores.items()}


def fit_artifact(
    config: Config,
    train_dir: Path,
    val_dir: Path,
    out_dir: Path,
    k: int = DEFAULT_K,
    n_components: int | None = None,
    batch_size: int = 32,
    knn_k: int = 20,
    knn_feature_weight: float = 0.75,
    calibration_video: Path | None = None,
    bank_dir: Path | None = None,
) -> FitReport:
    device = config.torch_device()
    train_paths, train_labels, classes = image_folder(train_dir)
    val_paths, val_labels, val_classes = image_folder(val_dir)
    if val_classes != classes:
        raise UserError(f"validation classes {val_classes} differ from training classes {classes}")
    if len(classes) != config.model.num_classes:
        raise UserError(f"{train_dir} has {len(classes)} classes {classes} but config model.num_classes is "
                        f"{config.model.num_classes}")

    classifier, preprocess, weights = configured_model(config, device)
    # The features come from the forward the monitor will run (model.backend, model.precision): thresholds
    # calibrated on torch's float32 scores had let bfloat16 raise a false alarm on the calibration video.
    weights_sha256 = file_sha256(weights)
    model_settings = config.model
    quantized = None
    if model_settings.precision == "int8":     # quantized here, from training windows; saved with the artifact
        model = openvino_model(classifier, model_settings.arch, weights_sha256, config.preprocess.size)
        quantized = quantize(model, calibration_frames(preprocess, train_paths))
    forward = make_forward(model_settings.backend, classifier, torch.device(device), model_settings.arch,
                           weights_sha256, config.preprocess.size, model_settings.precision,
                           model_settings.cuda_graphs, quantized)
    train_features, train_logits, train_patches = extract_features(forward, preprocess, train_paths, batch_size,
                                                                   device, "train")
    val_features, val_logits, val_patches = extract_features(forward, preprocess, val_paths, batch_size, device,
                                                             "val")
    bank_paths = list_images(bank_dir) if bank_dir is not None else []
    if bank_dir is not None and not bank_paths:
        raise UserError(f"no images in the bank folder {bank_dir}")
    bank_features, bank_logits, bank_patches = extract_features(forward, preprocess, bank_paths, batch_size,
                                                                device, "bank") if bank_paths else (None,) * 3
    head = classifier.head
    try:
        scorer = NeroScorer.fit(train_features, train_labels, head.weight.detach(), head.bias.detach(),
                                k=k, n_components=n_components, device=device)
    except ValueError as error:
        raise UserError(str(error)) from None
    val_terms = scorer.terms(val_features)
    val_scores = val_terms.score.cpu().numpy()
    threshold = threshold_for(val_scores)
    fit_data = FitData(train_features, train_logits, torch.tensor(train_labels), scorer.weight.cpu(),
                       scorer.bias.cpu(), unlabelled=bank_features, patches=train_patches,
                       unlabelled_patches=bank_patches)
    ensemble = RelevanceEnsemble(knn_k, knn_feature_weight).fit(fit_data)
    with_patches = RelevancePatch(knn_k, knn_feature_weight).fit(fit_data)
    # The bank's rows, in its order: the training windows, then the unlabelled ones with the class predicted.
    # Both detectors' relevance-kNN parts hold the same bank, written once to the same file.
    for knn in (ensemble.knn, with_patches.knn):
        knn.ids = [path.relative_to(train_dir).with_suffix("").as_posix() for path in train_paths] + \
            [f"bank/{path.relative_to(bank_dir).with_suffix('').as_posix()}" for path in bank_paths]
        knn.labels = torch.tensor(train_labels + ([] if bank_logits is None else bank_logits.argmax(1).tolist()))
    val_accuracy = float((val_logits.argmax(1) == torch.tensor(val_labels)).float().mean())
    video_live = {}
    if calibration_video is not None:   # in-distribution video: the false-alarm operating points
        video_features, _, video_patches = extract_video_features(forward, preprocess, calibration_video,
                                                                  batch_size, device)
        video_live = live_scores(scorer.terms(video_features), video_features, video_patches, ensemble,
                                 with_patches)
        fps = video_info(calibration_video)["fps"] or 25.0

    out_dir.mkdir(parents=True, exist_ok=True)
    write_mosaic(out_dir / THUMBNAILS, np.stack([thumbnail(read_rgb(path), THUMBNAIL_SIDE) for path in
                                                 tqdm(train_paths + bank_paths, desc="thumbnails", leave=False,
                                                      disable=None)]))
    saved = ensemble.save(out_dir)
    settings = {"nero": {}, "relevance-knn": saved["knn"], "relevance-mahalanobis": saved["mahalanobis"],
                "relevance-ensemble": saved, "relevance-patch": with_patches.save(out_dir)}
    detectors = {}
    val_live = live_scores(val_terms, val_features, val_patches, ensemble, with_patches)
    for name, scores in val_live.items():
        detectors[name] = {**settings[name], "threshold": threshold_for(scores)}
        if video_live:
            alert = config.alert
            found = calibrate([video_live[name]], fps, alert.on_count, alert.window, alert.off_after)
            detectors[name]["operating_points"] = {**found.as_dict(), "video": calibration_video.name}
    int8 = save_quantized(quantized, out_dir) if quantized is not None else None
    artifact_weights = out_dir / WEIGHTS_NAME
    if artifact_weights.resolve() != weights.resolve():
        shutil.copyfile(weights, artifact_weights)
    save_artifact(
        out_dir, scorer,
        class_names=classes,
        threshold=threshold,
        threshold_rule=f"{ID_QUANTILE:.0%} of in-distribution validation images ({len(val_paths)}) score "
                       f"at or below it",
        model={"arch": config.model.arch, "weights": WEIGHTS_NAME, "sha256": weights_sha256,
               "precision": forward_precision(forward), **({"int8": int8} if int8 else {})},
        preprocess=preprocess_settings(config),
        data={"train": str(train_dir), "val": str(val_dir),
              "train_per_class": dict(zip(classes, np.bincount(train_labels).tolist(), strict=True)),
              "val_per_class": dict(zip(classes, np.bincount(val_labels).tolist(), strict=True)),
              "bank": None if bank_dir is None else str(bank_dir), "bank_windows": len(bank_paths)},
        validation={"accuracy": val_accuracy, "flagged": float((val_scores > threshold).mean())},
        detectors=detectors,
        thumbnails={"file": THUMBNAILS, "side": THUMBNAIL_SIDE},
    )
    # Every setting of the config fitted with (alert, stream, publish...), pointed at the new artifact by
    # paths relative to the artifact folder, where this config lives: the folder can be moved as a whole.
    artifact_config = config.as_dict()
    artifact_config["model"]["weights"] = WEIGHTS_NAME
    artifact_config["artifact"] = "."
    (out_dir / "config.yaml").write_text(
        "# Written by `nero fit`: the model and artifact that belong together. Use with --config.\n"
        "# Paths are relative to this folder.\n"
        + yaml.safe_dump(artifact_config, sort_keys=False))
    chosen = detectors[config.detector]
    return FitReport(out_dir, len(train_paths), len(val_paths), val_accuracy, config.detector,
                     chosen["threshold"], float((val_live[config.detector] > chosen["threshold"]).mean()),
                     chosen.get("operating_points"))
