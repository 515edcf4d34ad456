"""The `nero` command itself: help that answers at once, a version, log lines people and services can read.

Start-up is checked by what it imports, not by how long it takes (which depends on how busy the machine
is): parsing the arguments of any command must import none of torch, faiss, scikit-learn, matplotlib,
OpenCV or PyAV (on the 2-core machine `nero --help` then takes ~0.1 s; with torch it took 9-13 s).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipeline.cli import build_parser, main

HEAVY = ("torch", "faiss", "sklearn", "matplotlib", "cv2", "av", "zennit", "timm", "aiohttp", "prometheus_client",
         "ray", "openvino")
COMMANDS = ("archive", "bench", "display", "eval", "explain", "fit", "hub", "keys", "live", "replay", "score",
            "subscribe")


def imported_by(code: str, names: tuple[str, ...] = HEAVY) -> list[str]:
    """Those of `names` that `code` leaves in sys.modules, run in a fresh interpreter."""
    probe = f"import sys\n{code}\nprint('imported:' + ','.join(m for m in {names!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    return [name for name in last.removeprefix("imported:").split(",") if name]


@pytest.mark.parametrize("argv", [[], *([name] for name in COMMANDS)])
def test_help_imports_nothing_heavy(argv):
    code = ("from pipeline.cli import main\ntry:\n    main(" + repr([*argv, "--help"]) + ")\n"
            "except SystemExit:\n    pass")
    assert imported_by(code) == []


def test_scoring_needs_none_of_the_fitting_or_reporting_libraries():
    """A GPU host's image may hold torch and little else: the monitor's path (a bundle loaded, frames scored,
    the replay and live commands and the runner imported) must not need scikit-learn, scipy, matplotlib or
    zennit, which fitting, evaluation, reports and heatmaps import when they run."""
    code = ("import numpy as np\nfrom pipeline.config import DEFAULT_CONFIG, load_config\n"
            "from pipeline.model.bundle import load_bundle\nfrom pipeline.stream.runner import Runner\n"
            "from pipeline.cli.commands import live, replay\nfrom stages.forward import ForwardStage\n"
            "from stages.score import ScoreStage\n"
            "config = load_config(DEFAULT_CONFIG)\nconfig.device, config.model.backend = 'cpu', 'torch'\n"
            "bundle = load_bundle(config)\n"
            "ScoreStage(bundle)(ForwardStage(bundle)([np.zeros((64, 64, 3), np.uint8)]))")
    assert imported_by(code, ("sklearn", "scipy", "matplotlib", "zennit")) == []


def test_every_command_module_is_registered():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices   # noqa: SLF001 - argparse keeps them here
    assert sorted(commands) == sorted(COMMANDS)


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("nero-monitor ")


def test_user_error_is_one_line_on_stderr_with_status_2(tmp_path, capsys):
    assert main(["score", str(tmp_path / "missing.jpg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"nero score: error: no such file or directory: {tmp_path / 'missing.jpg'}"]


def test_json_log_format_gives_one_object_per_line(tmp_path, capsys):
    assert main(["--log-format", "json", "score", str(tmp_path / "missing.jpg")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    record = json.loads(line)
    assert record["level"] == "error" and "no such file or directory" in record["message"]


def test_metavars_name_what_they_expect():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices   # noqa: SLF001
    for name, sub in commands.items():
        for action in sub._actions:                             # noqa: SLF001
            if action.option_strings and action.dest in ("config", "jsonl", "metrics_json", "annotate"):
                assert action.metavar == "FILE", (name, action.dest)
            if action.option_strings and action.dest in ("out", "report", "cache"):
                assert action.metavar == "DIR", (name, action.dest)
