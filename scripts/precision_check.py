"""What `model.precision: bfloat16` changes against float32, for the configured model and artifact: the bare
forward's speed, the live detector's AUROC, and the alerts of whole replays (docs/PERFORMANCE.md).

    python scripts/precision_check.py --data work/benchmark --video scripts/demo/clip.mp4 \
        --calibration-video work/calibration/calibration.mp4

1. The forward alone, batch 16, the two precisions alternating for --rounds rounds of --seconds each.
2. The live detector's score on the ID validation images, their synthetic outliers (jigsaw, channel
   rotation) and every OOD folder under DATA/OOD: AUROC and FPR95 for each precision. The OOD folders are
   reported, never used to choose.
3. `nero replay` of each video in both precisions: alert intervals (every one on the calibration video, which
   is in distribution, is a false alarm), and how often `pred` and the per-frame `ood` agree.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import DEFAULT_CONFIG, load_config  # noqa: E402
from pipeline.evaluation.cache import Transformed  # noqa: E402
from pipeline.evaluation.datasets import OUTLIER_TRANSFORMS  # noqa: E402
from pipeline.evaluation.metrics import ood_metrics  # noqa: E402
from pipeline.explain.report import read_audit  # noqa: E402
from pipeline.media.images import list_images  # noqa: E402
from pipeline.model.bundle import Bundle, load_bundle  # noqa: E402
from pipeline.model.features import extract_features  # noqa: E402
from pipeline.ood.truth import runs  # noqa: E402

PRECISIONS = ("float32", "bfloat16")
log = logging.getLogger("precision_check")


def detector_scores(bundle: Bundle, paths: list[Path],
                transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> np.ndarray:
    """The configured detector's score of each image, optionally through a synthetic-outlier transform."""
    forward = bundle.forward if transform is None else Transformed(bundle.forward, transform)
    features = extract_features(forward, bundle.preprocess, paths, batch_size=16, device=bundle.device)[0]
    with torch.inference_mode():
        return bundle.score_features(features)[0].score.double().numpy()


def forward_speed(bundles: dict[str, Bundle], seconds: float, rounds: int) -> dict[str, list[float]]:
    bundle = next(iter(bundles.values()))
    side = bundle.preprocess.size
    inputs = torch.randn(16, 3, side, side, device=bundle.device).contiguous(memory_format=torch.channels_last)
    speed: dict[str, list[float]] = {name: [] for name in bundles}
    with torch.inference_mode():
        for bundle in bundles.values():
            bundle.forward(inputs)
        for _ in range(rounds):
            for name, bundle in bundles.items():
                done, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds:
                    bundle.forward(inputs)
                    done += len(inputs)
                speed[name].append(round(done / (time.perf_counter() - start), 1))
    return speed


def replay_frames(video: Path, config_file: Path, audit: Path) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "pipeline", "replay", str(video), "--config", str(config_file),
                           "--publish", "tcp://127.0.0.1:*", "--jsonl", str(audit), "--no-progress"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        sys.exit(f"precision_check: replay of {video} failed: {last}")
    return read_audit(audit)


def compare_frames(reference: list[dict], other: list[dict]) -> dict:
    """How far one replay's frame messages lie from a reference replay's of the same video: alert intervals,
    agreement of `pred` and of the per-frame `ood`, and the score difference (other - reference)."""
    if len(reference) != len(other):
        return {"frames": [len(reference), len(other)], "error": "the replays differ in length"}
    difference = np.array([b["score"] - a["score"] for a, b in zip(reference, other, strict=True)])
    return {"frames": len(reference),
            "alert_intervals": [runs(np.array([m["alert"] for m in frames])) for frames in (reference, other)],
            "pred_agree": float(np.mean([a["pred"] == b["pred"] for a, b in zip(reference, other, strict=True)])),
            "ood_agree": float(np.mean([a["ood"] == b["ood"] for a, b in zip(reference, other, strict=True)])),
            "score_difference": {"mean_abs": float(np.abs(difference).mean()), "mean": float(difference.mean()),
                                 "p99_abs": float(np.percentile(np.abs(difference), 99)),
                                 "max_abs": float(np.abs(difference).max())}}


def compare_replays(video: Path, config: Path, folder: Path) -> dict:
    frames = {}
    for precision in PRECISIONS:
        document = yaml.safe_load(config.read_text())
        document.setdefault("model", {})["precision"] = precision
        document["model"]["weights"] = str((config.parent / document["model"]["weights"]).resolve())
        document["artifact"] = str((config.parent / document["artifact"]).resolve())
        (folder / f"{precision}.yaml").write_text(yaml.safe_dump(document))
        frames[precision] = replay_frames(video, folder / f"{precision}.yaml",
                                          folder / f"{video.stem}-{precision}.jsonl")
    return compare_frames(frames["float32"], frames["bfloat16"])


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--data", type=Path, required=True, help="the benchmark: ID/val and OOD/* (prepare_data.py)")
    parser.add_argument("--video", type=Path, action="append", default=[], help="a clip to replay both ways")
    parser.add_argument("--calibration-video", type=Path, help="in-distribution video: its alerts are false")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    validation = list_images(args.data / "ID" / "val")
    ood_folders = sorted(path for path in (args.data / "OOD").iterdir() if path.is_dir())
    if not validation or not ood_folders:
        sys.exit(f"precision_check: {args.data} needs ID/val and OOD/* (scripts/prepare_data.py)")
    bundles = {}
    for precision in PRECISIONS:
        config = load_config(args.config)
        config.model.precision = precision
        bundles[precision] = load_bundle(config)
        bundles[precision].forward = bundles[precision].forward or bundles[precision].classifier
    results: dict = {"forward_img_per_s": forward_speed(bundles, args.seconds, args.rounds), "detection": {}}
    log.info("forward, batch 16: %s", results["forward_img_per_s"])
    for precision, bundle in bundles.items():
        id_scores = detector_scores(bundle, validation)
        synthetic = np.concatenate([detector_scores(bundle, validation, t) for t in OUTLIER_TRANSFORMS.values()])
        by_folder = {folder.name: detector_scores(bundle, list_images(folder)) for folder in ood_folders}
        row = {"synthetic": ood_metrics(id_scores, synthetic),
               "pooled OOD": ood_metrics(id_scores, np.concatenate(list(by_folder.values())))}
        row.update({name: ood_metrics(id_scores, scores) for name, scores in by_folder.items()})
        results["detection"][precision] = {name: {key: round(value, 2) for key, value in metrics.items()
                                                  if key in ("auroc", "fpr95")} for name, metrics in row.items()}
        log.info("%s: %s", precision, results["detection"][precision])
    with tempfile.TemporaryDirectory() as tmp:
        for video in [*args.video, *([args.calibration_video] if args.calibration_video else [])]:
            results[video.name] = compare_replays(video, args.config.resolve(), Path(tmp))
            log.info("%s: %s", video.name, results[video.name])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    sys.stdout.write(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
