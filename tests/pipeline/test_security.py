"""Keys and the loopback rule (pipeline/security.py): real key files, real checks."""

from __future__ import annotations

import stat

import pytest

from pipeline.errors import UserError
from pipeline.security import check_exposure, client_keys, is_loopback, make_keys, server_keys


@pytest.mark.parametrize("endpoint, loopback", [
    ("tcp://127.0.0.1:5556", True), ("tcp://127.3.4.5:*", True), ("tcp://localhost:5556", True),
    ("tcp://[::1]:5556", True), ("ipc:///tmp/nero.sock", True), ("inproc://x", True),
    ("tcp://0.0.0.0:5556", False), ("tcp://*:5556", False), ("tcp://10.0.4.2:5556", False),
    ("tcp://eth0:5556", False), ("tcp://[::]:5556", False),
])
def test_only_loopback_addresses_count_as_loopback(endpoint, loopback):
    assert is_loopback(endpoint) is loopback


def test_a_remote_bind_needs_allow_remote_and_warns_without_curve():
    with pytest.raises(UserError, match="--allow-remote"):
        check_exposure("tcp://0.0.0.0:5556", allow_remote=False, curve=True)
    assert "without CURVE" in check_exposure("tcp://0.0.0.0:5556", allow_remote=True, curve=False)
    assert check_exposure("tcp://0.0.0.0:5556", allow_remote=True, curve=True) is None
    assert check_exposure("tcp://127.0.0.1:5556", allow_remote=False, curve=False) is None


def test_keys_are_made_private_and_never_replaced(tmp_path):
    public, secret = make_keys(tmp_path / "keys", "monitor")
    assert public.name == "monitor.key" and secret.name == "monitor.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    with pytest.raises(UserError, match="never replaced"):
        make_keys(tmp_path / "keys", "monitor")


def test_key_files_are_checked_with_the_file_named(tmp_path):
    _, monitor_secret = make_keys(tmp_path, "monitor")
    display_public, display_secret = make_keys(tmp_path, "display")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    with pytest.raises(UserError, match="holds no public key"):
        server_keys(monitor_secret, allowed)
    with pytest.raises(UserError, match="does not exist"):
        server_keys(monitor_secret, tmp_path / "nowhere")
    (allowed / "display.key").write_bytes(display_public.read_bytes())
    assert server_keys(monitor_secret, allowed).clients == allowed
    with pytest.raises(UserError, match="holds only a public key"):
        client_keys(display_public, tmp_path / "monitor.key")
    (tmp_path / "junk.key_secret").write_text("not a key\n")
    with pytest.raises(UserError, match="junk.key_secret is not a ZeroMQ key file"):
        client_keys(tmp_path / "junk.key_secret", tmp_path / "monitor.key")
    with pytest.raises(UserError, match="not found"):
        client_keys(display_secret, tmp_path / "absent.key")
