"""An operating point in false alarms per hour: the alert threshold that in-distribution video crosses at most
that often, under the monitor's m-of-n hysteresis (pipeline.ood.alert).

The alert switches on when `on_count` of the last `window` scores are over the alert threshold, that is
when the alert statistic q_t (the on_count-th largest of the last `window` scores) is. Cut in-distribution
video (for the bundled model: pans over Kvasir-SEG validation frames the demo clip does not show, made by
`scripts/make_demo_clip.py --calibration`) into chunks of CHUNK_S seconds; a threshold raises a false alarm
in a chunk when the chunk's largest q_t is over it. So

    false alarms per hour (threshold) = chunks per hour x P(chunk maximum > threshold).

Minutes of video cannot show a rate of one per hour (900 chunks an hour, one calibration clip of 11 minutes
has 170), so the survival function's tail is extrapolated the standard way (peaks over threshold): the
TAIL_SHARE largest chunk maxima are fitted with a generalised Pareto distribution (scipy), and rates beyond
the empirical range come from that fit, never below what the video itself shows (at most rate x its hours
of its chunks over the threshold). What the calibration video lacks it cannot know: the rate holds for
normal video like it, and docs/RESULTS.md reports what other in-distribution video did.

Chunks are independent draws only roughly (pans of the same frame look alike, a chunk boundary can split an
excursion), and the fit has the uncertainty of a few dozen points; `nero fit` stores the calibration video's
own false alarms at each threshold beside it, the check a reader should look at first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pipeline.ood.alert import AlertRule

CHUNK_S = 4.0
TAIL_SHARE = 0.25          # chunk maxima the tail is fitted on
MIN_TAIL = 10
RATES = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)   # per hour, the table an artifact stores
SCORE_TOLERANCE = 1e-4     # relative: how far backends' scores may differ (tests/pipeline/model/test_backend.py)


def alert_statistic(scores: np.ndarray, on_count: int, window: int) -> np.ndarray:
    """q_t = the on_count-th largest of scores t-window+1..t (NaN counts as +inf, as the rule counts it over
    any threshold); -inf until on_count frames have been seen. q_t > threshold is when the rule switches on."""
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=np.inf)
    padded = np.r_[np.full(window - 1, -np.inf), scores]
    return np.sort(sliding_window_view(padded, window), axis=1)[:, window - on_count]


@dataclass
class Calibration:
    """Alert thresholds for each rate, and what they rest on."""

    thresholds: dict[float, float]             # false alarms per hour -> alert threshold
    on_count: int
    window: int
    chunks: int
    tail: dict[str, float]                     # the generalised Pareto fit: threshold u, share above, shape, scale
    video_minutes: float
    observed_false_alarms: dict[float, int]    # on the calibration video, through the monitor's own rule

    def as_dict(self) -> dict:
        return {"rule": f"{self.on_count} of {self.window} frames over the alert threshold",
                "on_count": self.on_count, "window": self.window, "chunk_s": CHUNK_S, "chunks": self.chunks,
                "tail": {key: round(value, 6) for key, value in self.tail.items()},
                "video_minutes": round(self.video_minutes, 3),
                # whole: rounded, a threshold set just above a score could fall below it
                "thresholds": {f"{rate:g}": value for rate, value in self.thresholds.items()},
                "observed_false_alarms": {f"{rate:g}": n for rate, n in self.observed_false_alarms.items()}}


def chunk_maxima(scores: np.ndarray, fps: float, on_count: int, window: int) -> np.ndarray:
    statistic = alert_statistic(scores, on_count, window)
    size = max(1, round(CHUNK_S * fps))
    whole = len(statistic) // size * size
    return statistic[:whole].reshape(-1, size).max(axis=1)


def calibrate(videos: list[np.ndarray], fps: float, on_count: int, window: int, off_after: int,
              rates: tuple[float, ...] = RATES) -> Calibration:
    """Alert thresholds for `rates` from the frame scores of in-distribution `videos` (one array per clip)."""
    # Imported here, by fitting only: the monitor reads the thresholds, and a GPU host's image may lack scipy.
    from scipy.stats import genpareto

    maxima = np.sort(np.concatenate([chunk_maxima(scores, fps, on_count, window) for scores in videos]))
    tail_size = max(MIN_TAIL, round(TAIL_SHARE * len(maxima)))
    if len(maxima) < 2 * tail_size:
        raise ValueError(f"the calibration video holds {len(maxima)} chunks of {CHUNK_S:g} s; at least "
                         f"{2 * tail_size} are needed ({2 * tail_size * CHUNK_S / 60:.1f} min)")
    level = maxima[-tail_size - 1]
    shape, _, scale = genpareto.fit(maxima[-tail_size:] - level, floc=0.0)
    above = tail_size / len(maxima)
    per_hour = 3600.0 / CHUNK_S
    hours = len(maxima) / per_hour
    thresholds = {}
    for rate in rates:
        share = rate / per_hour                     # of chunks allowed over the threshold
        if share >= above:
            threshold = float(np.quantile(maxima, 1.0 - share))
        else:
            threshold = level + float(genpareto.isf(share / above, shape, loc=0.0, scale=scale))
        # Never promise fewer false alarms than the calibration video itself raised: at most rate x its
        # hours of its chunks may lie over the threshold (a fitted tail can end below its largest point).
        # The bound clears that chunk by the backends' score tolerance: the monitor's OpenVINO scores differ
        # from the fit's torch scores in the sixth digit, and a threshold a hair above the fit's maximum had
        # let the replayed calibration video raise the very false alarm the fit had counted out.
        seen = int(rate * hours)
        if seen < len(maxima):
            bound = maxima[-seen - 1]
            threshold = max(threshold, float(np.nextafter(bound + abs(bound) * SCORE_TOLERANCE, np.inf)))
        thresholds[rate] = threshold
    observed = {}
    for rate, threshold in thresholds.items():
        count = 0
        for scores in videos:
            rule = AlertRule(threshold, on_count, window, off_after)
            count += sum(d.changed and d.alert for d in map(rule.update, np.asarray(scores).tolist()))
        observed[rate] = count
    minutes = sum(len(scores) for scores in videos) / fps / 60
    tail = {"level": float(level), "share_above": above, "shape": float(shape), "scale": float(scale)}
    return Calibration(thresholds, on_count, window, len(maxima), tail, minutes, observed)


def threshold_for_rate(table: dict[str, float], rate: float) -> float:
    """The alert threshold for `rate` from an artifact's table (keys: rates per hour as text), interpolated
    in log(rate) between the stored rates; a rate outside the table is refused."""
    rates = sorted((float(key), value) for key, value in table.items())
    low, high = rates[0][0], rates[-1][0]
    if not low <= rate <= high:
        raise ValueError(f"the artifact's operating points cover {low:g} to {high:g} false alarms per hour, "
                         f"not {rate:g}")
    logs = np.log([r for r, _ in rates])
    return float(np.interp(np.log(rate), logs, [value for _, value in rates]))
