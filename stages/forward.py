"""Forward stage: a batch of frames through the network.

Input:  a list of H x W x 3 uint8 RGB images (sizes may differ between streams), or of YUV frames already on
        the model's device (the GPU path's NVDEC frames, pipeline/media/yuv.py).
Output: a `ModelPass` (the normalised inputs, features, logits and patch features), left on the model's
        device for the score stage.

Frames travel to the model's device as uint8 (a quarter of the bytes of float32) and are resized and
normalised there (pipeline/model/preprocess.py, called by `Bundle.run_model`). For a GPU, equal-sized frames
are stacked into one pinned host buffer and uploaded in one copy; the buffer is reused once the previous copy
has finished (a CUDA event marks it: the score stage reads the last batch while this one uploads the next).
On the CPU the frames are resized one by one where they lie: stacking them first had copied every frame once
more (2.0 ms a 1080p frame on the 2-core CPU), for the same pixels.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.media.yuv import YuvImage
from pipeline.model.bundle import Bundle, ModelPass


class ForwardStage:
    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self._pinned: torch.Tensor | None = None
        self._uploaded: torch.cuda.Event | None = None   # the last copy out of the pinned buffer

    def upload(self, images: list[np.ndarray | YuvImage]) -> torch.Tensor | list[torch.Tensor | YuvImage]:
        """The frames as `Bundle.run_model` takes them, on the model's device (`nero bench` uploads the same
        way)."""
        shape = images[0].shape
        device = self.bundle.device
        if device.type != "cuda" or any(image.shape != shape or isinstance(image, YuvImage) for image in images):
            return [image.to(device, non_blocking=True) if isinstance(image, YuvImage) else
                    torch.from_numpy(image).to(device, non_blocking=True) for image in images]
        wanted = (len(images), *shape)
        if self._uploaded is not None:
            self._uploaded.synchronize()
        if self._pinned is None or self._pinned.shape[1:] != shape or self._pinned.shape[0] < len(images):
            self._pinned = torch.empty(wanted, dtype=torch.uint8, pin_memory=True)
        staged = self._pinned[: len(images)]
        np.stack(images, out=staged.numpy())
        uploaded = staged.to(device, non_blocking=True)
        self._uploaded = torch.cuda.Event()
        self._uploaded.record()
        return uploaded

    @torch.inference_mode()
    def __call__(self, images: list[np.ndarray | YuvImage]) -> ModelPass:
        return self.bundle.run_model(self.upload(images))
