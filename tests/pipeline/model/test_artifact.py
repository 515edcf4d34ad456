"""Artifact round trip, and the refusals a user would hit."""

import json

import numpy as np
import pytest

from pipeline import NeroScorer
from pipeline.errors import UserError
from pipeline.model.artifact import load_artifact, save_artifact


@pytest.fixture
def fitted(tmp_path):
    rng = np.random.default_rng(0)
    features = np.abs(rng.normal(size=(200, 60))).astype(np.float32)
    labels = np.arange(200) % 2
    weight, bias = rng.normal(size=(2, 60)).astype(np.float32), rng.normal(size=2).astype(np.float32)
    scorer = NeroScorer.fit(features, labels, weight, bias, k=20)
    save_artifact(tmp_path / "art", scorer, class_names=["mucosa", "polyp"], threshold=1.5,
                  threshold_rule="test", model={"arch": "resnet18", "sha256": "ab" * 32})
    return tmp_path / "art", scorer, features


def test_round_trip_scores_identically(fitted):
    path, scorer, features = fitted
    artifact = load_artifact(path, weights_sha256="ab" * 32)
    assert artifact.class_names == ["mucosa", "polyp"]
    assert artifact.threshold == 1.5
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["k"] == 20 and manifest["n_components"] == 40 and manifest["feature_dim"] == 60
    np.testing.assert_array_equal(artifact.scorer.score(features), scorer.score(features))


def test_other_weights_are_refused(fitted):
    with pytest.raises(UserError, match="fitted for model weights abababababab"):
        load_artifact(fitted[0], weights_sha256="cd" * 32)


def test_missing_and_foreign_artifacts(tmp_path, fitted):
    with pytest.raises(UserError, match="run `nero fit` first"):
        load_artifact(tmp_path / "nowhere")
    manifest = fitted[0] / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "schema_version": 99}))
    with pytest.raises(UserError, match="schema version 99"):
        load_artifact(fitted[0])
