"""The bundle's warm-up frames: on a GPU they run before the first stream's frames, so they must take the path
those frames take (here on the CPU, where the warm-up itself is skipped)."""

import math

import torch

from pipeline.media.yuv import YuvImage
from pipeline.model.bundle import random_frames


def test_warm_up_frames_of_a_streams_size_are_scored_like_its_frames(bundle):
    frames = random_frames(3, bundle.preprocess.size, bundle.device, (121, 161))   # odd sizes: chroma rounds up
    assert all(isinstance(frame, YuvImage) and frame.shape == (121, 161, 3) for frame in frames)
    inference = bundle.infer(frames)
    assert len(inference.quality) == 3 and all(math.isfinite(score) for score in inference.terms.score.tolist())


def test_warm_up_frames_without_a_size_are_model_sized_rgb(bundle):
    frames = random_frames(2, bundle.preprocess.size, bundle.device)
    assert isinstance(frames, torch.Tensor) and frames.shape == (2, 224, 224, 3) and frames.dtype == torch.uint8
    assert len(bundle.infer(frames).quality) == 2
