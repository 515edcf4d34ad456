"""Batched feature extraction over image files and videos, for fitting and offline scoring.

Patch features are kept in float16: the 17,000 frames of an 11-minute calibration video hold 160 M values
(49 patches x 192 channels each), 320 MB so instead of 640; patch kNN's bank is stored in float16 too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline.errors import UserError
from pipeline.media.images import read_rgb
from pipeline.media.video import video_frames
from pipeline.model.backend import Forward
from pipeline.model.preprocess import Preprocess


@torch.no_grad()
def extract_features(
    forward: Forward,
    preprocess: Preprocess,
    paths: Sequence[str | Path],
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    desc: str = "features",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features N x D, logits N x C, patch features N x P x C') as CPU tensors (float32, float32, float16), in
    the order of `paths`."""
    features, logits, patches = [], [], []
    with tqdm(total=len(paths), desc=desc, unit="img", leave=False, disable=None) as bar:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            frames = [torch.from_numpy(read_rgb(path)).to(device) for path in chunk]
            batch_features, batch_logits, batch_patches = forward(preprocess(frames))
            features.append(batch_features.float().cpu())
            logits.append(batch_logits.float().cpu())
            patches.append(batch_patches.half().cpu())
            bar.update(len(chunk))
    return torch.cat(features), torch.cat(logits), torch.cat(patches)


@torch.no_grad()
def extract_video_features(forward: Forward, preprocess: Preprocess, clip: Path, batch_size: int = 32,
                           device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features, logits, patch features) of every decoded frame of a video file, in decode order, as
    `extract_features` gives them."""
    features, logits, patches, batch = [], [], [], []

    def flush() -> None:
        batch_features, batch_logits, batch_patches = forward(preprocess(torch.from_numpy(np.stack(batch)).to(device)))
        features.append(batch_features.float().cpu())
        logits.append(batch_logits.float().cpu())
        patches.append(batch_patches.half().cpu())
        batch.clear()

    for frame in tqdm(video_frames(clip), desc=clip.name, unit="frame", leave=False, disable=None):
        batch.append(frame.image)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if not features:
        raise UserError(f"{clip} decodes to no frames")
    return torch.cat(features), torch.cat(logits), torch.cat(patches)
