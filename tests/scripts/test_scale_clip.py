"""scripts/scale_clip.py: a rescaled H.264 copy with the frames asked for; an existing output is refused."""

import importlib.util
from pathlib import Path

import av
import pytest

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("scale_clip", REPO / "scripts" / "scale_clip.py")
scale_clip = importlib.util.module_from_spec(spec)
spec.loader.exec_module(scale_clip)


def test_copy_has_the_size_and_frame_count_asked_for(short_clip, tmp_path):
    out = tmp_path / "big.mp4"
    assert scale_clip.main([str(short_clip), str(out), "--size", "320x180", "--frames", "20"]) == 0
    with av.open(str(out)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 20 and (frames[0].width, frames[0].height) == (320, 180)


def test_existing_output_and_odd_size_are_refused(short_clip, tmp_path, capsys):
    out = tmp_path / "big.mp4"
    out.write_bytes(b"keep me")
    with pytest.raises(SystemExit) as stop:
        scale_clip.main([str(short_clip), str(out)])
    assert stop.value.code == 2 and "exists" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    with pytest.raises(SystemExit):
        scale_clip.main([str(short_clip), str(tmp_path / "odd.mp4"), "--size", "321x180"])
    assert "even sides" in capsys.readouterr().err
