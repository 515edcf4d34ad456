"""Who may subscribe, with real processes and real keys on 127.0.0.1: a replay under CURVE reaches the
subscriber on its allow-list, refuses a stranger's key and a subscriber without keys (each told so in one
line), keeps a stranger's subscription flood out entirely, and will not bind an address other machines can
reach unless told to."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.security import make_keys, server_keys
from stages.publish import Publisher

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture
def keys(tmp_path) -> Path:
    folder = tmp_path / "keys"
    for name in ("monitor", "display", "stranger"):
        make_keys(folder, name)
    (folder / "allowed").mkdir()
    (folder / "allowed" / "display.key").write_bytes((folder / "display.key").read_bytes())
    return folder


def subscribe(endpoint: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline", "subscribe", endpoint, "--timeout", "3", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def test_curve_admits_the_allow_list_only(flood_check, keys, short_clip, monitor_config_file, tmp_path):
    endpoint, received = flood_check.free_endpoint(), tmp_path / "received.jsonl"
    allowed = subscribe(endpoint, "--curve-server", str(keys / "monitor.key"), "--curve-key",
                        str(keys / "display.key_secret"), "--jsonl", str(received))
    stranger = subscribe(endpoint, "--curve-server", str(keys / "monitor.key"), "--curve-key",
                         str(keys / "stranger.key_secret"))
    plain = subscribe(endpoint)
    replay = subprocess.run([sys.executable, "-m", "pipeline", "replay", str(short_clip), "--config",
                             str(monitor_config_file), "--publish", endpoint, "--wait-subscribers", "1",
                             "--curve-key", str(keys / "monitor.key_secret"), "--curve-clients",
                             str(keys / "allowed")], capture_output=True, text=True, timeout=300, env=ENV)
    assert replay.returncode == 0, replay.stderr
    outcomes = {name: (process.wait(60), process.stderr.read())
                for name, process in (("allowed", allowed), ("stranger", stranger), ("plain", plain))}
    assert outcomes["allowed"][0] == 0, outcomes["allowed"]
    frames = [line for line in received.read_text().splitlines() if '"type":"frame"' in line]
    assert len(frames) == 60                                          # every frame, through the encryption
    assert outcomes["stranger"][0] == 2 and "not on the monitor's allow-list" in outcomes["stranger"][1]
    assert outcomes["plain"][0] == 2 and "it uses CURVE" in outcomes["plain"][1]
    assert all("Traceback" not in err for _, err in outcomes.values())


def test_a_strangers_flood_never_reaches_a_curve_monitor(flood_check, keys):
    publisher = Publisher("tcp://127.0.0.1:*", topics=["alert.cam"],
                          curve=server_keys(keys / "monitor.key_secret", keys / "allowed"))
    flooder = subprocess.Popen([sys.executable, str(REPO / "scripts" / "flood_check.py"), "--flood",
                                publisher.endpoint, "4"], stderr=subprocess.PIPE, text=True, env=ENV)
    before = flood_check.rss_mb(os.getpid())
    while flooder.poll() is None:
        publisher.try_send("alert.cam", "{}")
        time.sleep(0.04)
    assert "sent" in flooder.stderr.read()
    assert publisher.subscriptions == 0 and publisher.ignored_subscriptions == 0   # not one notice got in
    assert flood_check.rss_mb(os.getpid()) - before < 50
    publisher.close()


def test_a_bind_other_machines_can_reach_needs_allow_remote(short_clip, monitor_config_file, capsys):
    arguments = ["replay", str(short_clip), "--config", str(monitor_config_file), "--publish", "tcp://0.0.0.0:*"]
    assert main(arguments) == 2
    assert "can be reached from other machines: pass --allow-remote" in capsys.readouterr().err
    assert main([*arguments, "--allow-remote"]) == 0
    assert "without CURVE: anyone who can reach this port reads every alert" in capsys.readouterr().err
