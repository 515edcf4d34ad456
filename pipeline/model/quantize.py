"""The int8 forward (config `model.precision: int8`, OpenVINO on the CPU): the float32 OpenVINO model quantized
by NNCF's post-training quantization when `nero fit` runs, and kept in the artifact it fits.

Quantizing needs in-distribution frames to take activation ranges from, which only fitting has: CALIBRATION
of the training windows, drawn with a fixed seed. The artifact holds the quantized model (OpenVINO IR, no
pickle) beside the float32 weights, its files' SHA-256 in the manifest, checked when it is read; its
thresholds come from the int8 forward's own features.

What is quantized: what NNCF quantizes by default (every convolution, the pooling and the head's inputs),
chosen by the rule the live detector is chosen by, against variants that keep more in float. Measured with
scripts/int8_check.py on the 2-core AMD EPYC (2026-12-05, 300 training windows), against the float32
forward, each fitted on its own features; validation AUROC: the validation windows against their synthetic
outliers, the difference to float32 with its 95% paired bootstrap interval:

| forward | images/s, batch 16 | validation AUROC | synthetic over the 1-per-hour threshold | features moved |
|---|---|---|---|---|
| OpenVINO float32 | 216 | 92.30 | 46.2% | - |
| **int8, NNCF's defaults** | **489** | **93.21, +0.91 [+0.46, +1.36]** | **48.7%** | 18% |
| int8, the pooling and head in float, exact bias correction | 485 | 92.37, +0.07 [-0.19, +0.32] | 44.2% | 12% |
| int8, the depthwise convolutions in float too | 443 | 92.40, +0.10 [-0.10, +0.33] | 44.2% | 9% |

"Features moved": median relative distance to float32's. NNCF's default quantizes the input of the patch
branch's pooling with one scale for two concatenated blocks of different ranges, and the patch features
move by 110-130% (relative norm); refitted on them, patch kNN separates as before (AUROC 88.96 against
88.99), and the relevance part better (90.53 against 89.01). Validation accuracy 89.9% (float32 89.6%);
the predicted class agrees with float32's on 96% of the validation windows. The issue's bar was the
validation AUROC within 0.5 points. int8 is a choice for a CPU that cannot keep up, never a default, and
never an artifact fitted in another precision.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import UserError
from pipeline.media.images import read_rgb
from pipeline.model.classifier import file_sha256
from pipeline.model.preprocess import Preprocess

CALIBRATION = 300    # training windows NNCF takes activation ranges from (its own default subset size)
SEED = 0
MODEL_FILE = "model.int8.xml"     # and model.int8.bin beside it, in the artifact


def calibration_frames(preprocess: Preprocess, paths: Sequence[Path], count: int = CALIBRATION) -> list[np.ndarray]:
    """`count` of `paths` drawn with SEED, preprocessed, each a 1 x H x W x 3 float array (the model's input)."""
    picked = np.random.default_rng(SEED).choice(len(paths), min(count, len(paths)), replace=False)
    return [preprocess([torch.from_numpy(read_rgb(paths[index]))]).permute(0, 2, 3, 1).contiguous().numpy()
            for index in sorted(picked)]


def require_nncf() -> None:
    """A one-line error, before any model loads, where NNCF is not installed."""
    if importlib.util.find_spec("nncf") is None:
        raise UserError("config key 'model.precision' is int8, which NNCF quantizes at fit time: "
                        "pip install 'nero-monitor[int8]'")


def quantize(model, frames: list[np.ndarray], float_operations: Sequence[str] = (), exact_bias: bool = False):
    """`model` (`openvino_model`'s) quantized to int8 by NNCF, activation ranges from `frames`; by default as
    NNCF quantizes (`float_operations`: operation types left in float; `exact_bias`: its slower bias
    correction), which scripts/int8_check.py compares."""
    require_nncf()
    # NNCF imports torch's extension builder, which warns on a machine without CUDA that it found none
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    import nncf
    nncf.set_log_level(logging.WARNING)    # its INFO lines list every node it leaves alone
    scope = nncf.IgnoredScope(types=list(float_operations)) if float_operations else None
    return nncf.quantize(model, nncf.Dataset(frames), subset_size=len(frames), ignored_scope=scope,
                         fast_bias_correction=not exact_bias)


def save_quantized(model, folder: Path) -> dict[str, str]:
    """Write the quantized model into the artifact `folder`; the manifest's entry for it."""
    import openvino as ov
    xml = folder / MODEL_FILE
    ov.save_model(model, xml, compress_to_fp16=False)
    return {"file": MODEL_FILE, "sha256": {path.name: file_sha256(path) for path in (xml, xml.with_suffix(".bin"))},
            "calibration": f"{CALIBRATION} training windows (seed {SEED})"}


def read_quantized(folder: Path, manifest: dict):
    """The artifact's int8 model, checked against the manifest; a one-line error where there is none."""
    entry = manifest.get("model", {}).get("int8")
    if entry is None:
        raise UserError(f"config key 'model.precision' is int8 but artifact {folder} holds no int8 model: fit one "
                        "with `nero fit --config` on a config whose model.precision is int8")
    xml = folder / entry["file"]
    files = [xml, xml.with_suffix(".bin")]
    missing = [path for path in files if not path.is_file()]
    if missing:
        raise UserError(f"artifact {folder} lists an int8 model but {missing[0]} is missing: refit it")
    if {path.name: file_sha256(path) for path in files} != entry["sha256"]:
        raise UserError(f"the int8 model in {folder} does not match its manifest's SHA-256: refit it")
    try:
        import openvino as ov
    except ImportError:
        raise UserError("config key 'model.precision' is int8, which runs with OpenVINO: "
                        "pip install openvino") from None
    return ov.Core().read_model(xml)
