"""YUV frames, the GPU path's, converted where they lie: checked on the CPU against OpenCV's BT.601 conversion
(the CPU path's), against the model input the CPU path gives, and against the colours each matrix and range
define."""

from itertools import islice

import av
import cv2
import numpy as np
import pytest
import torch

from pipeline.media.video import PyAVSource
from pipeline.media.yuv import YuvImage, rgb_array, rgb_frames
from pipeline.model.preprocess import Preprocess, uint8_resize


def i420(image: YuvImage) -> np.ndarray:
    """The planes as OpenCV's I420 buffer."""
    return np.concatenate([plane.contiguous().numpy().ravel()
                           for plane in (image.luma, image.chroma[0], image.chroma[1])]).reshape(-1, image.shape[1])


def test_a_software_decoder_gives_its_planes_without_the_rgb_conversion(short_clip):
    source = PyAVSource(str(short_clip), "clip", yuv_device="cpu")
    frame = next(iter(source))
    source.close()
    assert isinstance(frame.image, YuvImage)
    assert frame.image.shape == (160, 160, 3) and frame.image.chroma.shape == (2, 80, 80)
    assert frame.image.nbytes == 160 * 160 * 3 // 2          # half the bytes of the RGB frame in the queues
    assert source.info["zero_copy"] is False and source.info["hwaccel"] is False


def test_the_full_frame_is_opencvs_bt601_conversion_bit_for_bit(short_clip):
    source = PyAVSource(str(short_clip), "clip", yuv_device="cpu")
    for frame in islice(source, 0, 60, 6):
        theirs = cv2.cvtColor(i420(frame.image), cv2.COLOR_YUV2RGB_I420)
        assert np.array_equal(rgb_array(frame.image), theirs)
    source.close()


def test_yuv_frames_give_the_model_the_cpu_paths_input_bit_for_bit(short_clip):
    """The GPU path's frames, here on the CPU, against the CPU path's RGB frames: converted where they lie, then
    resized the GPU's way (`uint8_resize`), they give the same picture to the last bit, so the same scores.
    (The first design resized the planes before converting: 0.005 apart in score, and other alerts.)"""
    planes, rgb = PyAVSource(str(short_clip), "a", yuv_device="cpu"), PyAVSource(str(short_clip), "b")
    yuv_frames, rgb_frames_ = zip(*((a.image, b.image) for a, b in zip(planes, rgb, strict=True)), strict=True)
    planes.close()
    rgb.close()
    gpu_way = uint8_resize(rgb_frames(list(yuv_frames)).permute(0, 3, 1, 2), 64)
    cpu_way = torch.nn.functional.interpolate(torch.from_numpy(np.stack(rgb_frames_)).permute(0, 3, 1, 2),
                                              size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
    assert gpu_way.shape == (60, 3, 64, 64) and torch.equal(gpu_way, cpu_way.float())
    preprocess = Preprocess(64)        # and on the CPU, the two kinds of frame meet the same uint8 kernel
    assert torch.equal(preprocess(list(yuv_frames)), preprocess(torch.from_numpy(np.stack(rgb_frames_))))


@pytest.mark.parametrize(("matrix", "full_range", "codes"), [
    ("bt601", False, (81, 90, 240)), ("bt709", False, (63, 102, 240)), ("bt2020", False, (74, 97, 240)),
    ("bt601", True, (76, 85, 255))])
def test_each_matrix_and_range_turns_its_own_red_into_red(matrix, full_range, codes):
    """Pure red as each standard codes it; read with another matrix, it is off by 20 levels or more."""
    y, cb, cr = codes
    image = YuvImage(torch.full((4, 6), y, dtype=torch.uint8),
                     torch.tensor([cb, cr], dtype=torch.uint8).view(2, 1, 1).expand(2, 2, 3), matrix, full_range)
    rgb = image.rgb().reshape(-1, 3)
    assert (rgb[:, 0] >= 250).all() and (rgb[:, 1:] <= 5).all()


def test_the_source_reads_the_matrix_and_range_from_the_stream(tmp_path):
    """A BT.709 full-range clip (as some endoscopy towers send) is read as such, not as BT.601."""
    path = tmp_path / "bt709.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = 64
        stream.codec_context.colorspace, stream.codec_context.color_range = 1, 2   # BT.709, JPEG (full) range
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), (200, 60, 30), np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace=1, dst_color_range=2)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    source = PyAVSource(str(path), "clip", yuv_device="cpu")
    image = next(iter(source)).image
    source.close()
    assert (image.matrix, image.full_range) == ("bt709", True)
    assert np.abs(rgb_array(image).astype(int) - (200, 60, 30)).max() <= 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU with NVDEC (scripts/gpu_check.py)")
def test_nvdec_frames_stay_in_gpu_memory_and_hold_the_software_decoders_pixels(short_clip):
    """H.264 decodes bit-exactly on any conforming decoder, so NVDEC's planes equal the CPU decoder's."""
    torch.zeros(1, device="cuda")       # torch's CUDA context first, as in `nero live` reconnecting
    gpu = PyAVSource(str(short_clip), "gpu", hwaccel=True, yuv_device="cuda")
    cpu = PyAVSource(str(short_clip), "cpu", yuv_device="cpu")
    assert gpu.info["zero_copy"] is True and gpu.info["hwaccel"] is True
    for ours, theirs in zip(gpu, cpu, strict=True):
        assert ours.image.device.type == "cuda"
        assert torch.equal(ours.image.luma.cpu(), theirs.image.luma)
        assert torch.equal(ours.image.chroma.cpu(), theirs.image.chroma)
    gpu.close()
    cpu.close()
