"""Fit NERO for a classifier on ImageFolder data and write the artifact (the work behind `nero fit`)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from pipeline.config import Config
from pipeline.errors import UserError
from pipeline.media.images import image_folder
from pipeline.model.artifact import save_artifact
from pipeline.model.bundle import configured_model, preprocess_settings
from pipeline.model.classifier import file_sha256
from pipeline.model.features import extract_features
from pipeline.ood.alert import ID_QUANTILE, threshold_for
from pipeline.ood.detectors.relevance_knn import ARTIFACT_K, RelevanceKNN, relevance_embedding
from pipeline.ood.nero import DEFAULT_K, NeroScorer

WEIGHTS_NAME = "model.safetensors"


@dataclass
class FitReport:
    artifact: Path
    n_train: int
    n_val: int
    val_accuracy: float
    threshold: float
    val_flagged: float


def fit_artifact(
    config: Config,
    train_dir: Path,
    val_dir: Path,
    out_dir: Path,
    k: int = DEFAULT_K,
    n_components: int | None = None,
    batch_size: int = 32,
    knn_k: int = ARTIFACT_K,
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
    train_features, _ = extract_features(classifier, preprocess, train_paths, batch_size, device, "train")
    val_features, val_logits = extract_features(classifier, preprocess, val_paths, batch_size, device, "val")
    head = classifier.head
    try:
        scorer = NeroScorer.fit(train_features, train_labels, head.weight.detach(), head.bias.detach(),
                                k=k, n_components=n_components, device=device)
    except ValueError as error:
        raise UserError(str(error)) from None
    val_terms = scorer.terms(val_features)
    val_scores = val_terms.score.cpu().numpy()
    threshold = threshold_for(val_scores)
    bank = relevance_embedding(scorer.terms(train_features).relevance)
    knn = RelevanceKNN.from_bank(bank, knn_k, scorer.weight, scorer.bias)
    knn_threshold = threshold_for(knn.score_relevance(val_terms.relevance).cpu().numpy())
    val_accuracy = float((val_logits.argmax(1) == torch.tensor(val_labels)).float().mean())

    out_dir.mkdir(parents=True, exist_ok=True)
    detectors = {"nero": {"threshold": threshold},
                 "relevance-knn": {**knn.save(out_dir), "threshold": knn_threshold}}
    artifact_weights = out_dir / WEIGHTS_NAME
    if artifact_weights.resolve() != weights.resolve():
        shutil.copyfile(weights, artifact_weights)
    save_artifact(
        out_dir, scorer,
        class_names=classes,
        threshold=threshold,
        threshold_rule=f"{ID_QUANTILE:.0%} of in-distribution validation images ({len(val_paths)}) score "
                       f"at or below it",
        model={"arch": config.model.arch, "weights": WEIGHTS_NAME, "sha256": file_sha256(weights)},
        preprocess=preprocess_settings(config),
        data={"train": str(train_dir), "val": str(val_dir),
              "train_per_class": dict(zip(classes, np.bincount(train_labels).tolist(), strict=True)),
              "val_per_class": dict(zip(classes, np.bincount(val_labels).tolist(), strict=True))},
        validation={"accuracy": val_accuracy, "flagged": float((val_scores > threshold).mean())},
        detectors=detectors,
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
    return FitReport(out_dir, len(train_paths), len(val_paths), val_accuracy, threshold,
                     float((val_scores > threshold).mean()))
