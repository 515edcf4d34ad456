"""The LRP composite refuses models it has no conserving rules for (conservation itself: test_heatmap.py)."""

import pytest

from pipeline.errors import UserError
from pipeline.explain.lrp import canonizers_for
from pipeline.model.classifier import build_model


def test_models_without_conserving_rules_are_refused():
    with pytest.raises(UserError, match="LayerNorm"):
        canonizers_for(build_model("deit_small", num_classes=2))
