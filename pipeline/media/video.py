"""Decode a video file, a network stream or a capture device into RGB frames: the monitor's source, and the
one decoder every offline tool uses (`video_frames`), so both see the same frames, indices and pixels.

Input:  a file (MP4, MKV, AVI, TS, anything FFmpeg reads), a network URL (rtsp, rtmp, srt, udp, tcp,
        http...) or a V4L2 capture device (/dev/videoN).
Output: an iterator of `Frame` (stream name, frame index, presentation time, capture time, H x W x 3 uint8
        RGB), every decoded frame in decoding order: a source never drops (the runner decides what to drop).

PyAV (FFmpeg) decodes everything; a capture device PyAV cannot open is tried again through OpenCV. With
`hwaccel=True`, decoding runs on NVDEC (`HWAccel("cuda")`) and frames are downloaded to host memory; a missing
GPU or an unsupported codec falls back to software decoding, and `info["hwaccel"]` says which one ran.
With `yuv_device` set, frames stay as YUV planes (`pipeline.media.yuv.YuvImage`) instead of RGB arrays: with
`hwaccel` and "cuda", NVDEC's frames never leave GPU memory (`info["zero_copy"]`); on "cpu", the software
decoder's planes (the GPU path's arithmetic on a machine without a GPU).

Failures raise `SourceError` (a `UserError`: one line, no traceback): a source that does not open, and a
stream that breaks while reading. A network stream that simply ends finishes the iteration like a file does.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import av
import cv2
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from pipeline.errors import UserError
from pipeline.media.yuv import COLORSPACES, JPEG_RANGE, YuvImage

log = logging.getLogger(__name__)
NETWORK_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "tcp", "http", "https", "rtp"})
# Probe at most this much of a network stream before the first frame (FFmpeg's default of 5 s would hold a
# live feed back that long on every (re)connection). The probed packets are still decoded, not discarded.
NETWORK_OPTIONS = {"analyzeduration": "1000000", "probesize": "1000000"}


class SourceError(UserError):
    """A source that cannot be opened, or a stream that broke while being read."""


@dataclass(slots=True)
class Frame:
    stream: str
    index: int          # decoded frames since the source was opened, from 0
    pts: float          # presentation time in seconds (index / rate when the container gives none)
    t_capture: float    # unix time the frame left the decoder (re-stamped when a paced file delivers it)
    t_decoded: float    # time.perf_counter() at the same moment: where latency is measured from
    image: np.ndarray | YuvImage   # H x W x 3 uint8 RGB, or the planes (`yuv_device`)
    t_dequeued: float = 0.0  # perf_counter() when the batcher took it (set by the runner)


def source_kind(source: str) -> str:
    """'network', 'device' or 'file'."""
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    if scheme in NETWORK_SCHEMES:
        return "network"
    if re.fullmatch(r"/dev/video\d+", source) or scheme == "v4l2":
        return "device"
    return "file"


def stream_name(source: str) -> str:
    """A short topic-safe name for a source: the file stem, the device, or host_port of a URL."""
    kind = source_kind(source)
    if kind == "file":
        base = Path(source).stem
    elif kind == "device":
        base = source.rsplit("/", 1)[-1]
    else:
        url = urlsplit(source)
        base = f"{url.hostname}_{url.port}" if url.port else str(url.hostname)
    return re.sub(r"[^A-Za-z0-9_-]+", "_", base).strip("_") or "stream"


TRUNCATED_SHARE = 0.99   # of the frames a file's index lists that must decode (edit lists can drop a few)


def colour_tags(frame: av.VideoFrame) -> tuple[str, bool]:
    """The frame's YUV matrix and whether it is full range, as FFmpeg tags them (untagged: BT.601, limited)."""
    full_range = int(frame.color_range) == JPEG_RANGE or frame.format.name.startswith("yuvj")
    return COLORSPACES.get(int(frame.colorspace), "bt601"), full_range


class PyAVSource:
    """Decode with PyAV: files, network streams and V4L2 devices."""

    def __init__(self, source: str, name: str, hwaccel: bool = False, timeout_s: float = 5.0,
                 yuv_device: str | None = None) -> None:
        self.source, self.name, self.kind = source, name, source_kind(source)
        self.timeout_s, self.yuv_device = timeout_s, yuv_device
        options: dict[str, Any] = {}
        if self.kind == "network":
            options = {"options": dict(NETWORK_OPTIONS), "timeout": (timeout_s, timeout_s)}
        elif self.kind == "device":
            options = {"format": "v4l2"}
            source = source.removeprefix("v4l2://")
        zero_copy = hwaccel and yuv_device is not None and yuv_device.startswith("cuda")
        self.container, self.zero_copy = self._open(source, options, hwaccel, zero_copy)
        self._shared = self.zero_copy   # NVDEC's frames handed to torch; False after an export fails
        if not self.container.streams.video:
            self.container.close()
            raise SourceError(f"{self.name}: {self.source} has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"  # frame and slice threads: decoding is the source's bottleneck
        # One swscale context for the stream: `to_ndarray("rgb24")` builds one per frame. The same pixels;
        # 1.23 -> 1.05 ms a 1920 x 1080 frame on the 2-core CPU.
        self._to_rgb = VideoReformatter()
        context = self.stream.codec_context
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.info = {
            "source_kind": self.kind, "codec": context.name, "width": context.width, "height": context.height,
            "fps": float(rate) if rate else None, "frames": self.stream.frames or None,
            "hwaccel": bool(getattr(context, "is_hwaccel", False)), "zero_copy": self.zero_copy,
            "reader": "pyav",
        }

    def _open(self, source: str, options: dict[str, Any], hwaccel: bool,
              zero_copy: bool) -> tuple[av.container.InputContainer, bool]:
        """The open container, and whether its frames stay in GPU memory."""
        try:
            if hwaccel:
                for accel in self._accelerators(zero_copy):
                    try:
                        return av.open(source, hwaccel=accel, **options), accel.is_hw_owned
                    except (av.FFmpegError, ValueError, RuntimeError, OSError):
                        pass  # no CUDA device, no NVDEC for this stream or no shared context: the next way
            return av.open(source, **options), False
        except av.FFmpegError as error:
            raise SourceError(f"{self.name}: cannot open {self.source}: {self._describe(error)}") from None

    def _accelerators(self, zero_copy: bool) -> Iterator[av.codec.hwaccel.HWAccel]:
        """NVDEC set-ups to try in order. Frames kept in GPU memory must live in torch's CUDA context. FFmpeg
        shares the primary context (torch's) only while no one has made it current with other flags; once torch
        has (most likely the lent H100's OSError 95), FFmpeg is given the thread's current context instead.
        Last, frames downloaded to the host."""

        from av.codec.hwaccel import HWAccel

        if zero_copy and torch.cuda.is_available():
            index = torch.device(self.yuv_device).index or 0
            yield HWAccel("cuda", device=index, is_hw_owned=True)
            torch.cuda.set_device(index)   # initialises torch's context and makes it current in this thread
            yield HWAccel("cuda", device=index, is_hw_owned=True, options={"primary_ctx": "0", "current_ctx": "1"})
        yield HWAccel("cuda")

    def __iter__(self) -> Iterator[Frame]:
        rate = self.info["fps"] or 25.0
        index = 0
        try:
            for decoded in self.container.decode(self.stream):
                image = self._yuv(decoded) if self.yuv_device else self._rgb(decoded)
                pts = decoded.time if decoded.time is not None else index / rate
                yield Frame(self.name, index, float(pts), time.time(), time.perf_counter(), image)
                index += 1
        except av.FFmpegError as error:
            message = f"{self.name}: stream broke after {index} frames: {self._describe(error)}"
            raise SourceError(message) from None
        declared = self.info["frames"]
        # A file cut short (a recording copied half-way, its index at the front) decodes to its end without
        # an error from FFmpeg: only the frame count its index promised tells.
        if self.kind == "file" and declared and index < TRUNCATED_SHARE * declared - 1:
            raise SourceError(f"{self.name}: {self.source} ends after {index} of the {declared} frames its index "
                              "lists: the file is truncated or damaged")

    def close(self) -> None:
        self.container.close()

    def _yuv(self, frame: av.VideoFrame) -> YuvImage | np.ndarray:
        """The frame's planes as tensors: NVDEC's NV12 copied within the GPU (which hands the decoder its surface
        back at once: its pool is small), a software decoder's 4:2:0 planes without a copy; any other pixel
        format (4:2:2, 10 bits, RGB from a webcam...) as an RGB array."""
        matrix, full_range = colour_tags(frame)
        if frame.format.name == "cuda" and self._shared:
            try:
                luma, chroma = (torch.from_dlpack(plane.__dlpack__()) for plane in frame.planes[:2])
            except (OSError, RuntimeError, TypeError, ValueError, NotImplementedError) as error:
                # The stream goes on with frames downloaded to the host: slower, still alerting.
                log.warning("%s: NVDEC frames cannot be handed to torch in GPU memory (%s); downloading them "
                            "to the host instead", self.name, error)
                self._shared = False
            else:
                if luma.dtype == torch.uint8:
                    return YuvImage(luma.clone(), chroma.permute(2, 0, 1).clone(), matrix, full_range)
        elif frame.format.name in ("yuv420p", "yuvj420p"):
            luma, cb, cr = (torch.from_dlpack(plane.__dlpack__()) for plane in frame.planes)
            image = YuvImage(luma, torch.stack([cb, cr]), matrix, full_range)
            return image.to(self.yuv_device) if self.yuv_device != "cpu" else image
        return self._rgb(frame)

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """The frame as RGB, by the GPU path's conversion where it can (pipeline/media/yuv.py).

        8-bit 4:2:0 BT.601 in limited range, most recordings: OpenCV's conversion, which the GPU path computes
        bit for bit, in about swscale's time (0.17 against 0.14 ms a 480p frame, 0.91 against 0.95 ms at
        1080p; AMD EPYC). swscale's fast path reads 0.9-1.5 levels darker; its exact one costs 7x
        (docs/PERFORMANCE.md). Other matrices, ranges and formats go through swscale.
        """
        if (frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0
                and colour_tags(frame) == ("bt601", False)):
            return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
        return self._to_rgb.reformat(frame, format="rgb24").to_ndarray()

    def _describe(self, error: av.FFmpegError) -> str:
        """FFmpeg's message without the file name PyAV appends (ours names the source already)."""
        if isinstance(error, av.error.ExitError):  # PyAV's timeout interrupts FFmpeg's read
            return f"no data for {self.timeout_s:g} s"
        return error.strerror or str(error)


class OpenCVSource:
    """Decode with OpenCV: the fallback for capture devices that PyAV cannot open."""

    def __init__(self, source: str, name: str) -> None:
        self.source, self.name, self.kind = source, name, source_kind(source)
        self.capture = cv2.VideoCapture(source)
        if not self.capture.isOpened():
            raise SourceError(f"{self.name}: cannot open {source} with OpenCV either")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.info = {
            "source_kind": self.kind, "codec": None,
            "width": int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            "fps": fps if fps > 0 else None,
            "frames": int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None,
            "hwaccel": False, "zero_copy": False, "reader": "opencv",
        }

    def __iter__(self) -> Iterator[Frame]:
        rate = self.info["fps"] or 25.0
        index = 0
        while True:
            ok, bgr = self.capture.read()
            if not ok:
                return
            msec = self.capture.get(cv2.CAP_PROP_POS_MSEC)
            pts = msec / 1000.0 if msec > 0 or index == 0 else index / rate
            yield Frame(self.name, index, pts, time.time(), time.perf_counter(),
                        cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1

    def close(self) -> None:
        self.capture.release()


Source = PyAVSource | OpenCVSource


def open_source(source: str, name: str, hwaccel: bool = False, timeout_s: float = 5.0,
                yuv_device: str | None = None) -> Source:
    """Open a source with PyAV; a capture device PyAV cannot open gets a second try through OpenCV (RGB
    frames: it has no planes to keep)."""
    kind = source_kind(source)
    if kind == "file" and not Path(source).is_file():
        raise SourceError(f"{name}: no such video file: {source}")
    try:
        return PyAVSource(source, name, hwaccel, timeout_s, yuv_device)
    except SourceError:
        if kind != "device":
            raise
        return OpenCVSource(source.removeprefix("v4l2://"), name)


def video_frames(path: str | Path, name: str | None = None) -> Iterator[Frame]:
    """Every frame of a video file in decode order; the file is closed at the end, or when the caller stops.

    The one way offline code (evaluation, explanations, the report, the bench) decodes a file, so it sees
    exactly the frames, indices and pixels the monitor saw.
    """
    source = open_source(str(path), name or Path(path).stem)
    try:
        yield from source
    finally:
        source.close()


def video_info(path: str | Path) -> dict[str, Any]:
    """What opening the file tells (codec, size, fps, frame count), without decoding a frame."""
    source = open_source(str(path), Path(path).stem)
    source.close()
    return source.info


def copy_h264(source: str | Path, out: str | Path, frames: int | None = None,
              size: tuple[int, int] | None = None) -> int:
    """Re-encode the first `frames` frames of `source` (all when None) as H.264 (yuv420p) at the source's rate,
    scaled to `size` (width, height) when given; returns the frames written. Used by `nero bench` and
    scripts/scale_clip.py, so the clips they measure are made one way."""
    with av.open(str(source)) as container, av.open(str(out), "w") as output:
        stream = container.streams.video[0]
        width, height = size or (stream.width, stream.height)
        encoder = output.add_stream("libx264", rate=stream.average_rate or 25)
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
        count = 0
        for frame in container.decode(stream):
            for packet in encoder.encode(frame.reformat(width=width, height=height, format="yuv420p")):
                output.mux(packet)
            count += 1
            if count == frames:
                break
        for packet in encoder.encode():
            output.mux(packet)
    return count
