"""Config loading names the wrong key and applies defaults."""

import pytest

from pipeline.config import DEFAULT_CONFIG, Config, load_config
from pipeline.errors import UserError


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_default_config_loads_and_equals_the_dataclass_defaults():
    config = load_config()
    assert config.base_dir == DEFAULT_CONFIG.parent and config.model.arch == "efficientnet_lite0"
    assert (config.resolve(config.artifact) / "manifest.json").is_file()
    assert config.resolve(config.model.weights).is_file()
    assert config == Config()            # in-process code and the commands run the same detector
    assert config.detector == "relevance-patch"


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    config = load_config(write(tmp_path / "sub", "artifact: ../art\nmodel:\n  weights: w.safetensors\n"))
    monkeypatch.chdir("/")
    assert config.resolve(config.artifact) == tmp_path / "art"
    assert config.resolve(config.model.weights) == tmp_path / "sub" / "w.safetensors"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alert:\n  on_cuont: 3\n", "unknown config key 'alert.on_cuont'"),
        ("stream:\n  max_batch: many\n", "'stream.max_batch' must be int"),
        ("model: resnet18\n", "section 'model' must be a mapping"),
        ("preprocess:\n  mean: 0.5\n", "'preprocess.mean' must be a list"),
        ("device: tpu\n", "'device' must be auto, cpu or cuda"),
        ("detector: vim\n", "'detector' must be one of nero, relevance-knn, .*, relevance-patch"),
        ("model: [unclosed\n", "not valid YAML"),
        ("stream:\n  max_batch: 0\n", "'stream.max_batch' must be >= 1"),
        ("stream:\n  live_queue_size: 0\n", "'stream.live_queue_size' must be >= 1"),
        ("publish:\n  high_water_mark: -5\n", "'publish.high_water_mark' must be >= 1"),
        ("alert:\n  on_count: 6\n", "'alert.on_count' \\(6\\) must not exceed 'alert.window'"),
        ("alert:\n  smoothing: ewma\n", "'alert.smoothing' must be one of none, mean, median"),
        ("model:\n  precision: fp16\n", "'model.precision' must be one of float32, bfloat16, int8"),
        ("model:\n  precision: int8\n  backend: torch\n", "'model.precision' is int8, which runs with OpenVINO only"),
        ("model:\n  cuda_graphs: maybe\n", "'model.cuda_graphs' must be bool"),
        ("explain:\n  max_pending: 0\n", "'explain.max_pending' must be >= 1"),
        ("alert:\n  false_alarms_per_hour: 0\n", "'alert.false_alarms_per_hour' must be > 0"),
        ("publish:\n  endpoint: tcp://127.0.0.1:99999\n", "'publish.endpoint'.*not a number from 1 to 65535"),
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


def test_live_detector_names_match_the_detectors_the_monitor_can_load():
    from pipeline.config import LIVE_DETECTORS
    from pipeline.ood.detectors import LIVE

    assert ("nero", *LIVE) == LIVE_DETECTORS
