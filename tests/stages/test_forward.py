"""Forward stage: frames of any size share a batch and come out as they would alone."""

from stages.forward import ForwardStage
from stages.score import ScoreStage


def test_frames_of_different_sizes_share_a_batch(bundle, demo_frames):
    images = [demo_frames[0], demo_frames[1][:120, :100]]
    results = ScoreStage(bundle)(ForwardStage(bundle)(images))
    alone = ScoreStage(bundle)(ForwardStage(bundle)([demo_frames[1][:120, :100]]))
    assert len(results) == 2
    assert abs(results[1].score - alone[0].score) < 1e-4 * max(1.0, abs(alone[0].score))
