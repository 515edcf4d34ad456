"""Score stage: read one batch's pass through the network.

Input:  a `ModelPass` from the forward stage (stages/forward.py).
Output: one `Scored` per frame, in order: predicted class, its probability, the configured detector's score
        (higher = more out-of-distribution), the compact explanation of that score that goes into the
        alert's `explain` field, and the quality guard's reason when the frame is unusable.

Results cross back to the host once per batch, and the explanations are built once per batch by
`explain_batch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.explain.field import explain_batch
from pipeline.model.bundle import Bundle, ModelPass


@dataclass(slots=True)
class Scored:
    pred: str
    prob: float
    score: float
    explain: dict
    quality: str | None = None   # why the frame is unusable (pipeline.ood.quality), or None


class ScoreStage:
    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle

    @torch.inference_mode()
    def __call__(self, model_pass: ModelPass) -> list[Scored]:
        bundle = self.bundle
        inference = bundle.score_pass(model_pass)
        confidence, predicted = inference.probs.max(dim=1)
        rows = torch.stack([predicted.float(), confidence, inference.terms.score.float()], dim=1).cpu().tolist()
        explanations = explain_batch(inference, bundle)
        return [Scored(bundle.class_names[int(pred)], prob, score, explain, quality)
                for (pred, prob, score), explain, quality in zip(rows, explanations, inference.quality, strict=True)]
