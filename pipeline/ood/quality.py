"""Input-quality guard: a frame with no usable content is never reported as in-distribution.

A covered lens, a white-out, a dead feed or a smeared lens give frames the detectors were never shown; the
classifier still answers, and the OOD score of such a frame can land anywhere (before this guard, 25 black,
25 white and 25 noise frames all scored in-distribution). So the monitor looks at the frame itself first,
with cheap statistics of the model's input (after the resize to 224 x 224, on the model's device: 4.6 ms for
a batch of 16 on the 2-core CPU with the pixels recovered from the input, 4% of the score stage), and names
what is wrong:
`quality:dark`, `quality:bright`, `quality:uniform`, `quality:noise`, `quality:blur` (the first that applies,
in that order).

Statistics, of the luma (0.299 R + 0.587 G + 0.114 B, 0..255):
- mean, and the share of pixels saturated in all three channels (> 250);
- standard deviation;
- sharpness = mean |4-neighbour Laplacian| / standard deviation, and the Laplacian's mean itself.

Limits, set from in-distribution frames and synthetic degradations (measured with the bundled preprocessing on
1,010 Kvasir-SEG windows of work/benchmark/ID and 188 frames of the demo clip, against black, white, grey,
uniform-noise, covered-lens, Gaussian-blurred (sigma 4 and 8 px at the window's 256 px), heavily noised and
over/under-exposed copies; `tests/pipeline/ood/test_quality.py` causes each kind):

| reason  | rule                         | in-distribution (min or max)     | degraded                           |
|---------|------------------------------|----------------------------------|------------------------------------|
| dark    | mean < 25                    | mean >= 35.1                     | black 0, under-exposed <= 14.4     |
| bright  | mean > 245 or saturated > 40% | mean <= 234, saturated <= 19%   | white 255 / 100%                   |
| uniform | std < 2.5                    | std >= 3.67                      | grey, covered lens <= 0.55         |
| noise   | sharpness > 0.7              | sharpness <= 0.42                | noise 2.8; sigma-60 noise >= 0.97  |
| blur    | Laplacian mean < 1.0         | >= 1.29                          | sigma 8: <= 0.83, sigma 4: median 0.83 |

The blur limit was set again (0.5 -> 1.0) when the CPU resize began to round to whole pixel values
(pipeline/model/preprocess.py): the rounding alone lifts the Laplacian mean of a blurred frame (sigma 8: at
most 0.39 -> 0.83) and of a usable one (minimum 0.87 -> 1.29; 300 validation windows and 300 frames of the
demo's Kvasir segments). The other four rows did not need it: none of 486 in-distribution frames (341
windows, 145 demo frames) fires.

The limits sit outside every in-distribution frame measured, with margin: the guard is meant never to
fire on a usable frame, so a mildly blurred or dim frame passes and is left to the detector.
"""

from __future__ import annotations

import torch

DARK_MEAN = 25.0
BRIGHT_MEAN, BRIGHT_SATURATED = 245.0, 0.40
UNIFORM_STD = 2.5
NOISE_SHARPNESS = 0.7
BLUR_LAPLACIAN = 1.0
LUMA = (0.299, 0.587, 0.114)


def quality_reasons(pixels: torch.Tensor) -> list[str | None]:
    """N x 3 x H x W pixel values (0..255, any device or memory layout) -> per frame the reason it is unusable,
    or None.

    Written for the CPU's sake: per batch of 16 at 224 x 224 (2-core CPU) this took 7.3 ms as reductions over
    dims (1, 2, 3) and `torch.std` (2.2 ms of it), 3.6 ms as flat per-frame rows and a two-pass variance.
    """
    pixels = pixels.float()
    count = pixels.shape[0]
    red, green, blue = pixels.unbind(dim=1)
    luma = LUMA[0] * red + LUMA[1] * green + LUMA[2] * blue
    rows = luma.reshape(count, -1)
    mean = rows.mean(dim=1)
    std = ((rows - mean[:, None]).square().sum(dim=1) / (rows.shape[1] - 1)).sqrt()
    saturated = ((red > 250) & (green > 250) & (blue > 250)).reshape(count, -1).float().mean(dim=1)
    # 4-neighbour Laplacian by slices: a third of a 3x3 conv's time on a CPU
    laplacian = luma[:, 1:-1, 2:] + luma[:, 1:-1, :-2]
    laplacian += luma[:, 2:, 1:-1]
    laplacian += luma[:, :-2, 1:-1]
    laplacian -= 4 * luma[:, 1:-1, 1:-1]
    laplacian = laplacian.abs_().reshape(count, -1).mean(dim=1)
    sharpness = laplacian / std.clamp_min(1e-3)
    rules = torch.stack([mean < DARK_MEAN, (mean > BRIGHT_MEAN) | (saturated > BRIGHT_SATURATED),
                         std < UNIFORM_STD, sharpness > NOISE_SHARPNESS, laplacian < BLUR_LAPLACIAN], dim=1)
    names = ("quality:dark", "quality:bright", "quality:uniform", "quality:noise", "quality:blur")
    return [names[row.index(True)] if True in row else None for row in rules.cpu().tolist()]
