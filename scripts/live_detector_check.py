"""Which live detector? Candidates judged by the rule the live detector is chosen by: the synthetic outliers
(jigsaw and channel-rotated copies of the in-distribution validation windows) over each candidate's alert
threshold for 1 false alarm per hour of in-distribution video, under the config's alert rule; with --video,
what each does on a clip with truth (reported beside, never used to choose).

    python scripts/live_detector_check.py --data work/benchmark \
        --calibration-video work/calibration/calibration.mp4 --video scripts/demo/clip.mp4

Candidates, all fitted on the training windows plus the bank's unlabelled windows, with the configured model:
- `relevance-knn` (k 20, feature weight 0.75): the previous live default;
- `patch-knn`: patch kNN alone (pipeline/ood/detectors/patch_knn.py), the mean over a frame's patches, and
  `patch-knn, max over patches` (PatchCore's reading of the same distances);
- `relevance-patch, mean`: the mean of the two parts, each over its held-out scale (as relevance-ensemble
  combines its parts);
- `relevance-patch`: the larger of the two (pipeline/ood/detectors/relevance_patch.py).
With --coreset, patch kNN's bank is PatchCore's greedy coreset instead of a random sample (tried
2026-12-05 for a smaller, cheaper bank; not adopted: docs/RESULTS.md).
The model's outputs are cached in --cache (keyed by the weights' hash): about 6 minutes on the 2-core CPU the
first time (17,000 calibration frames), seconds after.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from operating_points import video_outcome  # noqa: E402
from representation_check import benchmark_arguments, check_inputs  # noqa: E402

from pipeline.config import load_config  # noqa: E402
from pipeline.errors import UserError  # noqa: E402
from pipeline.evaluation.cache import OUTPUTS, Transformed  # noqa: E402
from pipeline.evaluation.datasets import OUTLIER_TRANSFORMS  # noqa: E402
from pipeline.media.images import image_folder, list_images  # noqa: E402
from pipeline.media.video import video_info  # noqa: E402
from pipeline.model.backend import Forward, make_forward  # noqa: E402
from pipeline.model.bundle import configured_model  # noqa: E402
from pipeline.model.classifier import file_sha256  # noqa: E402
from pipeline.model.features import extract_features, extract_video_features  # noqa: E402
from pipeline.ood.detectors.base import FitData  # noqa: E402
from pipeline.ood.detectors.patch_knn import BANK_SIZE, PatchKNN  # noqa: E402
from pipeline.ood.detectors.relevance_knn import RelevanceKNN  # noqa: E402
from pipeline.ood.detectors.relevance_patch import RelevancePatch  # noqa: E402
from pipeline.ood.nero import relevance  # noqa: E402
from pipeline.ood.operating_point import calibrate  # noqa: E402
from pipeline.ood.truth import Truth, truth_path  # noqa: E402

K, FEATURE_WEIGHT = 20, 0.75


def greedy_coreset(rows: torch.Tensor, size: int) -> torch.Tensor:
    """Indices of `size` of `rows` (N x C), greedily each the row farthest from those chosen before (k-centre,
    as PatchCore picks its memory bank), from a seeded random first one."""
    rows = rows.float().contiguous()
    norms = rows.square().sum(dim=1)
    chosen = [int(torch.randint(len(rows), (1,), generator=torch.Generator().manual_seed(0)))]
    nearest = torch.addmv(norms + norms[chosen[0]], rows, rows[chosen[0]], alpha=-2)   # |x - c|^2
    for _ in range(min(size, len(rows)) - 1):
        chosen.append(int(nearest.argmax()))
        torch.minimum(nearest, torch.addmv(norms + norms[chosen[-1]], rows, rows[chosen[-1]], alpha=-2), out=nearest)
    return torch.tensor(chosen)


class CoresetRelevancePatch(RelevancePatch):
    """relevance-patch with patch kNN's bank chosen by `greedy_coreset` (--coreset)."""

    def _fit_parts(self, data: FitData) -> tuple[RelevanceKNN, PatchKNN]:
        knn, patch = super()._fit_parts(data)
        rows = torch.cat([data.patches, data.unlabelled_patches]).reshape(-1, data.patches.shape[-1])
        return knn, patch._with_bank(rows[greedy_coreset(rows, self.bank_size)])


def model_outputs(config, data: Path, videos: dict[str, Path], cache: Path, forward: Forward | None = None,
                  tag: str = "", folders: dict[str, Path] | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """Per set (train, bank, val, synthetic.*, the videos, `folders`): features, logits and patch features,
    cached. `forward`: the config's unless given (`tag` then names it in the cache), which the synthetic
    outliers go through too; else those take the torch classifier."""
    classifier, preprocess, weights = configured_model(config, "cpu")
    key = file_sha256(weights)
    outlier_model = forward or classifier
    forward = forward or make_forward(config.model.backend, classifier, torch.device("cpu"), config.model.arch, key,
                                      config.preprocess.size, config.model.precision)
    paths = {"train": image_folder(data / "ID" / "train")[0], "bank": list_images(data / "ID" / "bank"),
             "val": image_folder(data / "ID" / "val")[0],
             **{name: list_images(folder) for name, folder in (folders or {}).items()}}
    jobs: dict[str, Callable[[], tuple[torch.Tensor, ...]]] = {
        name: (lambda p=p, n=name: extract_features(forward, preprocess, p, desc=n)) for name, p in paths.items()}
    for name, transform in OUTLIER_TRANSFORMS.items():
        jobs[f"synthetic.{name}"] = lambda t=transform, n=name: extract_features(
            Transformed(outlier_model, t), preprocess, paths["val"], desc=n)
    for name, clip in videos.items():
        jobs[name] = lambda c=clip: extract_video_features(forward, preprocess, c)
    outputs = {}
    for name, job in jobs.items():
        source = videos[name].stem if name in videos else "images"
        path = cache / f"{key[:16]}{tag and '-' + tag}-{name}-{source}.safetensors"
        if not path.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            save_file({o: t.contiguous() for o, t in zip(OUTPUTS, job(), strict=True)}, str(path))
        outputs[name] = load_file(str(path))
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_arguments(__doc__.split("\n")[0], Path("work/live-check"))
    parser.add_argument("--patch-bank", metavar="N", type=int, default=BANK_SIZE,
                        help=f"patches in patch kNN's bank (default {BANK_SIZE}, the bundled detector's)")
    parser.add_argument("--coreset", action="store_true",
                        help="choose patch kNN's bank by PatchCore's greedy coreset, not at random (about 30 s a "
                             "fit for 1,000 of the bundled model's patches)")
    args = parser.parse_args(argv)
    check_inputs(args)
    config = load_config(args.config)
    torch.set_grad_enabled(False)
    videos = {"calibration": args.calibration_video, **({"video": args.video} if args.video else {})}
    rows = model_outputs(config, args.data, videos, args.cache)
    classifier = configured_model(config, "cpu")[0]
    weight, bias = classifier.head.weight.float(), classifier.head.bias.float()
    labels = torch.tensor(image_folder(args.data / "ID" / "train")[1])
    data = FitData(rows["train"]["features"], rows["train"]["logits"], labels, weight, bias,
                   unlabelled=rows["bank"]["features"], patches=rows["train"]["patches"],
                   unlabelled_patches=rows["bank"]["patches"])
    knn = RelevanceKNN(K, FEATURE_WEIGHT).fit(data)
    combined = (CoresetRelevancePatch if args.coreset else RelevancePatch)(K, FEATURE_WEIGHT, args.patch_bank).fit(data)

    def parts(name: str) -> dict[str, np.ndarray]:
        features, patches = rows[name]["features"], rows[name]["patches"]
        found = combined.score_relevance(relevance(features, weight, bias), features, patches)
        return {**{part: value.double().numpy() for part, value in found.parts.items()},
                "max": found.score.double().numpy(),
                "farthest patch": combined.patch.distances(patches).amax(dim=1).double().numpy()}

    scored = {name: parts(name) for name in rows if name not in ("train", "bank")}
    candidates = {
        "relevance-knn": lambda name: knn.score(rows[name]["features"], rows[name]["logits"]).double().numpy(),
        "patch-knn": lambda name: scored[name]["patch-knn"],
        "patch-knn, max over patches": lambda name: scored[name]["farthest patch"],
        "relevance-patch, mean": lambda name: (scored[name]["relevance-knn"] + scored[name]["patch-knn"]) / 2,
        "relevance-patch": lambda name: scored[name]["max"],
    }
    alert = config.alert
    rule = (alert.on_count, alert.window, alert.off_after)
    fps = video_info(args.calibration_video)["fps"] or 25.0
    truth = Truth.read(truth_path(args.video)) if args.video else None
    print("| candidate | alert threshold (1 per hour) | synthetic outliers over it | jigsaw | channels |"
          + (" video: false alarms, delay per OOD segment |" if truth else ""))
    print("|---|---|---|---|---|" + ("---|" if truth else ""))
    for name, score in candidates.items():
        threshold = calibrate([score("calibration")], fps, *rule, rates=(1.0,)).thresholds[1.0]
        over = {t: np.mean(score(f"synthetic.{t}") > threshold) for t in OUTLIER_TRANSFORMS}
        line = (f"| {name} | {threshold:.4g} | {np.mean(list(over.values())):.1%} | "
                + " | ".join(f"{value:.1%}" for value in over.values()) + " |")
        if truth is not None:
            line += f" {video_outcome(score('video'), threshold, threshold, *rule, truth, fps)} |"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as error:
        print(f"live_detector_check: error: {error}", file=sys.stderr)
        sys.exit(2)
