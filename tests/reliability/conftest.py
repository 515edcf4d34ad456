"""What the fault-injection tests share: scripts/flood_check.py as a module (its flooder and its measured
run are the ones docs/RELIABILITY.md reports)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def flood_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flood_check", REPO / "scripts" / "flood_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["flood_check"] = module
    spec.loader.exec_module(module)
    return module
