"""Source: real decoding of files and network streams, frame indices and timestamps, clear failures."""

import itertools
import socket
import threading

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.media.video import OpenCVSource, PyAVSource, SourceError, open_source, source_kind, stream_name


@pytest.mark.parametrize("source, kind, name", [
    ("clips/endo case 1.mp4", "file", "endo_case_1"),
    ("rtsp://user:secret@10.0.0.5:8554/scope", "network", "10_0_0_5_8554"),
    ("udp://127.0.0.1:5000", "network", "127_0_0_1_5000"),
    ("srt://example.org:9000?mode=caller", "network", "example_org_9000"),
    ("/dev/video2", "device", "video2"),
])
def test_kind_and_name(source, kind, name):
    assert source_kind(source) == kind
    assert stream_name(source) == name


def test_file_frames_are_indexed_and_timed(short_clip, demo_frames):
    source = open_source(str(short_clip), "clip")
    assert source.info["codec"] == "h264" and source.info["fps"] == 25.0
    assert (source.info["width"], source.info["height"]) == (160, 160)
    frames = list(source)
    source.close()
    assert [f.index for f in frames] == list(range(len(demo_frames)))
    assert [f.pts for f in frames] == pytest.approx([i / 25 for i in range(len(frames))])
    assert all(f.stream == "clip" and f.image.shape == (160, 160, 3) and f.image.dtype == np.uint8
               for f in frames)
    assert np.abs(frames[7].image.astype(int) - demo_frames[7]).mean() < 8   # the same picture, lossy codec
    assert all(a.t_decoded <= b.t_decoded for a, b in itertools.pairwise(frames))


def test_opencv_reader_gives_the_same_frames(short_clip):
    pyav = PyAVSource(str(short_clip), "a")
    opencv = OpenCVSource(str(short_clip), "b")
    try:
        for ours, theirs in zip(pyav, opencv, strict=True):
            assert ours.index == theirs.index
            assert np.abs(ours.image.astype(int) - theirs.image).mean() < 2
    finally:
        pyav.close()
        opencv.close()


def test_hwaccel_falls_back_to_software_without_a_gpu(short_clip):
    source = open_source(str(short_clip), "clip", hwaccel=True)
    assert len(list(source)) == 60
    source.close()


def test_missing_file_and_non_video_are_one_line_errors(tmp_path):
    with pytest.raises(SourceError, match="no such video file"):
        open_source(str(tmp_path / "missing.mp4"), "x")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    with pytest.raises(SourceError, match="cannot open") as caught:
        open_source(str(text), "x")
    assert isinstance(caught.value, UserError) and "\n" not in str(caught.value)


def test_refused_connection_is_a_source_error():
    with socket.socket() as probe:         # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SourceError, match="cannot open tcp://127.0.0.1"):
        open_source(f"tcp://127.0.0.1:{port}", "net")


def test_silent_server_times_out_instead_of_hanging():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    try:
        with pytest.raises(SourceError, match="cannot open"):
            open_source(f"tcp://127.0.0.1:{server.getsockname()[1]}", "net", timeout_s=0.5)
    finally:
        server.close()
        for connection, _ in accepted:
            connection.close()
