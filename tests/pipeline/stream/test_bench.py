"""`nero bench`: every path is measured on the same frames and reported against the monitor."""

import json

from pipeline.cli import main
from pipeline.media.video import open_source
from pipeline.stream.bench import (
    MEASURES,
    cpu_model,
    cpu_verdict,
    decoded_frames,
    format_bench,
    run_bench,
    trimmed_clip,
)


def test_trimmed_clip_keeps_the_first_frames(demo_frames, make_clip, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", demo_frames[:20])
    trimmed, count = trimmed_clip(clip, 12, tmp_path)
    assert count == 12 and len(decoded_frames(open_source(str(trimmed), "t"))) == 12
    assert trimmed_clip(clip, 50, tmp_path) == (clip, 20)   # shorter than asked: used as it is


def test_bench_measures_every_path(bundle, demo_frames, make_clip, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", demo_frames[:12])
    lines = []
    result = run_bench(bundle, clip, frames=12, rounds=1, log=lines.append)
    assert result["frames"] == 12 and len(lines) == len(MEASURES)
    assert all(result["fps"][name] > 0 for name in MEASURES)
    assert result["monitor_ratio"]["monitor"] == 1.0
    assert result["monitor_latency_ms"]["end_to_end"]["p50"] > 0
    # CPU time of every path; the monitor decodes and scores, so it costs more CPU a frame than scoring alone
    assert all(result["cpu_ms_per_frame"][name] > 0 for name in MEASURES)
    assert result["cpu_ms_per_frame"]["monitor"] > result["cpu_ms_per_frame"]["score"]
    assert 0 < result["monitor_cpu_use"] <= 1.05 and result["cpu_ceiling_fps"] > 0
    assert "of the cores busy" in format_bench(result)
    # decoding and scoring cost more CPU than the forward alone, which holds the monitor under it
    assert 0 < result["forward_share"] < 1.2 and "puts the monitor near" in format_bench(result)
    # and it names what the score stage adds to the forward: the detector the monitor alerts on
    assert f"score stage's own work ({bundle.detector}," in format_bench(result)


def test_the_cpu_verdict_tells_a_busy_monitor_from_one_that_waits():
    assert "bound by the CPU" in cpu_verdict(0.95)
    assert "left 40% of the cores idle" in cpu_verdict(0.6)


def test_bench_runs_several_streams_and_reports_each(bundle, demo_frames, make_clip, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", demo_frames[:12])
    result = run_bench(bundle, clip, frames=12, rounds=1, log=lambda line: None, streams=3)
    streams = result["streams"]
    assert streams["count"] == 3 and streams["fps"] > 0 and set(streams["per_stream_ms"]) == {"s0", "s1", "s2"}
    assert all(figures["p50"] > 0 and figures["drops"] == 0 for figures in streams["per_stream_ms"].values())
    assert "3 streams (as fast as possible)" in format_bench(result)


def test_bench_command_writes_json(monitor_config, demo_frames, make_clip, tmp_path, capsys):
    clip = make_clip(tmp_path / "c.mp4", demo_frames[:8])
    config = tmp_path / "c.yaml"
    config.write_text(f"model:\n  arch: {monitor_config.model.arch}\n"
                      f"  weights: {monitor_config.resolve(monitor_config.model.weights)}\n"
                      f"artifact: {monitor_config.resolve(monitor_config.artifact)}\ndevice: cpu\n")
    assert main(["bench", str(clip), "--config", str(config), "--rounds", "1", "--json",
                 str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "monitor / path" in out
    assert cpu_model() in out.splitlines()[0]      # absolute figures name the machine that made them
    assert set(json.loads((tmp_path / "b.json").read_text())["fps"]) == set(MEASURES)
