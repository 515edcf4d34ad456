"""Alert: ood is the raw threshold test; the alert switches on after m of n and off after a quiet period."""

import pytest

from pipeline.errors import UserError
from stages.alert import AlertStage


def run(stage: AlertStage, scores: list[float], stream: str = "s") -> list[tuple[bool, bool, bool]]:
    return [(d.ood, d.alert, d.changed) for d in (stage(stream, score) for score in scores)]


def test_ood_is_score_strictly_above_threshold():
    stage = AlertStage(threshold=1.0, on_count=1, window=1, off_after=1)
    assert [ood for ood, _, _ in run(stage, [0.5, 1.0, 1.0001])] == [False, False, True]


def test_nan_score_counts_as_out_of_distribution():
    stage = AlertStage(threshold=1.0, on_count=1, window=1, off_after=1)
    assert stage("s", float("nan")).ood is True


def test_alert_needs_m_of_the_last_n_frames():
    stage = AlertStage(threshold=1.0, on_count=3, window=5, off_after=10)
    decisions = run(stage, [2, 0, 2, 0, 0, 2, 0, 2])
    alerts = [alert for _, alert, _ in decisions]
    # ood at frames 0, 2, 5 and 7: no five consecutive frames hold three of them
    assert alerts == [False] * 8
    decisions = run(stage, [2])           # frames 4..8 now hold 5, 7, 8: three of five
    assert decisions == [(True, True, True)]


def test_single_outliers_do_not_flicker_and_alert_holds_through_short_gaps():
    stage = AlertStage(threshold=1.0, on_count=2, window=3, off_after=4)
    decisions = run(stage, [2, 0, 0, 0, 2, 2, 0, 0, 2, 0, 0, 0, 0, 0])
    alerts = [int(alert) for _, alert, _ in decisions]
    assert alerts == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    changes = [i for i, (_, _, changed) in enumerate(decisions) if changed]
    assert changes == [5, 12]


def test_streams_have_separate_histories():
    stage = AlertStage(threshold=1.0, on_count=2, window=2, off_after=1)
    assert stage("a", 2).alert is False
    assert stage("b", 2).alert is False       # one frame of b, not a second frame of a
    assert stage("a", 2).alert is True
    assert stage.is_on("a") and not stage.is_on("b") and not stage.is_on("unknown")


def test_alert_can_trigger_again_after_switching_off():
    stage = AlertStage(threshold=1.0, on_count=1, window=1, off_after=2)
    decisions = run(stage, [2, 0, 0, 2])
    assert [alert for _, alert, _ in decisions] == [True, True, False, True]


@pytest.mark.parametrize("on_count, window, off_after", [(0, 5, 10), (6, 5, 10), (3, 5, 0)])
def test_inconsistent_settings_are_a_user_error(on_count, window, off_after):
    with pytest.raises(UserError, match="on_count"):
        AlertStage(1.0, on_count, window, off_after)


def test_median_smoothing_ignores_a_spike_that_raw_scores_alert_on():
    raw = AlertStage(threshold=1.0, on_count=1, window=1, off_after=1)
    smoothed = AlertStage(threshold=1.0, on_count=1, window=1, off_after=1, smoothing="median",
                          smoothing_window=5)
    scores = [0.2, 0.3, 500.0, 0.2, 0.3]            # one spiking frame, as NERO gives near a zero logit
    assert [raw("s", x).alert for x in scores] == [False, False, True, False, False]
    decisions = [smoothed("s", x) for x in scores]
    assert [d.alert for d in decisions] == [False] * 5
    assert [d.ood for d in decisions] == [False, False, True, False, False]   # ood stays the raw decision


def test_mean_smoothing_alerts_on_a_sustained_rise():
    stage = AlertStage(threshold=1.0, on_count=1, window=1, off_after=1, smoothing="mean", smoothing_window=3)
    assert [stage("s", x).alert for x in [0.5, 0.5, 2.0, 2.0, 2.0]] == [False, False, False, True, True]


def test_unknown_smoothing_names_the_config_key():
    with pytest.raises(UserError, match="alert.smoothing"):
        AlertStage(1.0, smoothing="ewma")
