"""OOD evaluation: score every detector on in-distribution test images and each OOD set, write the report.

The work behind `nero eval`. Features (and ODIN's input-gradient scores) are computed once per model and
image set and cached on disk, keyed by the weights' sha256, the preprocessing and the image files, so a rerun
with other detectors or another output folder costs no forward pass.

Metrics (x100, OOD = positive class), as NERO's reference reports them (docs NERO.md, section 4):
AUROC; FPR@95TPR = share of OOD scores at or below the in-distribution test score at sorted index
floor(0.95 n); AUPR-In (ID positive, score negated) and AUPR-Out (OOD positive), as OpenOOD and pytorch-ood.

Hyperparameters that some detectors choose (`pipeline.detectors.tuned`) are chosen on in-distribution data
only: held-out training images (or --id-val) against synthetic outliers made from them (patch-shuffled and
colour-channel-rotated copies), never on the OOD sets reported here.

Video (optional): every feature-space detector also scores each frame of a clip with per-frame ground truth
(`CLIP.truth.csv`, column `ood`), raw and after causal temporal smoothing of the score (moving mean or median
over the last W frames, as a live monitor could run it). The threshold is the one `nero fit` would set: 95%
of the in-distribution test images score at or below it. Reported per setting: frame-level AUROC, the share
of ID / OOD frames over the threshold, and, through the monitor's own alert hysteresis (`stages.alert`),
false alerts per minute of in-distribution video, OOD segments missed and the delay to the first alert.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from tqdm import tqdm

from pipeline.bundle import configured_model
from pipeline.config import AlertConfig, Config
from pipeline.detectors import (
    DETECTORS,
    AnyDetector,
    Detector,
    FitData,
    InputDetector,
    Validation,
    build_detector,
)
from pipeline.detectors.tuned import Tuned, validation_auroc
from pipeline.errors import UserError
from pipeline.features import extract_features
from pipeline.images import image_folder, list_images, read_rgb
from pipeline.models import FeatureClassifier, file_sha256
from stages.alert import Hysteresis
from stages.preprocess import Preprocess
from stages.source import open_source

ALL = "all"
TPR_LEVEL = 0.95
JIGSAW_GRID = 4
METRICS = ("auroc", "fpr95", "aupr_in", "aupr_out")
Results = dict[str, dict[str, dict[str, float]]]   # method -> OOD set (and "all") -> metric -> value
ID_QUANTILE = 0.95                       # the alert threshold rule of `nero fit`
SMOOTHING = ("none", "mean5", "mean13", "mean25", "median5", "median13", "median25")


# ---------------------------------------------------------------- metrics

def fpr_at_tpr(id_scores: np.ndarray, ood_scores: np.ndarray, level: float = TPR_LEVEL) -> float:
    """Share of OOD scores at or below the ID score at sorted index floor(level * n) (NERO reference rule)."""
    threshold = np.sort(id_scores)[int(np.floor(level * len(id_scores)))]
    return float(np.mean(ood_scores <= threshold))


def ood_metrics(id_scores: np.ndarray, ood_scores: np.ndarray) -> dict[str, float]:
    """AUROC, FPR@95TPR, AUPR-In, AUPR-Out in percent; higher score = more OOD."""
    id_scores, ood_scores = np.asarray(id_scores, np.float64), np.asarray(ood_scores, np.float64)
    truth = np.concatenate([np.zeros(len(id_scores)), np.ones(len(ood_scores))])
    scores = np.concatenate([id_scores, ood_scores])
    return {
        "auroc": 100.0 * roc_auc_score(truth, scores),
        "fpr95": 100.0 * fpr_at_tpr(id_scores, ood_scores),
        "aupr_in": 100.0 * average_precision_score(1 - truth, -scores),
        "aupr_out": 100.0 * average_precision_score(truth, scores),
    }


# ---------------------------------------------------------------- image sets and the feature cache

@dataclass
class ImageSet:
    name: str
    paths: list[Path]
    labels: list[int] | None = None


def folder_set(name: str, root: Path, classes: Sequence[str] | None = None) -> tuple[ImageSet, list[str]]:
    """An ImageFolder as a labelled set; with `classes`, its class folders must be exactly those."""
    paths, labels, found = image_folder(root)
    if classes is not None and list(found) != list(classes):
        raise UserError(f"{root} has classes {found} but the training folder has {list(classes)}")
    return ImageSet(name, paths, labels), found


def ood_sets(roots: Sequence[Path]) -> list[ImageSet]:
    """One unlabelled set per OOD folder (images directly inside or in subfolders), named after the folder."""
    sets = []
    for root in roots:
        paths = list_images(root)
        if not paths:
            raise UserError(f"OOD folder {root} holds no images")
        sets.append(ImageSet(Path(root).resolve().name, paths))
    return sets


def jigsaw(inputs: torch.Tensor, grid: int = JIGSAW_GRID) -> torch.Tensor:
    """Shuffle a grid x grid tiling of each image with one fixed derangement (no tile stays in place)."""
    n, c, h, w = inputs.shape
    th, tw = h // grid, w // grid
    tiles = inputs[:, :, : th * grid, : tw * grid].reshape(n, c, grid, th, grid, tw).permute(0, 1, 2, 4, 3, 5)
    tiles = tiles.reshape(n, c, grid * grid, th, tw)
    order = torch.roll(torch.arange(grid * grid), shifts=grid + 1)     # every tile moves a row and a column
    shuffled = tiles[:, :, order].reshape(n, c, grid, grid, th, tw).permute(0, 1, 2, 4, 3, 5)
    out = inputs.clone()
    out[:, :, : th * grid, : tw * grid] = shuffled.reshape(n, c, th * grid, tw * grid)
    return out


def rotate_channels(inputs: torch.Tensor) -> torch.Tensor:
    """RGB -> GBR: the same scene in colours no endoscope produces."""
    return inputs[:, [1, 2, 0]]


OUTLIER_TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "jigsaw": jigsaw, "channels": rotate_channels,
}


class Transformed(torch.nn.Module):
    """The classifier seen through an input transform (for the synthetic validation outliers)."""

    def __init__(self, classifier: FeatureClassifier,
                 transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.classifier = classifier
        self.transform = transform

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.classifier(self.transform(x))


class FeatureCache:
    """Per-model, per-image-set cache of features, logits and input-detector scores (safetensors files)."""

    def __init__(self, directory: Path, classifier: FeatureClassifier, preprocess: Preprocess, model_key: str,
                 device: torch.device | str, batch_size: int = 32) -> None:
        self.directory = Path(directory)
        self.classifier = classifier
        self.preprocess = preprocess
        self.model_key = model_key
        self.device = device
        self.batch_size = batch_size

    def _file(self, kind: str, paths: Sequence[Path]) -> Path:
        digest = hashlib.sha256(f"{self.model_key}|{kind}".encode())
        for path in paths:
            stat = Path(path).stat()
            digest.update(f"|{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return self.directory / f"{kind}-{digest.hexdigest()[:20]}.safetensors"

    def _cached(self, kind: str, paths: Sequence[Path],
                compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        file = self._file(kind, paths)
        if file.is_file():
            return load_file(str(file))
        tensors = {name: t.contiguous() for name, t in compute().items()}
        self.directory.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(file))
        return tensors

    def features(self, image_set: ImageSet, transform: str | None = None) -> tuple[torch.Tensor, ...]:
        """(features N x D, logits N x C) of a set, optionally through one of OUTLIER_TRANSFORMS."""
        model, label = self.classifier, image_set.name
        if transform is not None:
            model, label = Transformed(self.classifier, OUTLIER_TRANSFORMS[transform]), f"{label}.{transform}"

        def compute() -> dict[str, torch.Tensor]:
            features, logits = extract_features(model, self.preprocess, image_set.paths, self.batch_size,
                                                self.device, desc=label)
            return {"features": features, "logits": logits}

        tensors = self._cached(f"features{'.' + transform if transform else ''}", image_set.paths, compute)
        return tensors["features"], tensors["logits"]

    def video_features(self, clip: Path) -> tuple[torch.Tensor, ...]:
        """(features, logits) of every decoded frame of a video file, in order."""

        def compute() -> dict[str, torch.Tensor]:
            source = open_source(str(clip), "eval")
            features, logits, batch = [], [], []

            def flush() -> None:
                frames = torch.from_numpy(np.stack(batch)).to(self.device)
                with torch.no_grad():
                    f, lg = self.classifier(self.preprocess(frames))
                features.append(f.float().cpu())
                logits.append(lg.float().cpu())
                batch.clear()

            try:
                for frame in tqdm(source, desc=clip.name, unit="frame", leave=False, disable=None):
                    batch.append(frame.image)
                    if len(batch) == self.batch_size:
                        flush()
                if batch:
                    flush()
            finally:
                source.close()
            return {"features": torch.cat(features), "logits": torch.cat(logits)}

        tensors = self._cached("video", [clip], compute)
        return tensors["features"], tensors["logits"]

    def input_scores(self, detector: InputDetector, image_set: ImageSet) -> torch.Tensor:
        """An input-gradient detector's scores of a set, batch by batch through the classifier."""
        settings = ",".join(f"{k}={v}" for k, v in sorted(detector.params().items()))

        def compute() -> dict[str, torch.Tensor]:
            scores = []
            paths = image_set.paths
            with tqdm(total=len(paths), desc=f"{detector.name} {image_set.name}", unit="img", leave=False,
                      disable=None) as bar:
                for start in range(0, len(paths), self.batch_size):
                    chunk = paths[start:start + self.batch_size]
                    frames = [torch.from_numpy(read_rgb(path)).to(self.device) for path in chunk]
                    scores.append(detector.score_inputs(self.classifier, self.preprocess(frames)).cpu())
                    bar.update(len(chunk))
            return {"scores": torch.cat(scores).float()}

        return self._cached(f"{detector.name}[{settings}]", image_set.paths, compute)["scores"]


# ---------------------------------------------------------------- video

@dataclass
class Video:
    """A clip with per-frame truth, and what each detector made of it (filled in by `evaluate`)."""

    clip: Path
    truth: np.ndarray                                   # per frame: True = out-of-distribution
    fps: float
    alert: AlertConfig
    scores: dict[str, np.ndarray] = field(default_factory=dict)         # method -> raw frame scores
    thresholds: dict[str, float] = field(default_factory=dict)
    results: dict[str, dict[str, dict]] = field(default_factory=dict)   # method -> smoothing -> metrics

    @classmethod
    def load(cls, clip: Path, alert: AlertConfig) -> Video:
        """The clip and its sidecar CLIP.truth.csv (one row per frame, column `ood` = 0/1)."""
        truth_file = clip.with_suffix(".truth.csv")
        if not truth_file.is_file():
            raise UserError(f"no per-frame truth for {clip}: expected {truth_file} with a column 'ood'")
        with truth_file.open(newline="") as file:
            rows = list(csv.DictReader(file))
        if not rows or "ood" not in rows[0]:
            raise UserError(f"{truth_file} has no 'ood' column")
        source = open_source(str(clip), "eval")
        fps = source.info["fps"] or 25.0
        source.close()
        return cls(clip, np.array([int(row["ood"]) == 1 for row in rows]), fps, alert)

    def add(self, method: str, scores: np.ndarray, threshold: float) -> None:
        if len(scores) != len(self.truth):
            raise UserError(f"{self.clip} decodes to {len(scores)} frames but its truth file has "
                            f"{len(self.truth)} rows")
        self.scores[method], self.thresholds[method] = scores, threshold
        self.results[method] = {
            setting: video_metrics(smooth(scores, setting), self.truth, threshold, self.fps, self.alert)
            for setting in SMOOTHING}


def smooth(scores: np.ndarray, setting: str) -> np.ndarray:
    """Causal smoothing ("mean13" = mean of this frame and the 12 before it; the first frame stands in
    for frames before the start), so a live monitor can run it; "none" leaves the scores as they are."""
    if setting == "none":
        return scores
    kind, window = setting.rstrip("0123456789"), int(setting.lstrip("abcdefghijklmnopqrstuvwxyz"))
    padded = np.concatenate([np.full(window - 1, scores[0]), scores])
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)
    return windows.mean(axis=1) if kind == "mean" else np.median(windows, axis=1)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of True values, end exclusive."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def video_metrics(scores: np.ndarray, truth: np.ndarray, threshold: float, fps: float,
                  alert: AlertConfig) -> dict[str, float | None]:
    """Frame-level AUROC and flag rates, and alerts as the monitor's hysteresis would raise them."""
    flagged = scores > threshold
    hysteresis = Hysteresis(alert.on_count, alert.window, alert.off_after)
    on = np.zeros(len(scores), dtype=bool)
    onsets = []
    for i, frame_flagged in enumerate(flagged.tolist()):
        if hysteresis.update(frame_flagged) and hysteresis.alert:
            onsets.append(i)
        on[i] = hysteresis.alert
    delays = [float(np.argmax(on[start:end])) / fps for start, end in runs(truth) if on[start:end].any()]
    segments = len(runs(truth))
    return {
        "auroc": 100.0 * roc_auc_score(truth, scores),
        "id_flagged": 100.0 * float(flagged[~truth].mean()),
        "ood_flagged": 100.0 * float(flagged[truth].mean()),
        "false_alerts_per_min": sum(not truth[i] for i in onsets) / ((~truth).sum() / fps / 60.0),
        "missed_segments": segments - len(delays),
        "segments": segments,
        "mean_delay_s": float(np.mean(delays)) if delays else None,
    }


# ---------------------------------------------------------------- running the detectors

@dataclass
class Evaluation:
    """Everything `write_report` needs: scores per detector and set, metrics, and how they came about."""

    id_name: str
    scores: dict[str, dict[str, np.ndarray]]                  # method -> set -> scores (id set included)
    results: Results
    info: dict[str, dict[str, object]] = field(default_factory=dict)   # method -> params, timings, validation
    meta: dict[str, object] = field(default_factory=dict)
    video: Video | None = None


def held_out_rows(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """A stratified random `fraction` of the row indices (at least one row per class is kept for fitting)."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for c in torch.unique(labels):
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        rows.append(members[: min(int(round(fraction * len(members))), len(members) - 1)])
    return torch.sort(torch.cat(rows)).values


def build_validation(cache: FeatureCache, train: FitData, train_set: ImageSet, id_val: ImageSet | None,
                     fraction: float, seed: int) -> tuple[Validation, dict[str, object]]:
    """In-distribution validation data for the tuned detectors (see the module docstring)."""
    if id_val is None:
        held = held_out_rows(train.labels.cpu(), fraction, seed)
        if len(held) < 2:
            raise UserError(f"--id-train is too small to hold out {fraction:.0%} for choosing settings; "
                            "pass --id-val or a larger --val-fraction")
        keep = torch.ones(len(train.labels), dtype=torch.bool)
        keep[held] = False
        inlier_set = ImageSet(f"{train_set.name}.held-out", [train_set.paths[i] for i in held.tolist()])
        fit_on = train.subset(torch.nonzero(keep).flatten().to(train.labels.device))
        source = f"{len(held)} held-out training images ({fraction:.0%}, seed {seed})"
    else:
        inlier_set, fit_on = id_val, train.subset(torch.arange(len(train.labels), device=train.labels.device))
        source = f"{len(id_val.paths)} images of {id_val.name}"
    device = train.features.device
    inliers = tuple(t.to(device) for t in cache.features(inlier_set))
    transformed = [cache.features(inlier_set, name) for name in OUTLIER_TRANSFORMS]
    outliers = tuple(torch.cat(parts).to(device) for parts in zip(*transformed, strict=True))
    described = {"inliers": source, "outliers": f"{' + '.join(OUTLIER_TRANSFORMS)} copies of the inliers",
                 "fit_rows": len(fit_on.labels)}
    return Validation(fit_on, inliers, outliers), described


def _score(detector: AnyDetector, cache: FeatureCache, image_set: ImageSet,
           features: dict[str, tuple[torch.Tensor, torch.Tensor]], device: torch.device | str) -> np.ndarray:
    if isinstance(detector, InputDetector):
        return cache.input_scores(detector, image_set).numpy()
    feats, logits = features[image_set.name]
    return detector.score(feats.to(device), logits.to(device)).double().cpu().numpy()


def evaluate(
    cache: FeatureCache,
    head: torch.nn.Linear,
    id_train: ImageSet,
    id_test: ImageSet,
    oods: Sequence[ImageSet],
    detectors: Sequence[str],
    arch: str | None = None,
    id_val: ImageSet | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    video: Video | None = None,
) -> Evaluation:
    """Fit each detector on `id_train`, score `id_test`, every OOD set and the video, compute the metrics."""
    device = cache.device
    test_sets = [id_test, *oods]
    names = [s.name for s in test_sets]
    if len(set(names)) != len(names) or ALL in names:
        raise UserError(f"test sets need distinct names other than {ALL!r}; got {names}")
    train_features, train_logits = cache.features(id_train)
    features = {s.name: cache.features(s) for s in test_sets}
    train = FitData(train_features.to(device), train_logits.to(device),
                    torch.tensor(id_train.labels, device=device),
                    head.weight.detach().float().to(device), head.bias.detach().float().to(device))
    train.validation, validation_info = build_validation(cache, train, id_train, id_val, val_fraction, seed)
    video_features = [t.to(device) for t in cache.video_features(video.clip)] if video is not None else None

    evaluation = Evaluation(id_test.name, {}, {}, video=video)
    for name in tqdm(detectors, desc="detectors", unit="detector", disable=None):
        detector = build_detector(name, arch)
        started = time.perf_counter()
        detector.fit(train)
        fitted = time.perf_counter()
        scores = {s.name: _score(detector, cache, s, features, device) for s in test_sets}
        info: dict[str, object] = {"params": detector.params(), "fit_s": round(fitted - started, 3),
                                   "score_s": round(time.perf_counter() - fitted, 3)}
        if isinstance(detector, Detector):
            info["validation_auroc"] = round(_validation_auroc(name, arch, detector, train.validation), 2)
            if video is not None:
                frame_scores = detector.score(*video_features).double().cpu().numpy()
                video.add(name, frame_scores, float(np.quantile(scores[id_test.name], ID_QUANTILE)))
        evaluation.scores[name] = scores
        evaluation.results[name] = metrics_by_set(scores, id_test.name, [s.name for s in oods])
        evaluation.info[name] = info

    correct = features[id_test.name][1].argmax(dim=1) == torch.tensor(id_test.labels)
    evaluation.meta = {
        "id_train": len(id_train.paths), "id_test": len(id_test.paths),
        "ood": {s.name: len(s.paths) for s in oods},
        "id_test_accuracy": round(100.0 * correct.float().mean().item(), 2),
        "validation": validation_info,
    }
    return evaluation


def _validation_auroc(name: str, arch: str | None, detector: Detector, validation: Validation) -> float:
    """A tuned detector reports its chosen setting's validation AUROC; the others are refitted on the
    validation's training rows, so that no held-out image is in what they were fitted on."""
    if isinstance(detector, Tuned):
        return detector.validation_auroc
    refit = build_detector(name, arch)
    return validation_auroc(refit.fit(validation.train), validation)


def metrics_by_set(scores: dict[str, np.ndarray], id_name: str, ood_names: Sequence[str]) -> dict:
    """Metrics of each OOD set against the ID test set, plus all OOD sets pooled under "all"."""
    results = {name: ood_metrics(scores[id_name], scores[name]) for name in ood_names}
    results[ALL] = ood_metrics(scores[id_name], np.concatenate([scores[name] for name in ood_names]))
    return results


# ---------------------------------------------------------------- the report

def markdown_table(results: Results, info: dict[str, dict[str, object]]) -> str:
    """AUROC / FPR95 per OOD set (best of each column in bold), then all four metrics on the pooled set."""
    methods = list(results)
    sets = list(next(iter(results.values())))

    def best(set_name: str, metric: str) -> float:
        values = [results[m][set_name][metric] for m in methods]
        return min(values) if metric == "fpr95" else max(values)

    def cell(method: str, set_name: str, metric: str) -> str:
        value = results[method][set_name][metric]
        text = f"{value:.2f}"
        return f"**{text}**" if round(value, 2) == round(best(set_name, metric), 2) else text

    lines = ["AUROC / FPR@95TPR (%), OOD = positive; best per column in bold.", "",
             "| method | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|"]
    for m in methods:
        pairs = [f"{cell(m, s, 'auroc')} / {cell(m, s, 'fpr95')}" for s in sets]
        lines.append(f"| {m} | " + " | ".join(pairs) + " |")
    lines += ["", f"All OOD sets pooled ({ALL}). Validation AUROC: held-out ID images vs synthetic outliers "
              "made from them (the only data any setting was chosen on).", "",
              "| method | AUROC | FPR95 | AUPR-In | AUPR-Out | validation AUROC |", "|---" * 6 + "|"]
    for m in methods:
        validation = info.get(m, {}).get("validation_auroc")
        lines.append(f"| {m} | " + " | ".join(cell(m, ALL, metric) for metric in METRICS)
                     + f" | {'' if validation is None else f'{validation:.2f}'} |")
    return "\n".join(lines) + "\n"


def write_report(evaluation: Evaluation, out: Path, histogram_method: str = "nero") -> list[Path]:
    """results.json, results.md, results.csv, run.json, scores.npz and the PNG plots; returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    results = evaluation.results
    written = [out / name for name in ("results.json", "results.md", "results.csv", "run.json", "scores.npz")]
    written[0].write_text(json.dumps(results, indent=2) + "\n")
    written[1].write_text(markdown_table(results, evaluation.info))
    rows = ["method,ood_set," + ",".join(METRICS)]
    rows += [f"{m},{s}," + ",".join(f"{v[metric]:.4f}" for metric in METRICS)
             for m, by_set in results.items() for s, v in by_set.items()]
    written[2].write_text("\n".join(rows) + "\n")
    written[3].write_text(json.dumps({"detectors": evaluation.info, **evaluation.meta}, indent=2) + "\n")
    arrays = {f"{m}/{s}": v for m, sets in evaluation.scores.items() for s, v in sets.items()}
    if evaluation.video is not None:
        arrays |= {f"{m}/video": v for m, v in evaluation.video.scores.items()}
    np.savez(written[4], **arrays)
    written += plot_roc(evaluation, out)
    if histogram_method in evaluation.scores:
        written.append(plot_histograms(evaluation, histogram_method, out))
    video = evaluation.video
    if video is not None:
        written += [out / "video.json", out / "video.md"]
        summary = {"clip": str(video.clip), "frames": len(video.truth), "fps": video.fps,
                   "alert": vars(video.alert), "thresholds": video.thresholds, "results": video.results}
        written[-2].write_text(json.dumps(summary, indent=2) + "\n")
        written[-1].write_text(video_table(video))
        if histogram_method in video.scores:
            written.append(plot_video(video, histogram_method, out))
    return written


def video_table(video: Video) -> str:
    """Frame-level AUROC, then false alerts per minute and missed OOD segments, by smoothing setting."""
    minutes = (~video.truth).sum() / video.fps / 60.0
    header = "| method | " + " | ".join(SMOOTHING) + " |\n" + "|---" * (len(SMOOTHING) + 1) + "|\n"

    def rows(cell: Callable[[dict], str]) -> str:
        return "".join(f"| {m} | " + " | ".join(cell(r[s]) for s in SMOOTHING) + " |\n"
                       for m, r in video.results.items())

    def delay(r: dict) -> str:
        return "-" if r["mean_delay_s"] is None else f"{r['mean_delay_s']:.2f}"

    alert = video.alert
    return (f"Video {video.clip.name}: {len(video.truth)} frames at {video.fps:g} fps, {minutes:.2f} min "
            f"in-distribution, {len(runs(video.truth))} OOD segments. Smoothing is causal (meanW / medianW: "
            f"this frame and the W-1 before it). Threshold: 95% of the in-distribution test images score at "
            f"or below it. Alert: on once {alert.on_count} of the last {alert.window} frames are over it, "
            f"off after {alert.off_after} quiet frames (config section alert).\n\n"
            "Frame-level AUROC (%):\n\n" + header + rows(lambda r: f"{r['auroc']:.2f}")
            + "\nFalse alerts per minute of in-distribution video / OOD segments missed:\n\n" + header
            + rows(lambda r: f"{r['false_alerts_per_min']:.2f} / {r['missed_segments']}")
            + "\nMean delay from the start of an OOD segment to its first alert (s):\n\n" + header
            + rows(delay))


def plot_video(video: Video, method: str, out: Path) -> Path:
    """One method's frame scores over the clip, raw and smoothed, with the truth shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = np.arange(len(video.truth)) / video.fps
    fig, ax = plt.subplots(figsize=(11, 3.8))
    for start, end in runs(video.truth):
        ax.axvspan(seconds[start], seconds[end - 1], color="tab:red", alpha=0.12, lw=0)
    raw = video.scores[method]
    ax.plot(seconds, raw, color="grey", lw=0.6, label="raw")
    ax.plot(seconds, smooth(raw, "median13"), color="tab:blue", lw=1.6, label="median13 (causal, 0.5 s)")
    ax.axhline(video.thresholds[method], color="black", ls="--", lw=1, label="threshold (95% ID test)")
    ax.set(xlabel="seconds (OOD segments shaded)", ylabel=f"{method} score",
           title=f"{method} on {video.clip.name}", yscale="log" if (raw > 0).all() else "linear")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = out / f"video_{method}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_roc(evaluation: Evaluation, out: Path) -> list[Path]:
    """One figure per OOD set (and the pooled set): every detector's ROC curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    id_scores = {m: s[evaluation.id_name] for m, s in evaluation.scores.items()}
    for set_name in next(iter(evaluation.results.values())):
        fig, ax = plt.subplots(figsize=(6.5, 6))
        for index, (method, by_set) in enumerate(evaluation.scores.items()):
            ood = by_set.get(set_name)
            if set_name == ALL:
                ood = np.concatenate([v for k, v in by_set.items() if k != evaluation.id_name])
            truth = np.r_[np.zeros(len(id_scores[method])), np.ones(len(ood))]
            fpr, tpr, _ = roc_curve(truth, np.r_[id_scores[method], ood])
            auroc = evaluation.results[method][set_name]["auroc"]
            ax.plot(fpr, tpr, color=plt.cm.tab20(index % 20), lw=2.2 if "nero" in method else 1.1,
                    label=f"{method} ({auroc:.1f})")
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=0.8)
        ax.set(xlabel="false positive rate (ID flagged)", ylabel="true positive rate (OOD flagged)",
               title=f"ROC: {evaluation.id_name} vs {set_name}")
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        files.append(out / f"roc_{set_name}.png")
        fig.savefig(files[-1], dpi=110)
        plt.close(fig)
    return files


def plot_histograms(evaluation: Evaluation, method: str, out: Path) -> Path:
    """Score distributions of the ID test set and each OOD set, for one method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_set = evaluation.scores[method]
    pooled = np.concatenate(list(by_set.values()))
    positive = bool((pooled > 0).all())     # heavy-tailed positive scores (NERO's) read best on a log axis
    low, high = np.percentile(pooled, [0.5, 99.5]) if not positive else (pooled.min(), pooled.max())
    edges = np.geomspace(low, high, 51) if positive else np.linspace(low, high, 51)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, values in by_set.items():
        is_id = name == evaluation.id_name
        ax.hist(values, bins=edges, weights=np.full(len(values), 1 / len(values)),
                histtype="stepfilled" if is_id else "step",
                alpha=0.45 if is_id else 1.0, lw=1.5, label=f"{name} ({len(values)})")
    ax.set(xlabel=f"{method} score (higher = more OOD)", ylabel="share of the set",
           xscale="log" if positive else "linear", title=f"{method}: ID vs OOD scores")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / f"hist_{method}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- from a config

def model_for(config: Config, device: torch.device | str) -> tuple[FeatureClassifier, Preprocess, str]:
    """The configured classifier and preprocessing, and the cache key that identifies them."""
    classifier, preprocess, weights = configured_model(config, str(device))
    p = config.preprocess
    key = f"{config.model.arch}|{file_sha256(weights)}|{p.size}|{p.mean}|{p.std}|{p.crop_content}"
    return classifier, preprocess, key


def known_detectors(names: str) -> list[str]:
    """A comma-separated list (or "all") checked against the registry."""
    chosen = list(DETECTORS) if names == "all" else [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in DETECTORS]
    if unknown or not chosen:
        raise UserError(f"unknown detector(s) {unknown or names!r}; choose from: all, {', '.join(DETECTORS)}")
    return chosen
