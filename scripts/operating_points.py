"""What each live detector of an artifact catches at its false-alarm operating points, on in-distribution data
and synthetic outliers only (the rule the bundled default's detector was chosen by, docs/RESULTS.md), and
optionally what it does on a clip with truth.

    python scripts/operating_points.py --val work/benchmark/ID/val [--video scripts/demo/clip.mp4]
    python scripts/operating_points.py --val work/benchmark/ID/val --grid work/benchmark/ID/train \
        --calibration-video work/calibration/calibration.mp4

With --grid TRAIN: relevance-kNN's k and feature weight w, each setting fitted on TRAIN and calibrated on
--calibration-video, judged by the share of synthetic outliers over its alert threshold for 1 false alarm
per hour: the rule the bundled default's k and w were chosen by (`nero fit --knn-k K --knn-feature-weight W`).

For each detector the artifact holds (with `nero fit --calibration-video` operating points) and each
false-alarm rate: the alert threshold, the share of synthetic outliers (jigsaw and channel-rotated copies of
the --val images, as `nero eval`'s validation makes them) over it, and with --video the false alarms and
the delay per OOD segment through the monitor's own alert rule.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.config import load_config  # noqa: E402
from pipeline.errors import UserError  # noqa: E402
from pipeline.evaluation.cache import Transformed  # noqa: E402
from pipeline.evaluation.datasets import OUTLIER_TRANSFORMS  # noqa: E402
from pipeline.media.images import image_folder  # noqa: E402
from pipeline.media.video import video_info  # noqa: E402
from pipeline.model.bundle import load_bundle  # noqa: E402
from pipeline.model.features import extract_features, extract_video_features  # noqa: E402
from pipeline.model.fit import live_scores  # noqa: E402
from pipeline.ood.alert import AlertRule  # noqa: E402
from pipeline.ood.detectors.base import FitData  # noqa: E402
from pipeline.ood.detectors.relevance_knn import RelevanceKNN  # noqa: E402
from pipeline.ood.operating_point import calibrate  # noqa: E402
from pipeline.ood.truth import AlertOutcome, Truth, truth_path  # noqa: E402

RATES = ("1", "5", "10", "30", "120")
GRID_K = (1, 5, 20, 50)
GRID_W = (0.0, 0.25, 0.5, 0.75)


def synthetic_features(bundle, paths: list[Path]) -> torch.Tensor:
    return torch.cat([extract_features(Transformed(bundle.classifier, transform), bundle.preprocess, paths)[0]
                      for transform in OUTLIER_TRANSFORMS.values()])


def knn_scores(detector: RelevanceKNN, rows: torch.Tensor, data: FitData) -> np.ndarray:
    return detector.score(rows, rows @ data.weight.T + data.bias).double().numpy()


def video_outcome(scores: np.ndarray, threshold: float, alert_threshold: float, on_count: int, window: int,
                  off_after: int, truth: Truth, fps: float) -> str:
    """'false alarms; each OOD segment's delay' of a clip's scores through the monitor's own alert rule."""
    rule = AlertRule(threshold, on_count, window, off_after, alert_threshold=alert_threshold)
    outcome = AlertOutcome.of(np.array([rule.update(s).alert for s in np.asarray(scores).tolist()]), truth, fps)
    delays = ", ".join(f"{s.name} {'missed' if s.delay_s is None else f'{s.delay_s:.2f} s'}" for s in outcome.segments)
    return f"{len(outcome.false_alarms)}; {delays}"


def grid(bundle, config, train: Path, val: Path, calibration_video: Path) -> None:
    """relevance-kNN settings judged at the operating point of 1 false alarm per hour."""
    train_paths, labels, _ = image_folder(train)
    train_features = extract_features(bundle.classifier, bundle.preprocess, train_paths)[0]
    outliers = synthetic_features(bundle, image_folder(val)[0])
    video = extract_video_features(bundle.classifier, bundle.preprocess, calibration_video)[0]
    fps = video_info(calibration_video)["fps"] or 25.0
    weight, bias = bundle.scorer.weight, bundle.scorer.bias
    data = FitData(train_features, train_features @ weight.T + bias, torch.tensor(labels), weight, bias)
    alert = config.alert
    print("| k | feature weight | alert threshold (1 per hour) | synthetic outliers over it |\n|---|---|---|---|")
    for feature_weight in GRID_W:
        for k in GRID_K:
            detector = RelevanceKNN(k, feature_weight).fit(data)
            threshold = calibrate([knn_scores(detector, video, data)], fps, alert.on_count, alert.window,
                                  alert.off_after, rates=(1.0,)).thresholds[1.0]
            caught = np.mean(knn_scores(detector, outliers, data) > threshold)
            print(f"| {k} | {feature_weight} | {threshold:.4g} | {caught:.1%} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="config naming the model and artifact (default: the bundled one)")
    parser.add_argument("--val", type=Path, required=True, help="in-distribution ImageFolder (synthetic outliers)")
    parser.add_argument("--video", type=Path, help="a clip with VIDEO.truth.csv beside it")
    parser.add_argument("--grid", metavar="TRAIN", type=Path, help="judge relevance-kNN settings fitted on TRAIN")
    parser.add_argument("--calibration-video", type=Path, help="with --grid: in-distribution video")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    bundle = load_bundle(dataclasses.replace(config, detector="relevance-ensemble"))   # holds every part
    if args.grid is not None:
        if args.calibration_video is None:
            raise UserError("--grid needs --calibration-video")
        grid(bundle, config, args.grid, args.val, args.calibration_video)
        return 0
    features = synthetic_features(bundle, image_folder(args.val)[0])
    synthetic = live_scores(bundle.scorer.terms(features), features, bundle.relevance_detector)
    video, truth, fps = None, None, 25.0
    if args.video is not None:
        features = extract_video_features(bundle.classifier, bundle.preprocess, args.video)[0]
        video = live_scores(bundle.scorer.terms(features), features, bundle.relevance_detector)
        truth, fps = Truth.read(truth_path(args.video)), video_info(args.video)["fps"] or 25.0
    detectors = bundle.artifact.manifest["detectors"]
    print("| detector | false alarms / hour | alert threshold | synthetic outliers over it |"
          + (" video: false alarms, delay per OOD segment |" if video else ""))
    print("|---|---|---|---|" + ("---|" if video else ""))
    for name, entry in detectors.items():
        points = entry.get("operating_points")
        if points is None:
            raise UserError(f"{name} has no operating points: fit with --calibration-video")
        caught = synthetic[name]
        for rate in RATES:
            threshold = points["thresholds"][rate]
            row = f"| {name} | {rate} | {threshold:.4g} | {np.mean(caught > threshold):.1%} |"
            if video is not None:
                outcome = video_outcome(video[name], entry["threshold"], threshold, points["on_count"],
                                        points["window"], config.alert.off_after, truth, fps)
                row += f" {outcome} |"
            print(row)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as error:
        print(f"operating_points: error: {error}", file=sys.stderr)
        sys.exit(2)
