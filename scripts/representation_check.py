"""Would another representation let relevance-kNN alert on what the bundled one misses? Candidates judged by
the rule the bundled detector was chosen by (synthetic outliers over the alert threshold for 1 false alarm per
hour of in-distribution video), and, with --video, what each does on a clip with truth.

    python scripts/representation_check.py --data work/benchmark \
        --calibration-video work/calibration/calibration.mp4 --video scripts/demo/clip.mp4

Candidates, each relevance-kNN (k 20, feature weight 0.75, the bank of training and unlabelled windows):
- `configured`: the configured model as the artifact uses it (the bundled LP-FT EfficientNet-Lite0);
- `+ mid-level v`: its embedding with a third block of weight v, the per-channel mean and spatial standard
  deviation of EfficientNet blocks 1-6 (768 channels, each z-scored over the unlabelled windows): the texture and colour
  statistics earlier layers keep and the pooled feature layer may lose (still one value per neuron);
- `imagenet probe`: the frozen ImageNet EfficientNet-Lite0 with a logistic-regression head on its features
  (C = 0.1, the linear-probe candidate of docs/RESULTS.md, fitted as train_classifier.py fits it), so the
  feature space fine-tuning never touched;
- `colour`: not a network at all, kNN (k 5) over Lab colour statistics of the frame (means, deviations, an
  8 x 8 a*b* and an 8-bin L* histogram), the cheapest evidence a person would name first.

Features are cached in --cache (the configured model's by its weights' hash), so a rerun costs no forward.
About 25 minutes on the 2-core CPU the first time (two models over the 17,000 frames of the calibration video).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

from operating_points import video_outcome  # noqa: E402
from train_classifier import logistic_head  # noqa: E402

from pipeline.config import AlertConfig, load_config  # noqa: E402
from pipeline.errors import UserError  # noqa: E402
from pipeline.evaluation.cache import Transformed  # noqa: E402
from pipeline.evaluation.datasets import OUTLIER_TRANSFORMS  # noqa: E402
from pipeline.media.images import image_folder, list_images, read_rgb  # noqa: E402
from pipeline.media.video import video_info  # noqa: E402
from pipeline.model.bundle import configured_model  # noqa: E402
from pipeline.model.classifier import FeatureClassifier, file_sha256  # noqa: E402
from pipeline.model.features import extract_features, extract_video_features  # noqa: E402
from pipeline.ood.detectors.relevance_knn import relevance_embedding  # noqa: E402
from pipeline.ood.index import NeighbourIndex  # noqa: E402
from pipeline.ood.nero import relevance  # noqa: E402
from pipeline.ood.operating_point import calibrate  # noqa: E402
from pipeline.ood.truth import Truth, truth_path  # noqa: E402

K, FEATURE_WEIGHT, COLOUR_K, PROBE_C = 20, 0.75, 5, 0.1
BLOCKS = range(1, 7)                   # EfficientNet stages after the first: 24 ... 320 channels


class MidLevel(torch.nn.Module):
    """The classifier's (features, logits), the features followed by the mean and spatial standard deviation
    of every channel of EfficientNet blocks 1-6 (read by forward hooks)."""

    def __init__(self, classifier: FeatureClassifier) -> None:
        super().__init__()
        self.classifier, self.statistics = classifier, []
        for block in BLOCKS:
            classifier.backbone.model.blocks[block].register_forward_hook(
                lambda _module, _inputs, out: self.statistics.append(torch.cat([out.mean((2, 3)), out.std((2, 3))], 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.statistics.clear()
        features, logits, patches = self.classifier(x)
        return torch.cat([features, *self.statistics], 1), logits, patches


def colour_statistics(rgb: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2LAB)
    lab = lab.reshape(-1, 3).astype(np.float32)
    chroma = np.histogram2d(lab[:, 1], lab[:, 2], bins=8, range=[[96, 192], [96, 192]])[0].ravel() / len(lab)
    lightness = np.histogram(lab[:, 0], bins=8, range=[0, 256])[0] / len(lab)
    return np.r_[lab.mean(0) / 32, lab.std(0) / 32, np.sqrt(chroma), np.sqrt(lightness)].astype(np.float32)


def video_colour(clip: Path) -> torch.Tensor:
    with av.open(str(clip)) as container:
        return torch.from_numpy(np.stack([colour_statistics(frame.to_ndarray(format="rgb24"))
                                          for frame in container.decode(video=0)]))


class Sets:
    """Every image set a candidate needs, extracted once per representation and cached."""

    def __init__(self, data: Path, calibration: Path, video: Path | None, cache: Path) -> None:
        self.paths = {"train": image_folder(data / "ID" / "train")[0],
                      "bank": list_images(data / "ID" / "bank"), "val": image_folder(data / "ID" / "val")[0]}
        self.labels = {name: torch.tensor(image_folder(data / "ID" / name)[1]) for name in ("train", "val")}
        self.videos = {"calibration": calibration, **({"video": video} if video else {})}
        self.cache = cache

    def _cached(self, key: str, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        path = self.cache / f"{key}.safetensors"
        if not path.is_file():
            self.cache.mkdir(parents=True, exist_ok=True)
            save_file({name: tensor.contiguous() for name, tensor in compute().items()}, str(path))
        return load_file(str(path))

    def network(self, key: str, model: MidLevel, preprocess) -> dict[str, torch.Tensor]:
        def compute() -> dict[str, torch.Tensor]:
            rows = {name: extract_features(model, preprocess, paths, desc=name)[0]
                    for name, paths in self.paths.items()}
            for name, transform in OUTLIER_TRANSFORMS.items():
                rows[f"synthetic.{name}"] = extract_features(Transformed(model, transform), preprocess,
                                                             self.paths["val"], desc=name)[0]
            for name, clip in self.videos.items():
                rows[name] = extract_video_features(model, preprocess, clip)[0]
            return rows
        return self._cached(key, compute)

    def colour(self) -> dict[str, torch.Tensor]:
        def compute() -> dict[str, torch.Tensor]:
            rows = {name: torch.from_numpy(np.stack([colour_statistics(read_rgb(p)) for p in paths]))
                    for name, paths in self.paths.items()}
            rows.update({f"synthetic.{name}": torch.from_numpy(np.stack(
                [colour_statistics(transform(torch.from_numpy(read_rgb(p)).permute(2, 0, 1)[None].float() / 255)
                                   [0].permute(1, 2, 0).mul(255).round().byte().numpy()) for p in self.paths["val"]]))
                for name, transform in OUTLIER_TRANSFORMS.items()})
            rows.update({name: video_colour(clip) for name, clip in self.videos.items()})
            return rows
        return self._cached("colour", compute)


def embedder(weight: torch.Tensor, bias: torch.Tensor, bank: torch.Tensor, mid_weight: float
             ) -> Callable[[torch.Tensor], torch.Tensor]:
    """Rows (features, then mid-level statistics) -> relevance-kNN's unit embedding, with the mid-level block."""
    dim = weight.shape[1]
    mean, std = bank[:, dim:].mean(0), bank[:, dim:].std(0) + 1e-6

    def embed(rows: torch.Tensor) -> torch.Tensor:
        features = rows[:, :dim]
        base = relevance_embedding(relevance(features, weight, bias), features, FEATURE_WEIGHT)
        if mid_weight == 0:
            return base
        mid = F.normalize((rows[:, dim:] - mean) / std, dim=1)
        return torch.cat([math.sqrt(1 - mid_weight) * base, math.sqrt(mid_weight) * mid], 1)
    return embed


def judge(name: str, rows: dict[str, torch.Tensor], embed: Callable[[torch.Tensor], torch.Tensor], k: int,
          alert: AlertConfig, fps: float, truth: Truth | None, accuracy: str) -> str:
    """One table row: the alert threshold for 1 false alarm per hour of the calibration video under the config's
    alert rule, the synthetic outliers over it, and with `truth` the clip through that rule."""
    index = NeighbourIndex(embed(torch.cat([rows["train"], rows["bank"]])).half().float())

    def scores(part: str) -> np.ndarray:
        return index.search(embed(rows[part]), k)[0][:, -1].double().numpy()

    rule = (alert.on_count, alert.window, alert.off_after)
    points = calibrate([scores("calibration")], fps, *rule, rates=(1.0,))
    threshold = points.thresholds[1.0]
    synthetic = np.concatenate([scores(f"synthetic.{t}") for t in OUTLIER_TRANSFORMS])
    row = f"| {name} | {accuracy} | {threshold:.4g} | {np.mean(synthetic > threshold):.1%} |"
    if truth is not None:
        row += f" {video_outcome(scores('video'), threshold, threshold, *rule, truth, fps)} |"
    return row


def benchmark_arguments(description: str, cache: Path) -> argparse.ArgumentParser:
    """The inputs every selection check reads (this one, live_detector_check.py): config, data, videos, cache."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="config naming the model and artifact (default: the bundled one)")
    parser.add_argument("--data", type=Path, default=Path("work/benchmark"), help="scripts/prepare_data.py's output")
    parser.add_argument("--calibration-video", type=Path, required=True, help="in-distribution video")
    parser.add_argument("--video", type=Path, help="a clip with VIDEO.truth.csv beside it")
    parser.add_argument("--cache", type=Path, default=cache)
    return parser


def check_inputs(args: argparse.Namespace) -> None:
    """A one-line error for a missing input, before any model loads."""
    for path in [args.data / "ID" / "bank", args.calibration_video] + ([args.video] if args.video else []):
        if not path.exists():
            raise UserError(f"{path} not found (scripts/prepare_data.py, make_demo_clip.py --calibration)")


def main(argv: list[str] | None = None) -> int:
    args = benchmark_arguments(__doc__.split("\n")[0], Path("work/representations")).parse_args(argv)
    check_inputs(args)
    config = load_config(args.config)
    if config.model.arch != "efficientnet_lite0":
        raise UserError("the mid-level statistics and the ImageNet probe exist for efficientnet_lite0 only")
    torch.set_grad_enabled(False)
    truth = Truth.read(truth_path(args.video)) if args.video else None
    fps = video_info(args.calibration_video)["fps"] or 25.0
    sets = Sets(args.data, args.calibration_video, args.video, args.cache)
    classifier, preprocess, _ = configured_model(config, "cpu")
    from pipeline.model.pretrained import imagenet_efficientnet_lite0

    imagenet = imagenet_efficientnet_lite0()
    imagenet.reset_classifier(2)
    configured_key = f"configured-{file_sha256(config.resolve(config.model.weights))[:16]}"
    configured = sets.network(configured_key, MidLevel(classifier), preprocess)
    frozen = sets.network("imagenet-frozen", MidLevel(FeatureClassifier(imagenet).eval()), preprocess)
    heads = {"configured": (classifier.head.weight.float(), classifier.head.bias.float()),
             "imagenet probe": logistic_head(frozen["train"][:, :1280], sets.labels["train"].numpy(), PROBE_C)[1:]}

    def accuracy(rows: dict[str, torch.Tensor], head: tuple[torch.Tensor, torch.Tensor]) -> str:
        logits = rows["val"][:, :head[0].shape[1]] @ head[0].T + head[1]
        return f"{(logits.argmax(1) == sets.labels['val']).float().mean().item():.2%}"

    print("| representation | ID accuracy | alert threshold (1 per hour) | synthetic outliers over it |"
          + (" video: false alarms, delay per OOD segment |" if truth else ""))
    print("|---|---|---|---|" + ("---|" if truth else ""))
    for mid_weight in (0.0, 0.1, 0.25):
        name = "configured" + (f" + mid-level {mid_weight}" if mid_weight else "")
        embed = embedder(*heads["configured"], configured["bank"], mid_weight)
        print(judge(name, configured, embed, K, config.alert, fps, truth, accuracy(configured, heads["configured"])),
              flush=True)
    embed = embedder(*heads["imagenet probe"], frozen["bank"], 0.0)
    print(judge("imagenet probe", frozen, embed, K, config.alert, fps, truth,
                accuracy(frozen, heads["imagenet probe"])), flush=True)
    print(judge("colour", sets.colour(), lambda rows: rows, COLOUR_K, config.alert, fps, truth, "-"), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as error:
        print(f"representation_check: error: {error}", file=sys.stderr)
        sys.exit(2)
