"""`nero display`: what it refuses, in one line with exit status 2, before it serves anything."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest


def display(*arguments: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "display", *map(str, arguments)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("arguments", "says"), [
    (["tcp://127.0.0.1:5556", "--host", "0.0.0.0"], "can be reached from other machines and the page has no login"),
    (["tcp://127.0.0.1:5556", "--port", "70000"], "not a port number"),
    (["127.0.0.1:5556"], "expected a ZeroMQ endpoint"),
    (["tcp://no-such-host.invalid:5556"], "no host named"),
    (["tcp://127.0.0.1:5556", "--curve-key", "display.key_secret"], "CURVE needs both"),
    (["tcp://127.0.0.1:5556", "--silence", "0"], "--silence must be > 0"),
])
def test_bad_arguments_get_one_line(arguments, says):
    done = display(*arguments)
    assert done.returncode == 2 and says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_port_in_use_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = display("tcp://127.0.0.1:5556", "--port", taken.getsockname()[1])
    assert done.returncode == 2 and "cannot serve the page on 127.0.0.1" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
