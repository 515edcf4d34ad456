"""Pacing: frames wait for their presentation time; a jump in the timestamps restarts the clock."""

from stages.pace import Pacer


def test_frames_wait_for_their_time_and_a_jump_restarts_the_clock():
    waits: list[float] = []
    pace = Pacer(waits.append)          # records the waits instead of sleeping them
    pace(10.0)                           # the first frame sets the clock: no wait
    pace(10.4)
    pace(25.0)                           # 14.6 s ahead: a new segment, not a 14 s pause
    assert len(waits) == 1 and 0.3 < waits[0] <= 0.4
