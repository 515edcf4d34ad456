"""Fit NERO for the configured classifier on in-distribution ImageFolder data.

Extracts features of the training images (ground-truth labels from the folder names), fits the relevance
PCA, the per-class centroids and lambda, and sets the alert threshold to the score that 95% of the
*validation* images stay under. Writes centroids/NAME/ (manifest.json, arrays.safetensors,
relevance_bank.safetensors for the relevance-kNN detector, the model weights, and a config.yaml that pairs
them with your other settings), ready for `nero score`, `nero replay` and `nero live`.

example (work/benchmark is built from ../shared/data by scripts/prepare_data.py, see docs/DATA.md):
  nero fit --train work/benchmark/ID/train --val work/benchmark/ID/val --out centroids/mine
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli.console import emit
from pipeline.errors import UserError

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
    parser.add_argument("--knn-k", metavar="N", type=int,
                        help="neighbour the relevance-kNN detector measures to (default: 1; `nero eval` reports "
                             "the k its in-distribution validation chooses for your model: run.json, relevance-knn)")
    parser.add_argument("--batch-size", metavar="N", type=int, default=32)


def run(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.model.fit import fit_artifact
    from pipeline.ood.detectors.relevance_knn import ARTIFACT_K
    from pipeline.ood.nero import DEFAULT_K

    config = load_config(args.config)
    if args.knn_k is not None and args.knn_k < 1:
        raise UserError(f"--knn-k must be at least 1, got {args.knn_k}")
    report = fit_artifact(config, args.train, args.val, args.out, args.k or DEFAULT_K, args.n_components,
                          args.batch_size, args.knn_k or ARTIFACT_K)
    emit(f"fitted on {report.n_train} training images; validation accuracy {report.val_accuracy:.2%} "
          f"on {report.n_val} images")
    emit(f"threshold {report.threshold:.4g} ({report.val_flagged:.1%} of validation images above it)")
    emit(f"wrote {report.artifact}  (use it with --config {report.artifact / 'config.yaml'})")
    return 0
