"""The contract display builders code against: docs/schema/ is what pipeline/messages.py defines, and every
message of a real run fits it."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import jsonschema
import pytest

from pipeline import messages
from pipeline.client import AlertSubscriber

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "docs" / "schema"


@pytest.fixture(scope="module")
def make_schema():
    spec = importlib.util.spec_from_file_location("make_schema", REPO / "scripts" / "make_schema.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def validators() -> dict[str, jsonschema.Draft202012Validator]:
    return {kind: jsonschema.Draft202012Validator(json.loads((SCHEMAS / f"{kind}.schema.json").read_text()))
            for kind in messages.MESSAGE_KINDS}


def test_the_schema_files_are_what_messages_py_defines(make_schema):
    stale = [kind for kind, schema in make_schema.schemas().items()
             if (SCHEMAS / f"{kind}.schema.json").read_text() != make_schema.render(schema)]
    assert stale == [], f"docs/schema is out of date for {stale}: run python scripts/make_schema.py"


def test_the_contract_refuses_a_field_it_does_not_name(validators):
    message = messages.frame_message(stream="cam", seq=0, frame=0, pts=0.0, t_capture=0.0, t_publish=0.0,
                                     pred="polyp", prob=0.9, detector="relevance-knn", score=0.5, threshold=0.8,
                                     ood=False, reason=None, alert=False, explain={"neurons": [[1, 0.1]]})
    assert validators["frame"].is_valid(message)
    assert not validators["frame"].is_valid({**message, "colour": "red"})
    assert not validators["frame"].is_valid({k: v for k, v in message.items() if k != "score"})


def received_during(command: list[str], endpoint: str) -> list[dict]:
    """Every message a subscriber connected before the monitor starts receives while `command` runs."""
    received, done = [], threading.Event()

    def listen() -> None:
        with AlertSubscriber(endpoint) as subscriber:   # connected before the monitor binds: misses nothing
            while not done.is_set():
                message = subscriber.receive(timeout_s=0.2)
                if message is not None:
                    message.pop("png", None)             # the picture part of a multipart message
                    received.append(message)

    listener = threading.Thread(target=listen)
    listener.start()
    try:
        run = subprocess.run([sys.executable, "-m", "pipeline", *command, "--publish", endpoint], capture_output=True,
                             text=True, timeout=180, env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        done.set()
        listener.join()
    assert run.returncode == 0, run.stderr
    return received


def free_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def misfits(validators, found: list[dict]) -> list[tuple[str, str]]:
    return [(m["type"], error.message) for m in found for error in validators[m["type"]].iter_errors(m)]


def test_every_message_of_a_real_replay_fits_the_schema(validators, alert_clip, monitor_config_file, tmp_path):
    """Frames, every event (start, alert_on, alert_off, stop), heartbeats, the nearest window's thumbnail and
    previews, all of them (the replay waits for the subscriber), and every line of the audit."""
    audit = tmp_path / "audit.jsonl"
    received = received_during(["replay", str(alert_clip), "--config", str(monitor_config_file), "--jsonl",
                                str(audit), "--preview-fps", "4", "--wait-subscribers", "1", "--no-progress"],
                               free_endpoint())
    audited = [json.loads(line) for line in audit.read_text().splitlines()]
    assert misfits(validators, received + audited) == []
    # heatmaps: live only; hub heartbeats: only through `nero hub` (tests/pipeline/test_hub.py)
    assert {m["type"] for m in received} == set(messages.MESSAGE_KINDS) - {"explain", "hub"}
    assert {m["event"] for m in received if m["type"] == "event"} == {"start", "alert_on", "alert_off", "stop"}
    assert len([m for m in received if m["type"] == "frame"]) == 200


def test_every_message_of_a_real_live_run_fits_the_schema(validators, alert_clip, monitor_config_file, tmp_path):
    """The same with --explain: the heatmap's header too."""
    audit = tmp_path / "audit.jsonl"
    received = received_during(["live", f"endo={alert_clip}", "--config", str(monitor_config_file), "--jsonl",
                                str(audit), "--explain", "--preview-fps", "4"], free_endpoint())
    audited = [json.loads(line) for line in audit.read_text().splitlines()]
    assert misfits(validators, received + audited) == []
    assert {m["type"] for m in received} == set(messages.MESSAGE_KINDS) - {"hub"}


def test_the_documented_examples_fit_the_schema(validators):
    """docs/schema/examples.jsonl: one message of each kind (each event once), captured from a real live run."""
    examples = [json.loads(line) for line in (SCHEMAS / "examples.jsonl").read_text().splitlines()]
    assert {m["type"] for m in examples} == set(messages.MESSAGE_KINDS)
    assert all(validators[m["type"]].is_valid(m) for m in examples)
