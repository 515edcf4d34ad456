"""Config loading names the wrong key and applies defaults."""

import pytest

from pipeline.config import DEFAULT_CONFIG, load_config
from pipeline.errors import UserError


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_default_config_loads():
    config = load_config()
    assert config.source_path == DEFAULT_CONFIG
    assert config.model.arch == "efficientnet_lite0"
    assert config.resolve(config.artifact).is_absolute()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alert:\n  on_cuont: 3\n", "unknown config key 'alert.on_cuont'"),
        ("stream:\n  max_batch: many\n", "'stream.max_batch' must be int"),
        ("model: resnet18\n", "section 'model' must be a mapping"),
        ("preprocess:\n  mean: 0.5\n", "'preprocess.mean' must be a list"),
        ("device: tpu\n", "'device' must be auto, cpu or cuda"),
        ("detector: vim\n", "'detector' must be one of nero, relevance-knn"),
        ("model: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[")):
        load_config(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_ints_accepted_for_floats(tmp_path):
    config = load_config(write(tmp_path, "stream:\n  max_wait_ms: 5\n"))
    assert config.stream.max_wait_ms == 5.0
