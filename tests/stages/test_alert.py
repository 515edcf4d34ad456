"""The alert stage: one rule per stream, so streams sharing a monitor never trigger each other."""

import pytest

from pipeline.ood.alert import AlertRule
from stages.alert import AlertStage


def test_streams_have_separate_histories():
    stage = AlertStage(lambda: AlertRule(threshold=1.0, on_count=2, window=2, off_after=1))
    assert stage("a", 2).alert is False
    assert stage("b", 2).alert is False       # one frame of b, not a second frame of a
    assert stage("a", 2).alert is True
    assert stage.is_on("a") and not stage.is_on("b") and not stage.is_on("unknown")


def test_bad_settings_fail_before_the_first_frame():
    with pytest.raises(ValueError, match="on_count"):
        AlertStage(lambda: AlertRule(1.0, on_count=6, window=5))
