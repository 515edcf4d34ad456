"""The alert rule: ood is the raw threshold test; the alert switches on after m of n and off after a quiet
period; optional causal smoothing; the threshold rule. One implementation for live and offline, pinned here."""

import numpy as np
import pytest

from pipeline.config import AlertConfig
from pipeline.evaluation.video import smoothed, video_metrics
from pipeline.ood.alert import AlertRule, threshold_for
from pipeline.ood.truth import Truth
from stages.alert import AlertStage


def run(rule: AlertRule, scores: list[float]) -> list[tuple[bool, bool, bool]]:
    return [(d.ood, d.alert, d.changed) for d in (rule.update(score) for score in scores)]


def test_ood_is_score_strictly_above_threshold():
    rule = AlertRule(threshold=1.0, on_count=1, window=1, off_after=1)
    assert [ood for ood, _, _ in run(rule, [0.5, 1.0, 1.0001])] == [False, False, True]


def test_nan_score_counts_as_out_of_distribution():
    assert AlertRule(threshold=1.0, on_count=1, window=1, off_after=1).update(float("nan")).ood is True


def test_alert_needs_m_of_the_last_n_frames():
    rule = AlertRule(threshold=1.0, on_count=3, window=5, off_after=10)
    alerts = [alert for _, alert, _ in run(rule, [2, 0, 2, 0, 0, 2, 0, 2])]
    # ood at frames 0, 2, 5 and 7: no five consecutive frames hold three of them
    assert alerts == [False] * 8
    assert run(rule, [2]) == [(True, True, True)]          # frames 4..8 now hold 5, 7, 8: three of five


def test_single_outliers_do_not_flicker_and_alert_holds_through_short_gaps():
    decisions = run(AlertRule(threshold=1.0, on_count=2, window=3, off_after=4),
                    [2, 0, 0, 0, 2, 2, 0, 0, 2, 0, 0, 0, 0, 0])
    assert [int(alert) for _, alert, _ in decisions] == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    assert [i for i, (_, _, changed) in enumerate(decisions) if changed] == [5, 12]


def test_alert_can_trigger_again_after_switching_off():
    decisions = run(AlertRule(threshold=1.0, on_count=1, window=1, off_after=2), [2, 0, 0, 2])
    assert [alert for _, alert, _ in decisions] == [True, True, False, True]


@pytest.mark.parametrize("on_count, window, off_after", [(0, 5, 10), (6, 5, 10), (3, 5, 0)])
def test_inconsistent_settings_are_refused(on_count, window, off_after):
    with pytest.raises(ValueError, match="on_count"):
        AlertRule(1.0, on_count, window, off_after)


def test_median_smoothing_ignores_a_spike_that_raw_scores_alert_on():
    raw = AlertRule(threshold=1.0, on_count=1, window=1, off_after=1)
    median = AlertRule(threshold=1.0, on_count=1, window=1, off_after=1, smoothing="median", smoothing_window=5)
    scores = [0.2, 0.3, 500.0, 0.2, 0.3]            # one spiking frame, as NERO gives near a zero logit
    assert [raw.update(x).alert for x in scores] == [False, False, True, False, False]
    decisions = [median.update(x) for x in scores]
    assert [d.alert for d in decisions] == [False] * 5
    assert [d.ood for d in decisions] == [False, False, True, False, False]   # ood stays the raw decision


def test_mean_smoothing_alerts_on_a_sustained_rise():
    rule = AlertRule(threshold=1.0, on_count=1, window=1, off_after=1, smoothing="mean", smoothing_window=3)
    assert [rule.update(x).alert for x in [0.5, 0.5, 2.0, 2.0, 2.0]] == [False, False, False, True, True]


def test_unknown_smoothing_is_refused():
    with pytest.raises(ValueError, match="smoothing"):
        AlertRule(1.0, smoothing="ewma")


def test_threshold_lets_95_percent_of_validation_scores_through():
    scores = np.arange(1.0, 101.0)
    threshold = threshold_for(scores)
    assert threshold == pytest.approx(np.quantile(scores, 0.95)) and (scores > threshold).sum() == 5


@pytest.mark.parametrize("kind", ["none", "mean", "median"])
def test_live_and_offline_smooth_and_alert_alike_on_one_series(kind):
    """The monitor's alert stage and `nero eval --video` give the same alerts on the same scores."""
    rng = np.random.default_rng(7)
    scores = np.abs(rng.normal(1.0, 0.6, size=600))
    scores[200:260] += 2.0                                          # an OOD segment
    truth = np.zeros(600, dtype=bool)
    truth[200:260] = True
    settings = AlertConfig(on_count=3, window=5, off_after=10, smoothing=kind, smoothing_window=13)
    threshold = threshold_for(scores[:150])
    live = AlertStage(lambda: AlertRule(threshold, settings.on_count, settings.window, settings.off_after, kind, 13))
    live_alert = np.array([live("cam", score).alert for score in scores.tolist()])

    offline = smoothed(scores, "none" if kind == "none" else f"{kind}13")
    rule = AlertRule(threshold, settings.on_count, settings.window, settings.off_after)
    offline_alert = np.array([rule.update(score).alert for score in offline.tolist()])
    np.testing.assert_array_equal(live_alert, offline_alert)
    assert live_alert[200:260].any() and not live_alert[:190].all()

    onsets = np.flatnonzero(np.diff(np.r_[0, live_alert.astype(int)]) == 1)
    metrics = video_metrics(offline, Truth(truth, ["x"] * len(truth)), threshold, 25.0, settings)
    false_onsets = sum(not truth[i] for i in onsets)
    assert metrics["false_alerts_per_min"] == pytest.approx(false_onsets / ((~truth).sum() / 25.0 / 60.0))


def test_an_unusable_frame_is_ood_with_its_reason_whatever_its_score():
    rule = AlertRule(threshold=1.0, on_count=2, window=3, off_after=2)
    decisions = [rule.update(0.1, "quality:dark"), rule.update(0.1, "quality:dark"), rule.update(5.0),
                 rule.update(0.1)]
    assert [(d.ood, d.reason) for d in decisions] == [(True, "quality:dark"), (True, "quality:dark"),
                                                      (True, "score"), (False, None)]
    assert [d.alert for d in decisions] == [False, True, True, True]   # a covered lens raises the alert too


def test_the_alert_counts_frames_over_the_alert_threshold_while_ood_stays_per_frame():
    rule = AlertRule(threshold=1.0, on_count=2, window=3, off_after=2, alert_threshold=3.0)
    decisions = [rule.update(score) for score in (2.0, 2.0, 2.0, 4.0, 4.0, 0.5, 0.5)]
    assert [d.ood for d in decisions] == [True] * 5 + [False] * 2        # over the per-frame threshold
    assert [d.alert for d in decisions] == [False, False, False, False, True, True, False]
