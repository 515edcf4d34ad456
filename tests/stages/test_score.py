"""Score stage: the same numbers as the bundle, one result per frame, in order."""

import numpy as np
import torch

from pipeline.explain.field import explain_batch
from stages.forward import ForwardStage
from stages.score import ScoreStage


def test_results_match_the_bundle_frame_by_frame(bundle, demo_frames):
    images = demo_frames[:6]
    results = ScoreStage(bundle)(ForwardStage(bundle)(images))
    inference = bundle.infer(torch.from_numpy(np.stack(images)))
    probs, terms = inference.probs, inference.terms
    assert [r.pred for r in results] == [bundle.class_names[i] for i in probs.argmax(1).tolist()]
    torch.testing.assert_close(torch.tensor([r.prob for r in results]), probs.max(1).values)
    torch.testing.assert_close(torch.tensor([r.score for r in results]), terms.score)
    assert [r.explain for r in results] == explain_batch(inference, bundle)
