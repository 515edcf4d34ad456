"""The files `nero eval` writes: tables (JSON, Markdown, CSV), run facts, every score, and the plots."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_curve

from pipeline.evaluation.metrics import ALL, METRICS, Intervals, Results
from pipeline.evaluation.run import Evaluation
from pipeline.evaluation.video import SMOOTHING, Video, smoothed
from pipeline.ood.truth import runs


def markdown_table(results: Results, info: dict[str, dict[str, object]], intervals: Intervals | None = None) -> str:
    """AUROC / FPR95 per OOD set (best of each column in bold), all four metrics on the pooled set, and the
    95% bootstrap intervals of AUROC and FPR95 when given."""
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
    if intervals:
        lines += ["", "95% bootstrap intervals, AUROC / FPR95 (ID and OOD scores resampled, 1000 rounds):", "",
                  "| method | " + " | ".join(sets) + " |", "|---" * (len(sets) + 1) + "|"]
        for m in methods:
            spans = [intervals[m][s] for s in sets]
            lines.append(f"| {m} | " + " | ".join(f"{a[0]:.1f}-{a[1]:.1f} / {f[0]:.1f}-{f[1]:.1f}"
                                                    for a, f in ((span["auroc"], span["fpr95"]) for span in spans))
                         + " |")
    return "\n".join(lines) + "\n"


def write_report(evaluation: Evaluation, out: Path, histogram_method: str = "nero") -> list[Path]:
    """results.json, results.md, results.csv, run.json, scores.npz and the PNG plots; returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    results = evaluation.results
    written = [out / name for name in ("results.json", "results.md", "results.csv", "run.json", "scores.npz")]
    written[0].write_text(json.dumps(results, indent=2) + "\n")
    written.append(out / "intervals.json")
    written[-1].write_text(json.dumps(evaluation.intervals, indent=2) + "\n")
    written[1].write_text(markdown_table(results, evaluation.info, evaluation.intervals))
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
        summary = {"clip": str(video.clip), "frames": len(video.truth.ood), "fps": video.fps,
                   "alert": vars(video.alert), "thresholds": video.thresholds, "results": video.results}
        written[-2].write_text(json.dumps(summary, indent=2) + "\n")
        written[-1].write_text(video_table(video))
        if histogram_method in video.scores:
            written.append(plot_video(video, histogram_method, out))
    return written


def video_table(video: Video) -> str:
    """Frame-level AUROC, then false alerts per minute and missed OOD segments, by smoothing setting."""
    minutes = (~video.truth.ood).sum() / video.fps / 60.0
    header = "| method | " + " | ".join(SMOOTHING) + " |\n" + "|---" * (len(SMOOTHING) + 1) + "|\n"

    def rows(cell: Callable[[dict], str]) -> str:
        return "".join(f"| {m} | " + " | ".join(cell(r[s]) for s in SMOOTHING) + " |\n"
                       for m, r in video.results.items())

    def delay(r: dict) -> str:
        return "-" if r["mean_delay_s"] is None else f"{r['mean_delay_s']:.2f}"

    alert = video.alert
    return (f"Video {video.clip.name}: {len(video.truth.ood)} frames at {video.fps:g} fps, {minutes:.2f} min "
            f"in-distribution, {len(runs(video.truth.ood))} OOD segments. Smoothing is causal (meanW / medianW: "
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

    seconds = np.arange(len(video.truth.ood)) / video.fps
    fig, ax = plt.subplots(figsize=(11, 3.8))
    for start, end in runs(video.truth.ood):
        ax.axvspan(seconds[start], seconds[end - 1], color="tab:red", alpha=0.12, lw=0)
    raw = video.scores[method]
    ax.plot(seconds, raw, color="grey", lw=0.6, label="raw")
    ax.plot(seconds, smoothed(raw, "median13"), color="tab:blue", lw=1.6, label="median13 (causal, 0.5 s)")
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

