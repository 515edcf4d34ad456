"""Annotate: one output frame per input frame, overlay drawn, alert frames marked in red."""

import av
import numpy as np

from stages.annotate import Annotator, draw


def test_alert_frames_get_a_red_border_and_quiet_frames_do_not(demo_frames):
    image = demo_frames[0]
    quiet = draw(image, pred="mucosa", prob=0.9, score=1.0, threshold=2.0, ood=False, alert=False)
    alert = draw(image, pred="mucosa", prob=0.9, score=3.0, threshold=2.0, ood=True, alert=True)
    assert quiet.shape == image.shape and not np.array_equal(quiet, image)
    edge = alert[image.shape[0] // 2, 1]
    assert edge[0] > 200 and edge[1] < 80            # red, in RGB
    assert not np.array_equal(quiet[image.shape[0] // 2, 1], edge)
    assert np.array_equal(image, demo_frames[0])     # the input is not touched


def test_video_has_every_frame_at_the_source_rate(tmp_path, demo_frames):
    path = tmp_path / "annotated.mp4"
    annotate = Annotator(path, fps=25.0)
    odd = [frame[:159, :157] for frame in demo_frames[:12]]    # odd sizes are trimmed to even for 4:2:0
    for i, image in enumerate(odd):
        annotate(image, pred="polyp", prob=0.6, score=float(i), threshold=5.0, ood=i > 5, alert=i > 7)
    annotate.close()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert float(stream.average_rate) == 25.0
    assert len(frames) == 12 and (frames[0].width, frames[0].height) == (156, 158)
