"""Explain why a frame scored as it did: PNGs a person can read at a glance, and the numbers behind them.

For an image, or one frame of a video (--frame N, counted from 0 as `nero replay` counts them, or --time
SECONDS), writes into --out:
  NAME_heatmap.png   the frame, and the frame in grey with the pixels that carry NERO's relevance in
                     yellow/red (full-network LRP from the head down to the pixels; blue = against)
  NAME_neurons.png   which neurons carry the alerting score (the config's `detector`), the ones the alert
                     message's `explain` field lists marked (NERO: relevance against the nearest centroid)
  NAME_score.png     the alerting score split into its parts, against its threshold
  NAME_neighbour.png the frame beside the nearest training window (relevance detectors)
  NAME.json          the same numbers, the `explain` field as an alert would carry it, and the heatmap's
                     relevance conservation check

For a replay's JSONL audit file (with --video, the source it was replayed from), writes an HTML report
instead: the score timeline against the threshold, the alert intervals, and for the highest-scoring frame of
each interval a thumbnail with its heatmap (the same page `nero replay --report DIR` writes).

examples:
  nero explain frame.jpg --out explain/
  nero explain procedure.mp4 --time 12.5 --out explain/
  nero explain replay.jsonl --video procedure.mp4 --out report/
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli.console import emit
from pipeline.errors import UserError
from pipeline.messages import TOP_NEURONS

if TYPE_CHECKING:
    import numpy as np

    from pipeline.model.bundle import Bundle

# Plotting, LRP and video decoding are imported when the command runs, so that discovering the subcommands
# (every `nero` invocation) stays fast.

HELP = "explain a frame (heatmap, neuron and score plots) or a replay (HTML report)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT", type=Path, help="an image, a video, or a replay's JSONL audit file")
    parser.add_argument("--out", metavar="DIR", type=Path, required=True,
                        help="folder to write the PNGs / the report into")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--frame", metavar="N", type=int, help="video frame index, from 0 (default: 0)")
    where.add_argument("--time", metavar="SECONDS", type=float,
                       help="video time in seconds: the first frame at or after it")
    parser.add_argument("--video", metavar="FILE", type=Path,
                        help="with a JSONL audit file: the video it was replayed from")
    parser.add_argument("--top", metavar="N", type=int, default=TOP_NEURONS,
                        help=f"deviating neurons to mark (default: {TOP_NEURONS}, as in the alert message)")
    parser.add_argument("--config", metavar="FILE",
                        help="YAML config: model and artifact (default: the bundled configs/default.yaml)")


def read_video_frame(video: Path, index: int | None, seconds: float | None) -> tuple[np.ndarray, int]:
    """(RGB frame, its index) of the frame at `index`, or of the first at or after `seconds`."""
    from pipeline.media.video import video_frames

    for frame in video_frames(video):
        if (frame.index == (index or 0)) if seconds is None else (frame.pts >= seconds):
            return frame.image, frame.index
    wanted = f"frame {index}" if seconds is None else f"time {seconds} s"
    raise UserError(f"{video} ends before {wanted}")


def explain_frame(bundle: Bundle, frame: np.ndarray, out: Path, name: str, top: int) -> dict:
    """Score, explain and draw one frame; returns what NAME.json holds."""
    import torch

    from pipeline.explain.field import explain_batch
    from pipeline.explain.figures import FrameFacts, write_figures
    from pipeline.explain.heatmap import HeatmapExplainer
    from pipeline.ood.alert import ood_reason

    inference = bundle.infer([torch.from_numpy(frame)])
    (explanation,) = explain_batch(inference, bundle, top=top)
    start = time.perf_counter()
    (heatmap,) = HeatmapExplainer(bundle.classifier, bundle.preprocess)([frame])
    heatmap_s = time.perf_counter() - start
    facts = FrameFacts.of(bundle, inference, 0, explanation)
    paths = write_figures(out, name, frame, heatmap, facts)
    reason = ood_reason(facts.score, facts.threshold, inference.quality[0])
    record = {
        "pred": facts.pred, "prob": round(facts.prob, 6), "score": round(facts.score, 6),
        "detector": facts.detector, "threshold": round(facts.threshold, 6), "ood": reason is not None,
        "reason": reason,
        "explain": explanation,
        "heatmap": {"pixel_total": heatmap.total, "neuron_total": heatmap.feature_total,
                    "conservation_error": heatmap.conservation_error, "seconds": round(heatmap_s, 3)},
        "figures": [path.name for path in paths],
    }
    (out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def run(args: argparse.Namespace) -> int:
    from pipeline.config import load_config
    from pipeline.explain.report import write_report
    from pipeline.media.images import IMAGE_SUFFIXES, read_rgb
    from pipeline.model.bundle import load_bundle

    if args.top < 1:
        raise UserError(f"--top must be at least 1, got {args.top}")
    source = args.input
    if not source.is_file():
        raise UserError(f"no such file: {source}")
    bundle = load_bundle(load_config(args.config))
    if source.suffix.lower() == ".jsonl":
        if args.video is None:
            raise UserError("explaining a replay's audit file needs --video, the source it was replayed from")
        page = write_report(source, args.video, args.out, bundle)
        emit(f"wrote {page}")
        return 0
    if source.suffix.lower() in IMAGE_SUFFIXES:
        if args.frame is not None or args.time is not None:
            raise UserError(f"{source} is an image: --frame and --time apply to videos only")
        frame, name = read_rgb(source), source.stem
    else:
        frame, index = read_video_frame(source, args.frame, args.time)
        name = f"{source.stem}_f{index}"
    record = explain_frame(bundle, frame, args.out, name, args.top)
    explanation = record["explain"]
    nearest = (f"nearest training window {explanation['window']} ({explanation['nearest']})" if "window" in explanation
               else f"nearest centroid '{explanation['nearest']}'" if "nearest" in explanation else "")
    verdict = f"OOD ({record['reason']})" if record["reason"] else "in distribution"
    emit(f"{name}: {record['pred']} ({record['prob']:.0%}), {record['detector']} score {record['score']:.4g} vs "
         f"threshold {record['threshold']:.4g} -> {verdict}; {nearest}")
    heatmap = record["heatmap"]
    emit(f"heatmap in {heatmap['seconds']:.2f} s, conservation error {heatmap['conservation_error']:.1e}; "
          f"wrote {', '.join(record['figures'])} and {name}.json to {args.out}")
    return 0
