"""Can the forward run in int8 and keep the live detector? OpenVINO's float32 model quantized by NNCF's
post-training quantization, calibrated on training windows, against the float32 forward on the same data.

    pip install 'nero-monitor[int8]'    # NNCF
    python scripts/int8_check.py --data work/benchmark \
        --calibration-video work/calibration/calibration.mp4 --video scripts/demo/clip.mp4

The bar (issue 12): the live detector's validation AUROC (the validation windows against their synthetic
outliers, jigsaw and channel-rotated) within 0.5 points of float32's. Each forward is fitted on its own
features, as `nero fit` would fit it. Also reported, never used to decide: the synthetic outliers over the
alert threshold for 1 false alarm per hour of the calibration video (the rule the live detector is chosen
by), the OOD folders' AUROC, the demo clip's alerts, how far features move, and the forward's speed
(batches of 16, alternating rounds). The float32 rows are live_detector_check.py's cache (its synthetic
outliers went through the torch model, within 2e-6 of OpenVINO's); each quantization's rows are cached
beside them under its name.

Quantizations tried (`VARIANTS`):
- `nncf-default`: `model.precision: int8`'s (pipeline/model/quantize.py): every layer NNCF quantizes by
  default, its fast bias correction;
- `convolutions`: the convolutions only (the patch branch's pooling, the global pooling and the head in
  float), NNCF's exact bias correction: features closer to float32's;
- `pointwise`: the depthwise convolutions kept in float too.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from live_detector_check import FEATURE_WEIGHT, K, model_outputs  # noqa: E402
from operating_points import video_outcome  # noqa: E402
from representation_check import benchmark_arguments, check_inputs  # noqa: E402

from pipeline.config import load_config  # noqa: E402
from pipeline.errors import UserError  # noqa: E402
from pipeline.evaluation.datasets import OUTLIER_TRANSFORMS  # noqa: E402
from pipeline.evaluation.metrics import bootstrap_intervals, rank_auroc  # noqa: E402
from pipeline.media.images import image_folder, read_rgb  # noqa: E402
from pipeline.media.video import video_info  # noqa: E402
from pipeline.model.backend import OpenVinoForward, openvino_model  # noqa: E402
from pipeline.model.bundle import configured_model  # noqa: E402
from pipeline.model.classifier import file_sha256  # noqa: E402
from pipeline.model.quantize import CALIBRATION, calibration_frames, quantize, require_nncf  # noqa: E402
from pipeline.ood.detectors.base import FitData  # noqa: E402
from pipeline.ood.detectors.patch_knn import BANK_SIZE  # noqa: E402
from pipeline.ood.detectors.relevance_patch import RelevancePatch  # noqa: E402
from pipeline.ood.nero import relevance  # noqa: E402
from pipeline.ood.operating_point import calibrate  # noqa: E402
from pipeline.ood.truth import Truth, truth_path  # noqa: E402

FLOAT_OPERATIONS = ("AvgPool", "AdaptiveAvgPool", "Concat", "ReduceMean", "MatMul")   # the patch pooling, the head
VARIANTS = {     # quantize()'s settings: operations left in float, NNCF's exact bias correction
    "nncf-default": {},                                                   # model.precision: int8's
    "convolutions": {"float_operations": FLOAT_OPERATIONS, "exact_bias": True},
    "pointwise": {"float_operations": (*FLOAT_OPERATIONS, "GroupConvolution"), "exact_bias": True},
}
AUROC_BAR = 0.5         # points of validation AUROC int8 may lose (issue 12)
BOOTSTRAP_ROUNDS = 1000
SPEED_ROUNDS, SPEED_BATCH = 3, 16


def paired_auroc_difference(ids: tuple[np.ndarray, np.ndarray], outliers: tuple[np.ndarray, np.ndarray],
                            copies: int) -> list[float]:
    """95% interval (points) of AUROC(second) - AUROC(first) when the validation windows are resampled, each
    with its `copies` synthetic outliers (`outliers` holds them copy by copy, windows in order)."""
    rng = np.random.default_rng(0)
    count = len(ids[0])
    differences = []
    for _ in range(BOOTSTRAP_ROUNDS):
        chosen = rng.integers(count, size=count)
        rows = np.concatenate([chosen + copy * count for copy in range(copies)])
        first, second = (rank_auroc(ids[i][chosen], outliers[i][rows]) for i in (0, 1))
        differences.append(100 * (second - first))
    return [round(value, 2) for value in np.percentile(differences, [2.5, 97.5])]


def images_a_second(forwards: dict[str, OpenVinoForward], inputs: torch.Tensor) -> dict[str, float]:
    """Each forward's median images a second over batches of SPEED_BATCH, in alternating rounds."""
    rates: dict[str, list[float]] = {name: [] for name in forwards}
    for _ in range(SPEED_ROUNDS):
        for name, forward in forwards.items():
            start = time.perf_counter()
            for first in range(0, len(inputs), SPEED_BATCH):
                forward(inputs[first:first + SPEED_BATCH])
            rates[name].append(len(inputs) / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_arguments(__doc__.split("\n")[0], Path("work/live-check"))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--calibration-images", type=int, default=CALIBRATION, metavar="N",
                        help=f"training windows NNCF takes activation ranges from (default {CALIBRATION}, "
                             "model.precision int8's)")
    args = parser.parse_args(argv)
    check_inputs(args)
    require_nncf()
    config = load_config(args.config)
    torch.set_grad_enabled(False)
    classifier, preprocess, weights = configured_model(config, "cpu")
    model = openvino_model(classifier, config.model.arch, file_sha256(weights), config.preprocess.size)
    train, labels = image_folder(args.data / "ID" / "train")[:2]
    frames = calibration_frames(preprocess, train, args.calibration_images)
    forwards = {"float32": OpenVinoForward(model)}
    for variant in args.variants:
        forwards[variant] = OpenVinoForward(quantize(model, frames, **VARIANTS[variant]))
    videos = {"calibration": args.calibration_video, **({"video": args.video} if args.video else {})}
    folders = {f"ood.{folder.name}": folder for folder in sorted((args.data / "OOD").iterdir()) if folder.is_dir()}
    rows = {name: model_outputs(config, args.data, videos, args.cache, None if name == "float32" else forward,
                                "" if name == "float32" else f"int8-{name}-{len(frames)}", folders)
            for name, forward in forwards.items()}
    weight, bias = classifier.head.weight.float(), classifier.head.bias.float()
    alert = config.alert
    rule = (alert.on_count, alert.window, alert.off_after)
    fps = video_info(args.calibration_video)["fps"] or 25.0
    truth = Truth.read(truth_path(args.video)) if args.video else None

    scores: dict[str, dict[str, np.ndarray]] = {}
    for name, outputs in rows.items():
        detector = RelevancePatch(K, FEATURE_WEIGHT, BANK_SIZE).fit(FitData(
            outputs["train"]["features"], outputs["train"]["logits"], torch.tensor(labels), weight, bias,
            unlabelled=outputs["bank"]["features"], patches=outputs["train"]["patches"],
            unlabelled_patches=outputs["bank"]["patches"]))
        scores[name] = {
            part: detector.score_relevance(relevance(found["features"], weight, bias), found["features"],
                                           found["patches"]).score.double().numpy()
            for part, found in outputs.items() if part not in ("train", "bank")}

    reference = rows["float32"]["val"]
    synthetic = [f"synthetic.{name}" for name in OUTLIER_TRANSFORMS]
    float32_outliers = np.concatenate([scores["float32"][part] for part in synthetic])
    speed = images_a_second(forwards, torch.cat([preprocess([torch.from_numpy(read_rgb(path))]) for path in
                                                 image_folder(args.data / "ID" / "val")[0][:160]]))
    print("| forward | images/s (batch 16) | features moved (median, relative) | validation predictions as float32 "
          "| validation AUROC | vs float32 (95% interval) | synthetic over the 1-per-hour threshold | OOD folders "
          "AUROC (95% interval) |" + (" demo clip: false alarms, delay per OOD segment |" if truth else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|" if truth else ""))
    verdicts = []
    for name, found in scores.items():
        val = rows[name]["val"]
        moved = ((val["features"] - reference["features"]).norm(dim=1) / reference["features"].norm(dim=1)).median()
        agree = (val["logits"].argmax(1) == reference["logits"].argmax(1)).float().mean()
        outliers = np.concatenate([found[part] for part in synthetic])
        auroc = 100 * rank_auroc(found["val"], outliers)
        interval = paired_auroc_difference((scores["float32"]["val"], found["val"]), (float32_outliers, outliers),
                                           len(synthetic))
        difference = auroc - 100 * rank_auroc(scores["float32"]["val"], float32_outliers)
        threshold = calibrate([found["calibration"]], fps, *rule, rates=(1.0,)).thresholds[1.0]
        over = np.mean(outliers > threshold)
        ood = np.concatenate([found[part] for part in found if part.startswith("ood.")])
        ood_interval = bootstrap_intervals(found["val"], ood)["auroc"]
        line = (f"| {name} | {speed[name]:.0f} | {float(moved):.3f} | {float(agree):.1%} | {auroc:.2f} | "
                f"{difference:+.2f} [{interval[0]:+.2f}, {interval[1]:+.2f}] | {over:.1%} | "
                f"{100 * rank_auroc(found['val'], ood):.2f} [{ood_interval[0]:.2f}, {ood_interval[1]:.2f}] |")
        if truth is not None:
            line += f" {video_outcome(found['video'], threshold, threshold, *rule, truth, fps)} |"
        print(line, flush=True)
        if name != "float32":
            verdicts.append(f"{name}: {'keeps' if difference >= -AUROC_BAR else 'does not keep'} the validation "
                            f"AUROC within {AUROC_BAR} points of float32's")
    print("\n".join(["", *verdicts]))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as error:
        print(f"int8_check: error: {error}", file=sys.stderr)
        sys.exit(2)
