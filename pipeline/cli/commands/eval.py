"""Compare OOD detectors for the configured classifier: NERO and the baselines of its paper, and more.

Every detector is fitted on --id-train (an ImageFolder: the class folders give the labels NERO's centroids
and Mahalanobis need), then scores --id-test (in-distribution, an ImageFolder with the same classes) and
each --ood folder (images directly inside or in subfolders). Metrics per OOD folder and pooled ("all"):
AUROC, FPR@95TPR, AUPR-In, AUPR-Out, in percent, OOD = positive class (higher score = more OOD).

Writes to --out: results.json ({method: {ood_set: {auroc, fpr95, aupr_in, aupr_out}}}), results.md (the
table), results.csv, run.json (settings, timings, validation AUROC, set sizes), scores.npz (every score,
keyed "method/set"), roc_<set>.png and hist_nero.png; with --video CLIP also video.json, video.md and
video_nero.png (frame AUROC, false alerts per minute and detection delay, raw and with causal temporal
smoothing of the score).
Features are cached (--cache), so a rerun costs no forward pass.

Settings some detectors choose for themselves (nero-tuned, nero-kmeans, relevance-knn, relevance-ensemble)
are chosen on in-distribution data only: --id-val, or else a held-out share of --id-train, against synthetic
outliers.

example (work/benchmark is built from ../shared/data by scripts/prepare_data.py, see docs/DATA.md):
  nero eval --id-train work/benchmark/ID/train --id-test work/benchmark/ID/val \\
      --ood work/benchmark/OOD/capsule --ood work/benchmark/OOD/natural --out out/eval
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pipeline.cli.console import emit

HELP = "compare OOD detectors on in-distribution test data and OOD folders (AUROC, FPR95, plots)"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nero-monitor" / "features"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="YAML config naming the model (default: the bundled configs/default.yaml)")
    parser.add_argument("--id-train", metavar="DIR", type=Path, required=True,
                        help="ImageFolder to fit the detectors on")
    parser.add_argument("--id-test", metavar="DIR", type=Path, required=True,
                        help="in-distribution ImageFolder to test on")
    parser.add_argument("--ood", type=Path, action="append", required=True, metavar="DIR",
                        help="an out-of-distribution folder (repeat for several sets)")
    parser.add_argument("--out", metavar="DIR", type=Path, required=True,
                        help="folder for the results, tables and plots")
    parser.add_argument("--id-val", metavar="DIR", type=Path,
                        help="in-distribution ImageFolder for choosing settings (default: a held-out share "
                             "of --id-train)")
    parser.add_argument("--val-fraction", metavar="SHARE", type=float, default=0.2,
                        help="share of --id-train held out for choosing settings when --id-val is not given")
    parser.add_argument("--video", metavar="FILE", type=Path,
                        help="also score every frame of this clip; needs CLIP.truth.csv (column ood = 0/1)")
    parser.add_argument("--detectors", metavar="NAMES", default="all",
                        help="comma-separated detector names (default: all); `live`: the config's own live "
                             "detector as its artifact holds it, with the monitor's thresholds")
    parser.add_argument("--cache", metavar="DIR", type=Path, default=DEFAULT_CACHE,
                        help="feature cache folder (default: ~/.cache/nero-monitor/features)")
    parser.add_argument("--batch-size", metavar="N", type=int, default=32)
    parser.add_argument("--seed", metavar="N", type=int, default=0, help="seed of the held-out split and k-means")


def run(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.evaluation.cache import FeatureCache, model_for
    from pipeline.evaluation.datasets import folder_set, ood_sets
    from pipeline.evaluation.metrics import ALL
    from pipeline.evaluation.report import write_report
    from pipeline.evaluation.run import LIVE, evaluate, known_detectors
    from pipeline.evaluation.video import Video

    config = load_config(args.config)
    detectors = known_detectors(args.detectors)
    train, classes = folder_set("id-train", args.id_train)
    test, _ = folder_set("id-test", args.id_test, classes)
    validation = folder_set("id-val", args.id_val, classes)[0] if args.id_val else None
    oods = ood_sets(args.ood)
    video = Video.load(args.video, config.alert) if args.video else None
    device = config.torch_device()
    classifier, preprocess, model_key = model_for(config, device)
    cache = FeatureCache(args.cache, classifier, preprocess, model_key, device, args.batch_size)
    live = None
    if LIVE in detectors:
        from pipeline.model.bundle import load_bundle

        live = load_bundle(config, device)
    evaluation = evaluate(cache, classifier.head, train, test, oods, detectors, config.model.arch,
                          validation, args.val_fraction, args.seed, video, live)
    written = write_report(evaluation, args.out)
    emit(f"ID test accuracy {evaluation.meta['id_test_accuracy']:.2f}% on {len(test.paths)} images; "
          f"{len(train.paths)} training images; OOD: "
          + ", ".join(f"{s.name} {len(s.paths)}" for s in oods))
    emit(f"{'method':<16} {'AUROC':>7} {'FPR95':>7}   ({ALL} OOD sets pooled)")
    for method, by_set in evaluation.results.items():
        emit(f"{method:<16} {by_set[ALL]['auroc']:7.2f} {by_set[ALL]['fpr95']:7.2f}")
    if video is not None:
        nero = video.results.get("nero")
        if nero:
            emit(f"video {args.video.name}: nero frame AUROC {nero['none']['auroc']:.2f} raw, "
                  f"{nero['mean13']['auroc']:.2f} with mean13 smoothing")
    emit(f"wrote {len(written)} files to {args.out}")
    return 0
