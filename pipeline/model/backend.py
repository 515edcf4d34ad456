"""Where the classifier's forward pass runs: torch (the reference every other path is checked against) or
OpenVINO on the CPU (config `model.backend`).

OpenVINO runs the same network, converted from the configured torch model (`torch.export`, then
`openvino.convert_model`, batch dimension dynamic) and cached on disk, keyed by the weights' SHA-256, the
architecture, the input size and the OpenVINO version, so a model is converted once (~13 s) and never
served stale. It returns features and logits in one call, like `FeatureClassifier`, as torch tensors copied
out of the request's buffers (which the next call reuses; ~5 kB a frame).
Precision is pinned to f32: OpenVINO may otherwise pick bf16 on CPUs that have it, which changes scores.

Two compiled copies: one stream of all the threads for a single frame (a live stream's batches; 3.7 ms a
frame, against 6.9 ms on one thread), and one single-thread stream per thread for batches, split across them
and run at once. Streams share no barrier inside the network, so a decoder thread that takes a core slows one
stream, not every layer of all of them. Batch 16 on the 2-core CPU: 259 img/s against 228 for one stream of
two threads (1.13x); with a 1080p decode running beside it, 188 against 129 (1.45x). The outputs are
bit-identical.
Measured on the 2-core CPU (issue figures, docs/PERFORMANCE.md): 3.2-4.4x the torch eager forward, features
within 2e-6 relative. On CUDA the torch path runs whatever the config says (OpenVINO is a CPU backend here).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import UserError
from pipeline.model.classifier import FeatureClassifier

log = logging.getLogger(__name__)

Forward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def cache_folder() -> Path:
    """$NERO_CACHE, else $XDG_CACHE_HOME/nero-monitor, else ~/.cache/nero-monitor."""
    explicit = os.environ.get("NERO_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nero-monitor"


class OpenVinoForward:
    def __init__(self, classifier: FeatureClassifier, arch: str, weights_sha256: str, size: int) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise UserError("config key 'model.backend' is openvino but OpenVINO is not installed: "
                            "pip install openvino (or set model.backend: torch)") from None
        version = ov.__version__.split("-")[0]
        path = cache_folder() / "openvino" / f"{arch}-{size}-{weights_sha256[:16]}-{version}.xml"
        core = ov.Core()
        if path.is_file():
            model = core.read_model(path)
        else:
            log.info("converting %s to OpenVINO (once; cached in %s)", arch, path.parent)
            # Through torch.export, not TorchScript tracing, which torch 2.14 warns is deprecated. On the 2-core
            # CPU: the same outputs bit for bit (the demo clip's 1,875 frame messages identical), the same
            # speed, 13 s to convert once instead of 4. The example batch is 2: a batch of 1 would fix it at 1.
            batch = torch.export.Dim("batch", min=1)
            program = torch.export.export(classifier.eval().cpu(), (torch.zeros(2, 3, size, size),),
                                          dynamic_shapes=({0: batch},))
            model = ov.convert_model(program, input=[ov.PartialShape([-1, 3, size, size])])
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.xml")   # processes may race: each
            # writes its own, and the renames (atomic) leave one whole copy
            ov.save_model(model, partial, compress_to_fp16=False)
            partial.with_suffix(".bin").rename(path.with_suffix(".bin"))
            partial.rename(path)
        # Frames arrive channels-last (the uint8 resize keeps their layout), so the network takes NHWC and
        # OpenVINO folds the transpose into its first layer: 16 frames in 72.8-73.8 ms against 75.8-78.9 with
        # a copy to NCHW first (2-core CPU), bit-identical outputs.
        from openvino.preprocess import PrePostProcessor
        layout = PrePostProcessor(model)
        layout.input().tensor().set_layout(ov.Layout("NHWC"))
        layout.input().model().set_layout(ov.Layout("NCHW"))
        model = layout.build()
        threads = torch.get_num_threads()
        settings = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
        self.request = core.compile_model(model, "CPU", {**settings, "NUM_STREAMS": 1}).create_infer_request()
        self.requests = [self.request]
        if threads > 1:
            batched = core.compile_model(model, "CPU", {**settings, "NUM_STREAMS": threads})
            self.requests = [batched.create_infer_request() for _ in range(threads)]

    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame on the all-threads request; a batch split across the one-thread streams, run at once."""
        array = inputs.permute(0, 2, 3, 1).contiguous().numpy()   # NHWC: a view of channels-last frames
        if len(array) == 1 or len(self.requests) == 1:
            self.request.infer([array])
            return self._outputs(self.request)
        chunks = np.array_split(array, min(len(self.requests), len(array)))
        running = self.requests[:len(chunks)]
        for request, chunk in zip(running, chunks, strict=True):
            request.start_async([chunk])
        for request in running:
            request.wait()
        features, logits = zip(*map(self._outputs, running), strict=True)
        return torch.cat(features), torch.cat(logits)

    @staticmethod
    def _outputs(request) -> tuple[torch.Tensor, torch.Tensor]:
        features, logits = (torch.from_numpy(request.get_output_tensor(i).data.copy()) for i in range(2))
        return features, logits


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def make_forward(backend: str, classifier: FeatureClassifier, device: torch.device, arch: str,
                 weights_sha256: str, size: int) -> Forward:
    """The forward pass to run: the torch classifier itself, or the configured faster backend."""
    if backend == "auto":
        backend = "openvino" if device.type == "cpu" and openvino_installed() else "torch"
    if backend == "torch" or device.type != "cpu":
        if backend != "torch":
            log.warning("model.backend %s runs on the CPU only; the model runs on %s with torch", backend, device)
        return classifier
    return OpenVinoForward(classifier, arch, weights_sha256, size)
