"""What each live detector of an artifact catches at its false-alarm operating points, on in-distribution data
and synthetic outliers only (the rule the bundled default's detector was chosen by, docs/RESULTS.md), and
optionally what it does on a clip with truth.

    python scripts/operating_points.py --val work/benchmark/ID/val [--video scripts/demo/clip.mp4]

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
from pipeline.ood.truth import AlertOutcome, Truth, truth_path  # noqa: E402

RATES = ("1", "5", "10", "30", "120")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="config naming the model and artifact (default: the bundled one)")
    parser.add_argument("--val", type=Path, required=True, help="in-distribution ImageFolder (synthetic outliers)")
    parser.add_argument("--video", type=Path, help="a clip with VIDEO.truth.csv beside it")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    bundle = load_bundle(dataclasses.replace(config, detector="relevance-ensemble"))   # holds every part
    paths, _, _ = image_folder(args.val)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    synthetic: dict[str, list[np.ndarray]] = {}
    for transform in OUTLIER_TRANSFORMS.values():
        features, _ = extract_features(Transformed(bundle.classifier, transform), bundle.preprocess, paths)
        for name, scores in live_scores(bundle.scorer.terms(features), features, bundle.relevance_detector).items():
            synthetic.setdefault(name, []).append(scores)
    video, truth, fps = None, None, 25.0
    if args.video is not None:
        features, _ = extract_video_features(bundle.classifier, bundle.preprocess, args.video)
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
        caught = np.concatenate(synthetic[name])
        for rate in RATES:
            threshold = points["thresholds"][rate]
            row = f"| {name} | {rate} | {threshold:.4g} | {np.mean(caught > threshold):.1%} |"
            if video is not None:
                rule = AlertRule(entry["threshold"], points["on_count"], points["window"], config.alert.off_after,
                                 alert_threshold=threshold)
                outcome = AlertOutcome.of(np.array([rule.update(s).alert for s in video[name].tolist()]), truth, fps)
                delays = ", ".join(f"{s.name} {'missed' if s.delay_s is None else f'{s.delay_s:.2f} s'}"
                                   for s in outcome.segments)
                row += f" {len(outcome.false_alarms)}; {delays} |"
            print(row)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as error:
        print(f"operating_points: error: {error}", file=sys.stderr)
        sys.exit(2)
