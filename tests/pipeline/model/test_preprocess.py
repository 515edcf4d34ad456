"""Preprocess: shapes, normalisation, and the endoscope border crop."""

import pytest
import torch
import torch.nn.functional as F

from pipeline.model.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess, content_box, uint8_resize


def test_batch_is_resized_and_normalised():
    frames = torch.full((2, 100, 150, 3), 128, dtype=torch.uint8)
    out = Preprocess(size=64)(frames)
    assert out.shape == (2, 3, 64, 64) and out.dtype == torch.float32
    expected = (128 / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out[0, :, 10, 10], expected, rtol=1e-5, atol=1e-5)


def test_frames_of_different_sizes_share_a_batch():
    frames = [torch.zeros(50, 60, 3, dtype=torch.uint8), torch.zeros(300, 200, 3, dtype=torch.uint8)]
    assert Preprocess(size=32)(frames).shape == (2, 3, 32, 32)


def test_content_crop_removes_black_border():
    frame = torch.zeros(120, 160, 3, dtype=torch.uint8)
    frame[20:100, 40:130] = 200
    frame[110:115, 2:30] = 255           # a thin burned-in caption on the border is ignored
    assert content_box(frame) == (20, 100, 40, 130)
    cropped = Preprocess(size=16, crop_content=True)([frame])
    plain = Preprocess(size=16)([frame])
    assert cropped.std() < plain.std()   # only the uniform image area is left after cropping


def test_dark_frame_keeps_its_size():
    assert content_box(torch.zeros(10, 12, 3, dtype=torch.uint8)) == (0, 10, 0, 12)


@pytest.mark.parametrize(("height", "width", "size"), [(1080, 1920, 224), (480, 480, 224), (144, 256, 224),
                                                       (160, 160, 64), (37, 501, 50)])
def test_the_gpu_paths_resize_gives_the_cpu_kernels_pixels_bit_for_bit(height, width, size):
    """`uint8_resize`, what a GPU runs, here on the CPU: shrinking, enlarging and odd sizes, on noise (every
    rounding case) and on a smooth ramp."""
    generator = torch.Generator().manual_seed(height * width)
    noise = torch.randint(0, 256, (2, 3, height, width), generator=generator, dtype=torch.uint8)
    ramp = torch.linspace(0, 255, width).round().to(torch.uint8).expand(1, 3, height, width)
    for frames in (noise, ramp):
        cpu = F.interpolate(frames, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        assert torch.equal(uint8_resize(frames, size), cpu.float())
