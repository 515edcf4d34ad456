"""The PNGs `nero explain` writes for one frame, each readable at a glance:

- heatmap.png: the frame beside the same frame in grey with the pixel relevance over it (pipeline.explain.heatmap);
- neurons.png: which neurons carry the alerting score (for NERO: the frame's neuron relevance against the
  nearest class centroid), top neurons marked;
- score.png: the alerting score split into its parts, against its threshold;
- neighbour.png (relevance detectors): the frame beside the nearest training window;
- patches.png (relevance-patch): the frame with its 7 x 7 patches coloured by their distance to the nearest
  in-distribution patch (where the patch evidence lies).
Every figure names the score it shows and the threshold it is compared with.

Matplotlib's object API only (no pyplot state), so figures can be drawn from any thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from pipeline.explain.field import window_class
from pipeline.explain.heatmap import Heatmap
from pipeline.explain.render import overlay, relevance_colormap
from pipeline.model.bundle import Bundle, Inference

FRAME_COLOUR = "#4c72b0"
CENTROID_COLOUR = "#222222"
ABOVE_COLOUR, BELOW_COLOUR = "#d62728", "#1f77b4"   # neuron relevance above / below the centroid's


@dataclass
class NeroFacts:
    """NERO's decomposition of the frame's relevance (score = (distance + bias_term) * rho)."""

    score: float
    threshold: float
    distance: float
    bias_term: float
    rho: float
    nearest: str
    relevance: np.ndarray     # D: the frame's neuron relevance (bias excluded)
    centroid: np.ndarray      # D: the nearest class's mean neuron relevance


@dataclass
class RelevanceFacts:
    """A relevance detector's split of its score: per neuron, per part, and the nearest training window."""

    shares: np.ndarray                      # D: each neuron's share of the score (they add up to it)
    parts: dict[str, float]                 # calibrated parts of a combined score (empty for a single one)
    window: str | None                      # the nearest training window's name, its class and thumbnail
    window_class: str | None
    window_thumbnail: np.ndarray | None
    combined_by: str = "mean"               # how the parts make the score: "mean" or "max"
    patches: np.ndarray | None = None       # P: each patch's share of the patch part (relevance-patch)


@dataclass
class FrameFacts:
    """What one frame's figures show; every number comes from the monitor's own scoring pass."""

    pred: str
    prob: float
    score: float              # of the detector the monitor alerts on (config key `detector`)
    threshold: float
    detector: str
    top: list[int]            # the neurons the `explain` field names, largest first
    nero: NeroFacts
    relevance: RelevanceFacts | None   # None when the monitor alerts on NERO itself

    @classmethod
    def of(cls, bundle: Bundle, inference: Inference, index: int, explanation: dict) -> FrameFacts:
        """Row `index` of a scoring pass (`bundle.infer`), with the top neurons its `explain` field names."""
        terms, probs = inference.terms, inference.probs
        nearest = int(terms.nearest[index])
        dim = bundle.scorer.feature_dim
        pred = int(probs[index].argmax())
        nero = NeroFacts(score=float((terms.distance[index] + terms.bias_term[index]) * terms.rho[index]),
                         threshold=bundle.artifact.threshold, distance=float(terms.distance[index]),
                         bias_term=float(terms.bias_term[index]), rho=float(terms.rho[index]),
                         nearest=bundle.class_names[nearest], relevance=terms.relevance[index, :dim].cpu().numpy(),
                         centroid=bundle.scorer.raw_means[nearest, :dim].cpu().numpy())
        split = inference.relevance_score
        relevance = None
        if split is not None:
            row = explanation.get("window_row")
            relevance = RelevanceFacts(
                shares=split.neurons[index].cpu().numpy(),
                parts={name: float(part[index]) for name, part in split.parts.items()},
                window=explanation.get("window"), window_class=window_class(explanation),
                window_thumbnail=bundle.thumbnail(row) if row is not None else None,
                combined_by=getattr(bundle.relevance_detector, "combined_by", "mean"),
                patches=None if split.patches is None else split.patches[index].float().cpu().numpy())
        return cls(pred=bundle.class_names[pred], prob=float(probs[index, pred]),
                   score=float(terms.score[index]), threshold=bundle.threshold, detector=bundle.detector,
                   top=[int(n) for n, _ in explanation["neurons"]], nero=nero, relevance=relevance)

    @property
    def verdict(self) -> str:
        return "OUT of distribution" if self.score > self.threshold else "in distribution"

    @property
    def headline(self) -> str:
        """The line every figure carries: which score, against which threshold."""
        return (f"{self.pred} ({self.prob:.0%})  |  {self.detector} score {self.score:.3g} vs its threshold "
                f"{self.threshold:.3g}: {self.verdict}")


def heatmap_figure(frame: np.ndarray, heatmap: Heatmap, facts: FrameFacts) -> Figure:
    aspect = frame.shape[1] / frame.shape[0]
    figure = Figure(figsize=(2 * 4.2 * aspect + 1.0, 4.2 + 1.3), dpi=110, layout="constrained")
    left, right = figure.subplots(1, 2)
    left.imshow(frame)
    left.set_title("frame")
    right.imshow(overlay(frame, heatmap, max_side=1024))
    right.set_title("where the relevance NERO scores comes from")
    for axis in (left, right):
        axis.set_axis_off()
    # the overlay is an RGB image; the colour bar gets its own scale with the same colours
    scale = ScalarMappable(Normalize(-1, 1), relevance_colormap())
    colourbar = figure.colorbar(scale, ax=right, fraction=0.04, pad=0.02, ticks=[-1, 0, 1])
    colourbar.ax.set_yticklabels(["against", "0", "for"])
    figure.suptitle(facts.headline, fontsize=12, fontweight="bold")
    figure.text(0.5, 0.005, "Full-network LRP of NERO's neuron relevance down to the pixels. Yellow/red: "
                "evidence for the classifier's outputs (weighted by their probabilities, as NERO weights "
                "them), blue: evidence against them. Colour scale per image.  Pixel relevance sums to "
                f"{heatmap.total:.4g}, the neurons' to {heatmap.feature_total:.4g} (= 1 - R_b; conservation "
                f"error {heatmap.conservation_error:.1e}).", ha="center", va="bottom", fontsize=8,
                wrap=True)
    return figure


def _mark_neurons(axis, values: np.ndarray, top: list[int], ylabel: str, title: str) -> list[str]:
    """All D values as thin lines, the `top` neurons marked and numbered; returns their colours."""
    neurons = np.arange(len(values))
    axis.vlines(neurons, 0, values, color="#9a9a9a", linewidth=0.6)
    axis.axhline(0, color=CENTROID_COLOUR, linewidth=0.8)
    colours = [ABOVE_COLOUR if values[n] > 0 else BELOW_COLOUR for n in top]
    axis.scatter(top, values[top], color=colours, zorder=3, s=28)
    for n in top:
        right_end = n > 0.9 * len(values)       # label to the left there, so it stays inside
        axis.annotate(f"#{n}", (n, values[n]), textcoords="offset points", fontsize=8,
                      ha="right" if right_end else "left",
                      xytext=(-4 if right_end else 4, 4 if values[n] > 0 else -11))
    axis.set_xlim(-0.5, len(values) - 0.5)
    axis.set_xlabel("feature neuron")
    axis.set_ylabel(ylabel)
    axis.set_title(title, fontsize=10)
    return colours


def neuron_figure(facts: FrameFacts) -> Figure:
    figure = Figure(figsize=(11, 6.2), dpi=110, layout="constrained")
    whole, zoom = figure.subplots(2, 1, height_ratios=[1.1, 1])
    positions = np.arange(len(facts.top))
    if facts.relevance is not None:
        shares = facts.relevance.shares
        colours = _mark_neurons(whole, shares, facts.top, "share of the score",
                                f"all {len(shares)} neurons: each one's share of the {facts.detector} score "
                                f"(they add up to {facts.score:.3g})")
        zoom.bar(positions, shares[facts.top], 0.6, color=colours)
        zoom.set_ylabel("share of the score")
        zoom.set_title(f"the {len(facts.top)} neurons with the largest shares: where this frame's relevance "
                       "departs most from the training data", fontsize=10)
        title = f"Which neurons carry the {facts.detector} score"
    else:
        nero = facts.nero
        deviation = nero.relevance - nero.centroid
        colours = _mark_neurons(whole, deviation, facts.top, "relevance - centroid",
                                f"all {len(deviation)} neurons: this frame's relevance minus the '{nero.nearest}' "
                                "centroid (the nearest class)")
        width = 0.38
        zoom.bar(positions - width / 2, nero.relevance[facts.top], width, color=FRAME_COLOUR, label="this frame")
        zoom.bar(positions + width / 2, nero.centroid[facts.top], width, color=CENTROID_COLOUR,
                 label=f"'{nero.nearest}' centroid")
        zoom.set_ylabel("neuron relevance")
        zoom.set_title(f"the {len(facts.top)} neurons deviating most (red: above the centroid, blue: below)",
                       fontsize=10)
        zoom.legend(loc="best", fontsize=9)
        title = f"Neuron relevance against the nearest centroid ('{nero.nearest}')"
    zoom.axhline(0, color=CENTROID_COLOUR, linewidth=0.6)
    zoom.set_xticks(positions, [f"#{n}" for n in facts.top])
    for tick, colour in zip(zoom.get_xticklabels(), colours, strict=True):
        tick.set_color(colour)
    figure.suptitle(f"{title}\n{facts.headline}", fontsize=11, fontweight="bold")
    return figure


PART_COLOURS = ("#4c72b0", "#dd8452", "#55a868")


def _score_axis(axis, score: float, threshold: float, label: str) -> None:
    axis.axvline(threshold, color="#c00000", linewidth=2, linestyle="--", label=f"{label} {threshold:.3g}")
    finite = [value for value in (score, threshold) if math.isfinite(value)]
    axis.set_xlim(0, 1.12 * max(finite, default=1.0))
    axis.set_ylim(-0.6, 0.6)
    axis.set_yticks([])
    axis.set_xlabel("score (higher = further from the training data)")
    axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False, labelspacing=1.2)


def score_figure(facts: FrameFacts) -> Figure:
    """The alerting score as a bar split into its parts, against its threshold; NERO's terms when it is NERO."""
    figure = Figure(figsize=(11, 3.4), dpi=110, layout="constrained")
    axis = figure.subplots()
    if facts.relevance is not None and facts.relevance.combined_by == "max":
        parts = facts.relevance.parts
        for row, ((name, value), colour) in enumerate(zip(parts.items(), PART_COLOURS, strict=False)):
            axis.barh([0.25 - 0.5 * row], [value], height=0.4, color=colour, label=f"{name} / its scale = {value:.3g}")
        formula = ", ".join(f"{name} {value:.3g}" for name, value in parts.items())
        title = (f"{facts.detector} score = the larger of its parts, each over its in-distribution scale\n"
                 f"max({formula}) = {facts.score:.3g}")
    elif facts.relevance is not None and facts.relevance.parts:
        parts = facts.relevance.parts
        left = 0.0
        for (name, value), colour in zip(parts.items(), PART_COLOURS, strict=False):
            axis.barh([0], [value / len(parts)], height=0.5, left=[left], color=colour,
                      label=f"{name} / its scale / {len(parts)} = {value / len(parts):.3g}")
            left += value / len(parts)
        formula = " + ".join(f"{name} {value:.3g}" for name, value in parts.items())
        title = (f"{facts.detector} score = the mean of its parts, each over its in-distribution scale\n"
                 f"({formula}) / {len(parts)} = {facts.score:.3g}")
    elif facts.relevance is not None:
        axis.barh([0], [facts.score], height=0.5, color=PART_COLOURS[0], label=f"{facts.detector} {facts.score:.3g}")
        title = f"{facts.detector} score {facts.score:.3g}"
    else:
        nero = facts.nero
        distance_part, bias_part = nero.distance * nero.rho, nero.bias_term * nero.rho
        axis.barh([0], [distance_part], height=0.5, color=PART_COLOURS[0],
                  label=f"distance x rho = {distance_part:.3g}\n(distance: L1 to the '{nero.nearest}' centroid)")
        axis.barh([0], [bias_part], height=0.5, left=[distance_part], color=PART_COLOURS[1],
                  label=f"lambda|R_b| x rho = {bias_part:.3g}\n(R_b: relevance left on the head's bias)")
        title = (f"NERO score = (distance + lambda|R_b|) x rho = ({nero.distance:.3g} + {nero.bias_term:.3g}) x "
                 f"{nero.rho:.3f} = {nero.score:.3g}\nrho: share of the feature activation on the least-relevant "
                 "neurons")
    _score_axis(axis, facts.score, facts.threshold, f"{facts.detector} alert threshold")
    axis.set_title(f"{title}, {facts.score / facts.threshold:.2f} x the threshold", fontsize=10)
    figure.suptitle(f"Score: {facts.verdict}", fontsize=12, fontweight="bold",
                    color="#c00000" if facts.score > facts.threshold else "#2a7a2a")
    return figure


def neighbour_figure(frame: np.ndarray, facts: FrameFacts) -> Figure | None:
    """The frame beside the nearest training window (relevance detectors with stored thumbnails only)."""
    relevance = facts.relevance
    if relevance is None or relevance.window_thumbnail is None:
        return None
    figure = Figure(figsize=(7.5, 4.2), dpi=110, layout="constrained")
    left, right = figure.subplots(1, 2)
    left.imshow(frame)
    left.set_title("this frame")
    right.imshow(relevance.window_thumbnail, interpolation="bilinear")
    right.set_title(f"nearest training window ({relevance.window_class})\n{relevance.window}", fontsize=8)
    for axis in (left, right):
        axis.set_axis_off()
    figure.suptitle(f"{facts.detector} {facts.score:.3g} vs threshold {facts.threshold:.3g}: {facts.verdict}",
                    fontsize=11, fontweight="bold")
    return figure


def patch_figure(frame: np.ndarray, facts: FrameFacts) -> Figure | None:
    """The frame with each patch of the 7 x 7 grid coloured by its share of the patch part (relevance-patch)."""
    relevance = facts.relevance
    if relevance is None or relevance.patches is None:
        return None
    side = math.isqrt(len(relevance.patches))
    grid = relevance.patches.reshape(side, side) * len(relevance.patches)   # each patch's distance / the scale
    figure = Figure(figsize=(6.6, 5.2), dpi=110, layout="constrained")
    axis = figure.subplots()
    height, width = frame.shape[:2]
    axis.imshow(frame)
    shown = axis.imshow(grid, cmap="magma", alpha=0.55, extent=(0, width, height, 0), interpolation="nearest",
                        vmin=0, vmax=max(2.0, float(grid.max())))
    axis.set_axis_off()
    colourbar = figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.02)
    colourbar.set_label("distance to the nearest in-distribution patch / scale", fontsize=8)
    patch_part = relevance.parts.get("patch-knn", float("nan"))
    axis.set_title(f"patch evidence: the mean over the {len(relevance.patches)} patches is {patch_part:.3g}",
                   fontsize=9)
    figure.suptitle(f"{facts.detector} {facts.score:.3g} vs threshold {facts.threshold:.3g}: {facts.verdict}",
                    fontsize=11, fontweight="bold")
    return figure


def save_png(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png")
    return path


def write_figures(out_dir: Path, stem: str, frame: np.ndarray, heatmap: Heatmap,
                  facts: FrameFacts) -> list[Path]:
    """heatmap, neurons and score PNGs for one frame, named STEM_heatmap.png etc."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {"heatmap": heatmap_figure(frame, heatmap, facts), "neurons": neuron_figure(facts),
               "score": score_figure(facts), "neighbour": neighbour_figure(frame, facts),
               "patches": patch_figure(frame, facts)}
    return [save_png(figure, out_dir / f"{stem}_{name}.png") for name, figure in figures.items()
            if figure is not None]
