"""The PNGs `nero explain` writes for one frame, each readable at a glance:

- heatmap.png: the frame beside the same frame in grey with the pixel relevance over it (pipeline.explain.heatmap);
- neurons.png: the frame's neuron relevance against the nearest class centroid, top deviating neurons marked;
- score.png: the score split into its terms, against the alert threshold.

Matplotlib's object API only (no pyplot state), so figures can be drawn from any thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from pipeline.explain.heatmap import Heatmap
from pipeline.explain.render import overlay, relevance_colormap
from pipeline.model.bundle import Bundle
from pipeline.ood.nero import NeroTerms

FRAME_COLOUR = "#4c72b0"
CENTROID_COLOUR = "#222222"
ABOVE_COLOUR, BELOW_COLOUR = "#d62728", "#1f77b4"   # neuron relevance above / below the centroid's


@dataclass
class FrameFacts:
    """What one frame's figures show; every number comes from the monitor's own scoring pass."""

    pred: str
    prob: float
    score: float              # of the detector the monitor alerts on (config key `detector`)
    threshold: float
    detector: str
    nero_score: float         # (distance + bias_term) * rho: what the decomposition adds up to
    nero_threshold: float
    distance: float
    bias_term: float
    rho: float
    nearest: str
    relevance: np.ndarray     # D: the frame's neuron relevance (bias excluded)
    centroid: np.ndarray      # D: the nearest class's mean neuron relevance
    top: list[int]            # neurons deviating most from the centroid, largest first

    @classmethod
    def of(cls, bundle: Bundle, probs: torch.Tensor, terms: NeroTerms, index: int,
           explanation: dict) -> FrameFacts:
        """Row `index` of a scoring pass (`bundle.infer`), with the top neurons its `explain` field names."""
        nearest = int(terms.nearest[index])
        dim = bundle.scorer.feature_dim
        pred = int(probs[index].argmax())
        return cls(pred=bundle.class_names[pred], prob=float(probs[index, pred]),
                   score=float(terms.score[index]), threshold=bundle.threshold,
                   detector=bundle.detector,
                   nero_score=float((terms.distance[index] + terms.bias_term[index]) * terms.rho[index]),
                   nero_threshold=bundle.artifact.threshold,
                   distance=float(terms.distance[index]),
                   bias_term=float(terms.bias_term[index]), rho=float(terms.rho[index]),
                   nearest=bundle.class_names[nearest],
                   relevance=terms.relevance[index, :dim].cpu().numpy(),
                   centroid=bundle.scorer.raw_means[nearest, :dim].cpu().numpy(),
                   top=[int(n) for n, _ in explanation["neurons"]])

    @property
    def verdict(self) -> str:
        return "OUT of distribution" if self.score > self.threshold else "in distribution"


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
    figure.suptitle(f"{facts.pred} ({facts.prob:.0%})  |  score {facts.score:.3g} vs threshold "
                    f"{facts.threshold:.3g}: {facts.verdict}", fontsize=12, fontweight="bold")
    figure.text(0.5, 0.005, "Full-network LRP of NERO's neuron relevance down to the pixels. Yellow/red: "
                "evidence for the classifier's outputs (weighted by their probabilities, as NERO weights "
                "them), blue: evidence against them. Colour scale per image.  Pixel relevance sums to "
                f"{heatmap.total:.4g}, the neurons' to {heatmap.feature_total:.4g} (= 1 - R_b; conservation "
                f"error {heatmap.conservation_error:.1e}).", ha="center", va="bottom", fontsize=8,
                wrap=True)
    return figure


def neuron_figure(facts: FrameFacts) -> Figure:
    figure = Figure(figsize=(11, 6.2), dpi=110, layout="constrained")
    whole, zoom = figure.subplots(2, 1, height_ratios=[1.1, 1])
    deviation = facts.relevance - facts.centroid
    neurons = np.arange(len(deviation))
    whole.vlines(neurons, 0, deviation, color="#9a9a9a", linewidth=0.6)
    whole.axhline(0, color=CENTROID_COLOUR, linewidth=0.8)
    colours = [ABOVE_COLOUR if deviation[n] > 0 else BELOW_COLOUR for n in facts.top]
    whole.scatter(facts.top, deviation[facts.top], color=colours, zorder=3, s=28)
    for n in facts.top:
        right_end = n > 0.9 * len(deviation)       # label to the left there, so it stays inside
        whole.annotate(f"#{n}", (n, deviation[n]), textcoords="offset points", fontsize=8,
                       ha="right" if right_end else "left",
                       xytext=(-4 if right_end else 4, 4 if deviation[n] > 0 else -11))
    whole.set_xlim(-0.5, len(deviation) - 0.5)
    whole.set_xlabel("feature neuron")
    whole.set_ylabel("relevance - centroid")
    whole.set_title(f"all {len(deviation)} neurons: this frame's relevance minus the '{facts.nearest}' "
                    "centroid (the nearest class)", fontsize=10)

    positions = np.arange(len(facts.top))
    width = 0.38
    zoom.bar(positions - width / 2, facts.relevance[facts.top], width, color=FRAME_COLOUR, label="this frame")
    zoom.bar(positions + width / 2, facts.centroid[facts.top], width, color=CENTROID_COLOUR,
             label=f"'{facts.nearest}' centroid")
    zoom.axhline(0, color=CENTROID_COLOUR, linewidth=0.6)
    zoom.set_xticks(positions, [f"#{n}" for n in facts.top])
    for tick, colour in zip(zoom.get_xticklabels(), colours, strict=True):
        tick.set_color(colour)
    zoom.set_ylabel("neuron relevance")
    zoom.set_title(f"the {len(facts.top)} neurons deviating most (red: above the centroid, blue: below)",
                   fontsize=10)
    zoom.legend(loc="best", fontsize=9)
    figure.suptitle(f"Neuron relevance against the nearest centroid ('{facts.nearest}')", fontsize=12,
                    fontweight="bold")
    return figure


def score_figure(facts: FrameFacts) -> Figure:
    figure = Figure(figsize=(11, 3.4), dpi=110, layout="constrained")
    axis = figure.subplots()
    distance_part, bias_part = facts.distance * facts.rho, facts.bias_term * facts.rho
    axis.barh([0], [distance_part], height=0.5, color="#4c72b0",
              label=f"distance x rho = {distance_part:.3g}\n(distance: L1 to the '{facts.nearest}' centroid)")
    axis.barh([0], [bias_part], height=0.5, left=[distance_part], color="#dd8452",
              label=f"lambda|R_b| x rho = {bias_part:.3g}\n(R_b: relevance left on the head's bias)")
    axis.axvline(facts.nero_threshold, color="#c00000", linewidth=2, linestyle="--",
                 label=f"NERO threshold {facts.nero_threshold:.3g}")
    finite = [value for value in (facts.nero_score, facts.nero_threshold) if math.isfinite(value)]
    axis.set_xlim(0, 1.12 * max(finite, default=1.0))
    axis.set_ylim(-0.6, 0.6)
    axis.set_yticks([])
    axis.set_xlabel("score (higher = further from the training data)")
    axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False, labelspacing=1.2)
    ratio = facts.nero_score / facts.nero_threshold
    alerting = "" if facts.detector == "nero" else (
        f"\nthe monitor alerts on {facts.detector}: {facts.score:.4g} against its threshold {facts.threshold:.4g}")
    axis.set_title(f"NERO score = (distance + lambda|R_b|) x rho = ({facts.distance:.3g} + {facts.bias_term:.3g})"
                   f" x {facts.rho:.3f} = {facts.nero_score:.3g}, {ratio:.2f} x its threshold"
                   f"\nrho: share of the feature activation on the least-relevant neurons{alerting}", fontsize=10)
    figure.suptitle(f"Score decomposition: {facts.verdict}", fontsize=12, fontweight="bold",
                    color="#c00000" if facts.score > facts.threshold else "#2a7a2a")
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
               "score": score_figure(facts)}
    return [save_png(figure, out_dir / f"{stem}_{name}.png") for name, figure in figures.items()]
