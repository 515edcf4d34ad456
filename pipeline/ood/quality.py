"""Input-quality guard: a frame with no usable content is never reported as in-distribution.

A covered lens, a white-out, a dead feed or a smeared lens give frames the detectors were never shown; the
classifier still answers, and the OOD score of such a frame can land anywhere (before this guard, 25 black,
25 white and 25 noise frames all scored in-distribution). So the monitor looks at the frame itself first,
with cheap statistics of the model's input (after the resize to 224 x 224, on the model's device: 4.5 ms for
a batch of 16 on the 2-core CPU, 4% of the score stage), and names
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
SATURATED = 250.0   # a channel over this is saturated
UNIFORM_STD = 2.5
NOISE_SHARPNESS = 0.7
BLUR_LAPLACIAN = 1.0
LUMA = (0.299, 0.587, 0.114)


def quality_reasons(inputs: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> list[str | None]:
    """The model's input, N x 3 x H x W normalised per channel as (pixel - mean) / std (any device or memory
    layout), -> per frame the reason it is unusable, or None. The statistics are of the pixel values; the
    affine map is folded into the luma's coefficients and the saturation limits instead of undoing it.

    Written for the CPU's sake; per batch of 16 at 224 x 224 (2-core CPU, the 1,923 frames of the demo clip
    and degraded ones): 8.6 ms with the pixels recovered first (2.2 ms of it) and the saturation tested on
    all three channels of every pixel (2.6 ms), 4.5 ms folded, with the three channels tested only in the
    frames where enough pixels are bright enough to matter (a pixel over 250 in all three channels has a luma
    over 250); the same reason for every frame. Flat per-frame rows and a two-pass variance had already
    halved the reductions over dims (1, 2, 3) and `torch.std`.
    """
    mean, std = mean.flatten().tolist(), std.flatten().tolist()
    count = inputs.shape[0]
    red, green, blue = inputs.float().unbind(dim=1)
    scale = [weight * spread for weight, spread in zip(LUMA, std, strict=True)]
    luma = torch.add(red, green, alpha=scale[1] / scale[0]).add_(blue, alpha=scale[2] / scale[0]).mul_(scale[0])
    luma += sum(weight * centre for weight, centre in zip(LUMA, mean, strict=True))
    rows = luma.reshape(count, -1)
    luma_mean = rows.mean(dim=1)
    luma_std = ((rows - luma_mean[:, None]).square().sum(dim=1) / (rows.shape[1] - 1)).sqrt()
    # the share saturated in all three channels is at most the share with a luma over the limit (less a
    # rounding allowance): only frames where that share passes BRIGHT_SATURATED are tested channel by channel
    saturated = (rows > SATURATED - 0.01).float().mean(dim=1)
    limits = [(SATURATED - centre) / spread for centre, spread in zip(mean, std, strict=True)]
    for frame in torch.nonzero(saturated > BRIGHT_SATURATED).flatten().tolist():
        over = (red[frame] > limits[0]) & (green[frame] > limits[1]) & (blue[frame] > limits[2])
        saturated[frame] = over.float().mean()
    # 4-neighbour Laplacian by slices: a third of a 3x3 conv's time on a CPU
    laplacian = luma[:, 1:-1, 2:] + luma[:, 1:-1, :-2]
    laplacian += luma[:, 2:, 1:-1]
    laplacian += luma[:, :-2, 1:-1]
    laplacian -= 4 * luma[:, 1:-1, 1:-1]
    laplacian = laplacian.abs_().reshape(count, -1).mean(dim=1)
    sharpness = laplacian / luma_std.clamp_min(1e-3)
    rules = torch.stack([luma_mean < DARK_MEAN, (luma_mean > BRIGHT_MEAN) | (saturated > BRIGHT_SATURATED),
                         luma_std < UNIFORM_STD, sharpness > NOISE_SHARPNESS, laplacian < BLUR_LAPLACIAN], dim=1)
    names = ("quality:dark", "quality:bright", "quality:uniform", "quality:noise", "quality:blur")
    return [names[row.index(True)] if True in row else None for row in rules.cpu().tolist()]
