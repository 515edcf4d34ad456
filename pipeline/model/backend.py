"""Where the classifier's forward pass runs: torch (the reference every other path is checked against) or
OpenVINO on the CPU (config `model.backend`).

OpenVINO runs the same network, converted from the configured torch model (`torch.export`, then
`openvino.convert_model`, batch dimension dynamic) and cached on disk, keyed by the weights' SHA-256, the
architecture, the input size and the OpenVINO version, so a model is converted once (~13 s) and never
served stale. It returns features, logits and patch features in one call, like `FeatureClassifier`, as torch
tensors copied out of the request's buffers (which the next call reuses; ~43 kB a frame).
Precision is pinned to f32: OpenVINO may otherwise pick bf16 on CPUs that have it, which changes scores.

Two compiled copies: one stream of all the threads for a single frame (a live stream's batches; 3.7 ms a
frame, against 6.9 ms on one thread), and one single-thread stream per thread for batches. Streams share no
barrier inside the network, so a decoder thread that takes a core slows one stream, not every layer of all
of them. Batch 16 on the 2-core CPU: 259 img/s against 228 for one stream of two threads (1.13x); with a
1080p decode running beside it, 188 against 129 (1.45x). A batch goes to the streams one frame a request
(`FRAME_REQUESTS` in flight), not in one share per stream: a frame's activations stay in a core's cache,
where eight frames' spill to memory. Batches of 16 on the 2-core AMD EPYC (3 alternating rounds): 216-222
img/s and 8.9 CPU-ms a frame, against 172-183 img/s and 10.5-11.2 ms in two halves of 8; the monitor
1.08-1.10x at 480p and 1.07-1.15x at 1080p (docs/PERFORMANCE.md, 2026-12-05). The outputs are
bit-identical either way.
Measured on the 2-core CPU (issue figures, docs/PERFORMANCE.md): 3.2-4.4x the torch eager forward, features
within 2e-6 relative. On CUDA the torch path runs whatever the config says (OpenVINO is a CPU backend here).

Two settings change how the forward runs, not what it computes (pipeline/config.py):
- `model.precision: bfloat16`: OpenVINO computes in bf16 where the CPU has bf16 instructions (float32 with a
  warning where it has none); torch runs under autocast in channels-last. On the 2-core AMD EPYC (AVX512-BF16)
  OpenVINO's batch of 16 ran 1.76-2.00x its float32 forward; on the demo clip (torch, autocast) the predicted
  class agreed on 98.5% of frames, scores moved by 0.005 on average (0.087 at most) and the three alert
  intervals kept their onsets. A float32 artifact's operating point holds only roughly (OpenVINO bf16 raised
  one false alarm on the calibration video, which float32 replays without any), so `nero fit` extracts its
  features with this same forward; refitted in bf16, that video raised none.
- `model.cuda_graphs`: on a GPU, the forward is captured once per batch size (rounded up to a power of two)
  and replayed: one launch for the whole network, where eager PyTorch launches each of EfficientNet-Lite0's
  few hundred kernels from Python (on the lent H100 its batch of 1 took 2.96 ms eagerly, about the launches'
  cost). A capture is checked against the plain forward on the batch that triggered it, and dropped (with a
  warning) if they differ.
And one changes what it computes: `model.precision: int8` runs the artifact's quantized copy of the OpenVINO
model, through the same requests (pipeline/model/quantize.py: 2.26x the float32 forward on the 2-core AMD
EPYC; only with an artifact fitted on its features).
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import UserError
from pipeline.model.classifier import FeatureClassifier
from pipeline.ood.operating_point import SCORE_TOLERANCE

log = logging.getLogger(__name__)

Outputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]   # features, logits, patch features
Forward = Callable[[torch.Tensor], Outputs]
FRAME_REQUESTS = 16   # OpenVINO requests a batch is split over: one frame each up to this batch size
MAX_GRAPH_BATCH = 64   # larger batches run the plain forward: a graph per size would hold their activations


def cache_folder() -> Path:
    """$NERO_CACHE, else $XDG_CACHE_HOME/nero-monitor, else ~/.cache/nero-monitor."""
    explicit = os.environ.get("NERO_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nero-monitor"


def openvino_model(classifier: FeatureClassifier, arch: str, weights_sha256: str, size: int):
    """The classifier as an OpenVINO model taking NHWC frames: converted once, then read from the cache."""
    try:
        import openvino as ov
    except ImportError:
        raise UserError("config key 'model.backend' is openvino but OpenVINO is not installed: "
                        "pip install openvino (or set model.backend: torch)") from None
    version = ov.__version__.split("-")[0]
    # "p": the model with its patch output; a cached copy from before it had two outputs only
    path = cache_folder() / "openvino" / f"{arch}-{size}-{weights_sha256[:16]}-{version}-p.xml"
    if path.is_file():
        model = ov.Core().read_model(path)
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
    return layout.build()


class OpenVinoForward:
    def __init__(self, model, requested: str = "float32") -> None:
        """`model`: `openvino_model`'s, or a quantized copy of it (its precision is then int8)."""
        import openvino as ov
        core = ov.Core()
        threads = torch.get_num_threads()
        hint = "f32"
        if requested == "bfloat16":
            if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
                hint = "bf16"
            else:
                log.warning("model.precision is bfloat16 but this CPU has no bfloat16 instructions: the forward "
                            "runs in float32")
        quantized = any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
        self.precision = "int8" if quantized else "bfloat16" if hint == "bf16" else "float32"
        self.description = f"OpenVINO {self.precision}"
        settings = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads}
        self.request = core.compile_model(model, "CPU", {**settings, "NUM_STREAMS": 1}).create_infer_request()
        self.requests = [self.request]
        if threads > 1:
            batched = core.compile_model(model, "CPU", {**settings, "NUM_STREAMS": threads})
            self.requests = [batched.create_infer_request() for _ in range(FRAME_REQUESTS)]

    def __call__(self, inputs: torch.Tensor) -> Outputs:
        """One frame on the all-threads request; a batch one frame a request, queued on the one-thread streams
        (each takes the next as it finishes), run at once."""
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
        features, logits, patches = zip(*map(self._outputs, running), strict=True)
        return torch.cat(features), torch.cat(logits), torch.cat(patches)

    @staticmethod
    def _outputs(request) -> Outputs:
        features, logits, patches = (torch.from_numpy(request.get_output_tensor(i).data.copy()) for i in range(3))
        return features, logits, patches


class AutocastForward:
    """The torch classifier under autocast in a lower precision, channels-last (the layout tensor cores and
    oneDNN's bf16 kernels take), returning float32 like the classifier. A copy: the explanation's relevance
    pass keeps the float32 model."""

    def __init__(self, classifier: FeatureClassifier, device: torch.device, dtype: torch.dtype) -> None:
        self.classifier = copy.deepcopy(classifier).to(memory_format=torch.channels_last)
        self.device_type, self.dtype = device.type, dtype
        self.precision = str(dtype).removeprefix("torch.")
        self.description = f"torch {self.precision} (autocast, channels-last)"

    def __call__(self, inputs: torch.Tensor) -> Outputs:
        # No weight cache: a CUDA graph must not capture casts that autocast would skip on later calls.
        with torch.autocast(self.device_type, dtype=self.dtype, cache_enabled=False):
            outputs = self.classifier(inputs.contiguous(memory_format=torch.channels_last))
        features, logits, patches = (output.float() for output in outputs)
        return features, logits, patches


class CudaGraphForward:
    """`forward` replayed from CUDA graphs, one captured per batch size rounded up to a power of two (a batch of
    5 runs in the graph for 8; padding rows are computed and dropped, the model treats frames independently).

    Each graph reads a static input buffer and writes static outputs, which are cloned at once: the next replay
    overwrites them. A graph that fails to capture, or whose outputs differ from the plain forward's on the
    batch that triggered the capture, is not used (a warning says why), and that batch size runs plainly.
    """

    def __init__(self, forward: Forward) -> None:
        self.forward = forward
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, Outputs]] = {}
        self.refused: set[int] = set()
        self.precision = forward_precision(forward)
        self.description = f"{describe_forward(forward)}, CUDA graphs"

    @torch.inference_mode()
    def __call__(self, inputs: torch.Tensor) -> Outputs:
        count = len(inputs)
        size = 1 << (count - 1).bit_length()
        if size > MAX_GRAPH_BATCH or size in self.refused:
            return self.forward(inputs)
        if size not in self.graphs:
            return self._capture(size, inputs)
        graph, static_inputs, outputs = self.graphs[size]
        static_inputs[:count].copy_(inputs)
        graph.replay()
        features, logits, patches = (output[:count].clone() for output in outputs)
        return features, logits, patches

    def _capture(self, size: int, inputs: torch.Tensor) -> Outputs:
        """Capture the graph for `size` and return the plain forward's outputs for `inputs`."""
        count = len(inputs)
        static_inputs = torch.zeros((size, *inputs.shape[1:]), dtype=inputs.dtype, device=inputs.device)
        static_inputs[:count].copy_(inputs)
        try:
            with torch.cuda.device(inputs.device):          # a graph records on the current device
                side = torch.cuda.Stream()                   # warm-up off the default stream, as capture requires
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(3):
                        expected = self.forward(static_inputs)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                # thread_local: the monitor's score thread may be using the GPU while the forward thread
                # captures; the default ("global") would fail its allocations for the duration
                with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                    outputs = self.forward(static_inputs)
                graph.replay()
            difference = max(((got - want).abs().max() / want.abs().max().clamp_min(1e-12)).item()
                             for got, want in zip(outputs, expected, strict=True))
        except RuntimeError as error:
            log.warning("CUDA graph capture for batches of %d failed (%s): they run without one", size, error)
            self.refused.add(size)
            return self.forward(inputs)
        if not difference <= SCORE_TOLERANCE:          # NaN included
            log.warning("the CUDA graph for batches of %d differs from the plain forward by %.1e (relative): "
                        "they run without one", size, difference)
            self.refused.add(size)
        else:
            self.graphs[size] = (graph, static_inputs, outputs)
        features, logits, patches = (output[:count].clone() for output in expected)
        return features, logits, patches


def describe_forward(forward: Forward) -> str:
    """What runs the forward pass, in words (`nero bench` names it beside the device)."""
    return getattr(forward, "description", "torch float32")


def forward_precision(forward: Forward) -> str:
    """The arithmetic the forward actually runs in (bfloat16 asked of a CPU without it runs float32)."""
    return getattr(forward, "precision", "float32")


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def check_int8_device(device: torch.device) -> None:
    """int8 runs with OpenVINO, on the CPU: a one-line error for any other device."""
    if device.type != "cpu":
        raise UserError(f"config key 'model.precision' is int8, which runs with OpenVINO on the CPU only, but "
                        f"the device is {device}: set device: cpu, or another precision")


def make_forward(backend: str, classifier: FeatureClassifier, device: torch.device, arch: str,
                 weights_sha256: str, size: int, precision: str = "float32", cuda_graphs: bool = False,
                 int8_model=None) -> Forward:
    """The forward pass to run: the torch classifier itself, or the configured faster backend, precision and
    (on a GPU) CUDA graphs. `int8_model`: the quantized OpenVINO model precision int8 runs (`quantize`'s, or
    the artifact's by `read_quantized`)."""
    if precision == "int8":
        check_int8_device(device)
        if int8_model is None:
            raise ValueError("precision int8 needs the quantized model")
        return OpenVinoForward(int8_model)
    if backend == "auto":
        backend = "openvino" if device.type == "cpu" and openvino_installed() else "torch"
    if backend != "torch" and device.type != "cpu":
        log.warning("model.backend %s runs on the CPU only; the model runs on %s with torch", backend, device)
        backend = "torch"
    if backend == "openvino":
        return OpenVinoForward(openvino_model(classifier, arch, weights_sha256, size), precision)
    forward: Forward = classifier
    if device.type == "cuda" and precision == "float32":
        # float32 on a GPU means float32: torch lets cuDNN run float32 convolutions in TF32 (10-bit mantissa)
        # unless told otherwise. Measured on the lent H200 (2026-12-04, demo clip, TF32 switched off by the
        # driver's NVIDIA_TF32_OVERRIDE=0, as this does): the same alerts and the same score stage time
        # (inference p50 16.4 ms a batch against 17.4 with TF32), and CUDA graphs that repeat the plain
        # forward within 1e-4 (with TF32 they picked other kernels and moved features by 3e-4).
        torch.backends.cudnn.allow_tf32 = False
    if precision == "bfloat16":    # torch's autocast runs bf16 on any CPU, emulated where it lacks the instructions
        forward = AutocastForward(classifier, device, torch.bfloat16)
    if cuda_graphs and device.type != "cuda":
        log.warning("model.cuda_graphs applies on a GPU only; the model runs on %s without them", device)
    elif cuda_graphs:
        forward = CudaGraphForward(forward)
    return forward
