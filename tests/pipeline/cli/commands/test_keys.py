"""`nero keys`: a key pair a monitor and a subscriber can use, never written over."""

from __future__ import annotations

import zmq.auth

from pipeline.cli import main


def test_keys_makes_a_loadable_pair_and_refuses_to_replace_it(tmp_path, capsys):
    assert main(["keys", "display", "--out", str(tmp_path / "keys")]) == 0
    assert "public key:" in capsys.readouterr().out
    public, secret = zmq.auth.load_certificate(str(tmp_path / "keys" / "display.key_secret"))
    assert zmq.auth.load_certificate(str(tmp_path / "keys" / "display.key")) == (public, None) and secret
    assert main(["keys", "display", "--out", str(tmp_path / "keys")]) == 2
    assert "exists: keys are never replaced" in capsys.readouterr().err
    assert zmq.auth.load_certificate(str(tmp_path / "keys" / "display.key_secret")) == (public, secret)
    assert main(["keys", "bad/name"]) == 2
