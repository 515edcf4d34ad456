"""The wheel a user gets from `pip install .`: built, installed into a fresh venv, run from another folder.

The fresh venv borrows the test venv's third-party packages through a .pth line (so the test costs seconds,
not a PyTorch download); the checkout itself is not on its path (a .pth line is a plain path, the editable
install's own hook is not run from there), so `nero` in it can only be the wheel's copy, with the bundled
default that the wheel packages.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_every_package_is_in_the_wheel_list():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(REPO).parts)
             for root in ("pipeline", "stages") for init in (REPO / root).rglob("__init__.py")}
    assert found <= listed


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh venv holding only the wheel (third-party packages borrowed, see the module doc)."""
    folder = tmp_path_factory.mktemp("wheel")
    source = shutil.copytree(REPO, folder / "source", ignore=shutil.ignore_patterns(   # setuptools builds in-tree
        ".git", ".venv", "build", "*.egg-info", "work", "out", "demo-output", "tests", "__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(folder / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (folder / "dist").glob("nero_monitor-*.whl")
    venv.EnvBuilder(with_pip=False).create(folder / "venv")
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(folder / "venv"),
                                                       "platbase": str(folder / "venv")}))
    (purelib / "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = folder / "venv" / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder / "venv" / "bin"


def run_in(bin_dir: Path, program: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """A program of the fresh venv, with no PYTHONPATH that could lead it back to the checkout."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run([str(bin_dir / program), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_installed_wheel_scores_and_replays_with_its_bundled_default(installed, demo_frames, make_clip,
                                                                         tmp_path):
    import cv2

    image = tmp_path / "frame.jpg"
    cv2.imwrite(str(image), cv2.cvtColor(demo_frames[0], cv2.COLOR_RGB2BGR))
    clip = make_clip(tmp_path / "clip.mp4", demo_frames[:12])

    where = run_in(installed, "python", "-c", "import pipeline; print(pipeline.__file__)", cwd=tmp_path)
    assert str(installed.parent) in where.stdout, where.stdout + where.stderr   # the wheel, not the checkout

    version = run_in(installed, "nero", "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("nero-monitor 0.")
    scored = run_in(installed, "nero", "score", image.name, cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    assert '"pred":' in scored.stdout and "1 images scored" in scored.stderr
    replayed = run_in(installed, "nero", "replay", clip.name, "--publish", "tcp://127.0.0.1:*",
                      "--jsonl", "audit.jsonl", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert sum('"type":"frame"' in line for line in lines) == 12
