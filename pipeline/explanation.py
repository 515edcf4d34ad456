"""Why a frame scored as it did, cheap enough for every frame: the `explain` field of each alert.

For each frame: the class whose centroid is nearest, the score split into its terms
(score = (distance + lambda*|R_b|) * rho), and the few neurons whose relevance deviates most from that
class's mean relevance (in neuron space, not PCA space, so the indices are real feature channels).
"""

from __future__ import annotations

import torch

from pipeline.nero import NeroScorer, NeroTerms

TOP_NEURONS = 5


def neuron_deviation(terms: NeroTerms, scorer: NeroScorer) -> torch.Tensor:
    """N x D: each neuron's relevance minus the nearest class's mean relevance for that neuron."""
    dim = scorer.feature_dim
    return terms.relevance[:, :dim] - scorer.raw_means[terms.nearest, :dim]


def explain_batch(terms: NeroTerms, scorer: NeroScorer, class_names: list[str],
                  top: int = TOP_NEURONS) -> list[dict]:
    """One compact, JSON-ready explanation per row of `terms`."""
    deviation = neuron_deviation(terms, scorer)
    largest = torch.topk(deviation.abs(), min(top, deviation.shape[1]), dim=1).indices
    signed = deviation.gather(1, largest)
    columns = [terms.nearest, terms.distance, terms.bias_term, terms.rho]
    rows = torch.stack([c.float() for c in columns], dim=1).cpu().tolist()
    largest, signed = largest.cpu().tolist(), signed.cpu().tolist()
    explanations = []
    for (nearest, distance, bias_term, rho), neurons, values in zip(rows, largest, signed, strict=True):
        explanations.append({
            "nearest": class_names[int(nearest)],
            "distance": round(distance, 6),
            "bias_term": round(bias_term, 6),
            "rho": round(rho, 6),
            "distance_share": round(distance / (distance + bias_term), 4) if distance + bias_term > 0 else 0.0,
            "neurons": [[n, round(v, 6)] for n, v in zip(neurons, values, strict=True)],
        })
    return explanations
