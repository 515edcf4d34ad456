"""A subscription flood against a live monitor, caused for real: a second process sends distinct subscribe
frames to its port as fast as it can while a subscriber watches the alerts (scripts/flood_check.py, which
also measures the run side by side with an unflooded one for docs/RELIABILITY.md).

Before the fix 1.7 M subscribe frames in 15 s silenced the alerts for 6.7 s, dropped the frame rate from 25
to 10 fps and grew the monitor by 1.7 GB; what a user would notice is the silence, so that is what is held
here, with bounds far from both today's figures (0.09 s, 25 fps, +250 MB in 15 s) and the old ones.
"""

from __future__ import annotations


def test_a_subscription_flood_does_not_silence_the_alerts(flood_check, demo_frames, make_clip,
                                                          monitor_config_file, tmp_path):
    clip = make_clip(tmp_path / "camera.mp4", demo_frames * 10)      # 24 s of camera at 25 fps
    run = flood_check.one_run(clip, seconds=6.0, flooded=True, config=monitor_config_file)
    assert run["subscribe_frames_sent"] > 100_000, "the flood did not happen"
    assert run["monitor_exit"] == 0 and run["monitor_warned"]   # stderr names the flood
    assert run["longest_silence_s"] < 2.0, run        # was 6.7 s
    assert run["fps"] > 15, run                         # the camera's 25 fps, less live drops; was 10
    assert run["rss_growth_mb"] < 600, run              # was +1.7 GB in 15 s
