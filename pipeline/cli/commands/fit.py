"""Fit NERO for the configured classifier on in-distribution ImageFolder data.

Extracts features of the training images (ground-truth labels from the folder names), fits the relevance
PCA, the per-class centroids and lambda, and sets the alert threshold to the score that 95% of the
*validation* images stay under. Writes centroids/NAME/ (manifest.json, arrays.safetensors,
relevance_bank.safetensors for relevance-kNN, patch_bank.safetensors for relevance-patch's patch part,
the model weights, and a config.yaml that pairs them with your other settings), ready for `nero score`,
`nero replay` and `nero live`.

With `precision: int8` under `model:` in the config it also quantizes the model for OpenVINO (NNCF, from 300
of the training images: pip install 'nero-monitor[int8]') into model.int8.xml/.bin, and fits on the int8
model's features; the monitor then runs that model.

example (work/benchmark is built from ../shared/data by scripts/prepare_data.py, see docs/DATA.md):
  nero fit --train work/benchmark/ID/train --val work/benchmark/ID/val --out centroids/mine
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipeline.cli.console import emit
from pipeline.errors import UserError

log = logging.getLogger(__name__)

HELP = "fit NERO centroids for a classifier on ImageFolder data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="YAML config naming the model (default: the bundled configs/default.yaml)")
    parser.add_argument("--train", metavar="DIR", type=Path, required=True,
                        help="ImageFolder of in-distribution training data")
    parser.add_argument("--val", metavar="DIR", type=Path, required=True,
                        help="ImageFolder of in-distribution validation data (sets the threshold)")
    parser.add_argument("--out", metavar="DIR", type=Path, required=True,
                        help="artifact folder to write, e.g. centroids/mine (replaced if it exists)")
    parser.add_argument("--k", metavar="N", type=int,
                        help="least-relevant neurons in rho (default: the reference's 175)")
    parser.add_argument("--n-components", metavar="N", type=int,
                        help="PCA size (default: int(2*D/3), as the reference)")
    parser.add_argument("--knn-k", metavar="N", type=int, default=20,
                        help="neighbour relevance-kNN measures to (default: 20, chosen for the bundled model at "
                             "its operating point: scripts/operating_points.py --grid judges settings for yours)")
    parser.add_argument("--knn-feature-weight", metavar="W", type=float, default=0.75,
                        help="share of the relevance-kNN distance given to the features, 0 <= W < 1 (default: "
                             "0.75, chosen the same way)")
    parser.add_argument("--calibration-video", metavar="FILE", type=Path,
                        help="in-distribution video (no OOD in it) that sets the operating points: the alert threshold "
                             "for each false-alarm rate that config key alert.false_alarms_per_hour can ask for "
                             "(scripts/make_demo_clip.py --calibration makes one from Kvasir-SEG)")
    parser.add_argument("--bank", metavar="DIR", type=Path,
                        help="unlabelled in-distribution images added to relevance-kNN's bank: views a video "
                             "shows that the labelled classes do not (scripts/prepare_data.py writes ID/bank: "
                             "windows of the training frames at any place and scale)")
    parser.add_argument("--batch-size", metavar="N", type=int, default=32)


def run(args: argparse.Namespace) -> int:
    import torch

    from pipeline.config import load_config
    from pipeline.model.backend import check_int8_device
    from pipeline.model.fit import fit_artifact
    from pipeline.model.quantize import require_nncf
    from pipeline.ood.nero import DEFAULT_K

    config = load_config(args.config)
    if config.model.precision == "int8":
        require_nncf()
        check_int8_device(torch.device(config.torch_device()))
    if args.knn_k < 1:
        raise UserError(f"--knn-k must be at least 1, got {args.knn_k}")
    if args.bank is not None and not args.bank.is_dir():
        raise UserError(f"--bank: no such folder: {args.bank}")
    if args.calibration_video is not None and not args.calibration_video.is_file():
        raise UserError(f"--calibration-video: no such file: {args.calibration_video}")
    if not 0 <= args.knn_feature_weight < 1:
        raise UserError(f"--knn-feature-weight must lie in [0, 1), got {args.knn_feature_weight}")
    report = fit_artifact(config, args.train, args.val, args.out, args.k or DEFAULT_K, args.n_components,
                          args.batch_size, args.knn_k, args.knn_feature_weight, args.calibration_video, args.bank)
    emit(f"fitted on {report.n_train} training images; validation accuracy {report.val_accuracy:.2%} "
          f"on {report.n_val} images")
    emit(f"{report.detector} threshold {report.threshold:.4g} ({report.val_flagged:.1%} of validation images above "
         "it)")
    points = report.operating_points
    if points is not None:
        rate = f"{config.alert.false_alarms_per_hour:g}" if config.alert.false_alarms_per_hour else "1"
        threshold = points["thresholds"].get(rate, points["thresholds"]["1"])
        emit(f"operating point: {rate} false alarm(s) per hour -> alert threshold {threshold:.4g} ({points['rule']}); "
             f"the {points['video_minutes']:.1f} min calibration video raised "
             f"{points['observed_false_alarms'].get(rate, '?')} there")
    else:
        log.warning("no --calibration-video: the alert will count frames over the per-frame threshold, and its "
                    "false alarms per hour are unknown")
    emit(f"wrote {report.artifact}  (use it with --config {report.artifact / 'config.yaml'})")
    return 0
