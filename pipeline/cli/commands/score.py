"""Score still images: one JSON line per image with the prediction and the out-of-distribution score.

Fields: path, pred, prob, detector (which score, config key `detector`: relevance-patch by default), score,
threshold (of that detector), ood (unusable input or score > threshold) and reason (why: "score", or the
input-quality guard's "quality:dark|bright|uniform|noise|blur"; null when in distribution). Lines go to
stdout, or to --jsonl FILE (written and flushed one by one, so a run stopped by a bad file keeps every line
before it).

example:
  nero score frame1.jpg some/folder --jsonl scores.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import ExitStack
from pathlib import Path

from pipeline.errors import UserError

log = logging.getLogger(__name__)

HELP = "score images (files or folders) and print one JSON line each"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders")
    parser.add_argument("--config", metavar="FILE", help="YAML config (default: the bundled configs/default.yaml)")
    parser.add_argument("--jsonl", metavar="FILE", type=Path, help="write the JSON lines here instead of stdout")
    parser.add_argument("--batch-size", metavar="N", type=int, default=16)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from pipeline.config import load_config
    from pipeline.media.images import list_images, read_rgb
    from pipeline.model.bundle import load_bundle
    from pipeline.ood.alert import ood_reason

    paths = [image for root in args.paths for image in list_images(root)]
    if not paths:
        raise UserError(f"no images found in {', '.join(map(str, args.paths))}")
    bundle = load_bundle(load_config(args.config))
    flagged, unreadable = 0, []
    with ExitStack() as stack:
        try:
            out = stack.enter_context(args.jsonl.open("w")) if args.jsonl else sys.stdout
        except OSError as error:
            raise UserError(f"cannot write {args.jsonl}: {error.strerror}") from None
        bar = stack.enter_context(tqdm(total=len(paths), unit="img", disable=None, file=sys.stderr))
        for start in range(0, len(paths), args.batch_size):
            chunk, images = [], []
            for path in paths[start:start + args.batch_size]:
                try:   # one bad image must not cost the lines of the others in its batch
                    images.append(torch.from_numpy(read_rgb(path)))
                    chunk.append(path)
                except UserError as error:
                    log.error("%s", error)
                    unreadable.append(path)
            bar.update(len(paths[start:start + args.batch_size]))
            if not chunk:
                continue
            inference = bundle.infer(images)
            confidence, predicted = inference.probs.max(dim=1)
            rows = zip(chunk, predicted.tolist(), confidence.tolist(), inference.terms.score.tolist(),
                       inference.quality, strict=True)
            for path, pred, prob, score, quality in rows:
                reason = ood_reason(score, bundle.threshold, quality)
                flagged += reason is not None
                record = {"path": str(path), "pred": bundle.class_names[pred], "prob": round(prob, 6),
                          "detector": bundle.detector, "score": round(score, 6),
                          "threshold": round(bundle.threshold, 6), "ood": reason is not None, "reason": reason}
                out.write(json.dumps(record) + "\n")
                out.flush()
    log.info("%d images scored, %d flagged as out-of-distribution (threshold %.4g)", len(paths) - len(unreadable),
             flagged, bundle.threshold)
    if unreadable:
        raise UserError(f"{len(unreadable)} of {len(paths)} images could not be read (named above); every other "
                        "image has its line")
    return 0
