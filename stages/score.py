"""Score stage: classify, relevance and NERO score for a batch of frames, in one forward pass.

Input:  a list of H x W x 3 uint8 RGB images (sizes may differ between streams), or of YUV frames already on
        the model's device (the GPU path's NVDEC frames, pipeline/media/yuv.py).
Output: one `Scored` per image, in order: predicted class, its probability, the configured detector's score
        (higher = more out-of-distribution), the compact explanation of that score that goes into the
        alert's `explain` field, and the quality guard's reason when the frame is unusable.

Frames travel to the model's device as uint8 (a quarter of the bytes of float32) and are resized and
normalised there (pipeline/model/preprocess.py, called by `Bundle.infer`). For a GPU, equal-sized frames are
stacked into one pinned host buffer and uploaded in one copy; the buffer is reused, which is safe because every
call ends by copying its results to the host, so the previous upload has finished before the next one
overwrites the buffer. On the CPU the frames are resized one by one where they lie: stacking them first had
copied every frame once more (2.0 ms a 1080p frame on the 2-core CPU), for the same pixels. Results cross
back to the host once per batch, and the explanations are built once per batch by
`explain_batch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pipeline.explain.field import explain_batch
from pipeline.media.yuv import YuvImage
from pipeline.model.bundle import Bundle


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
        self._pinned: torch.Tensor | None = None

    def upload(self, images: list[np.ndarray | YuvImage]) -> torch.Tensor | list[torch.Tensor | YuvImage]:
        """The frames as `Bundle.infer` takes them, on the model's device (`nero bench` uploads the same way)."""
        shape = images[0].shape
        device = self.bundle.device
        if device.type != "cuda" or any(image.shape != shape or isinstance(image, YuvImage) for image in images):
            return [image.to(device, non_blocking=True) if isinstance(image, YuvImage) else
                    torch.from_numpy(image).to(device, non_blocking=True) for image in images]
        wanted = (len(images), *shape)
        if self._pinned is None or self._pinned.shape[1:] != shape or self._pinned.shape[0] < len(images):
            self._pinned = torch.empty(wanted, dtype=torch.uint8, pin_memory=True)
        staged = self._pinned[: len(images)]
        np.stack(images, out=staged.numpy())
        return staged.to(self.bundle.device, non_blocking=True)

    @torch.inference_mode()
    def __call__(self, images: list[np.ndarray | YuvImage]) -> list[Scored]:
        bundle = self.bundle
        inference = bundle.infer(self.upload(images))
        confidence, predicted = inference.probs.max(dim=1)
        rows = torch.stack([predicted.float(), confidence, inference.terms.score.float()], dim=1).cpu().tolist()
        explanations = explain_batch(inference, bundle)
        return [Scored(bundle.class_names[int(pred)], prob, score, explain, quality)
                for (pred, prob, score), explain, quality in zip(rows, explanations, inference.quality, strict=True)]
