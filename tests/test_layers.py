"""Imports only point down: each part of the code may import the parts listed for it here and nothing above.

This is the table of docs/ARCHITECTURE.md, checked on every import statement in the code (those inside
functions too: a lazy import is still a dependency). A new module joins the part of its folder.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# part -> the parts it may import (besides itself), bottom of the house first
ALLOWED: dict[str, set[str]] = {
    "pipeline.errors": set(),
    "pipeline.messages": set(),
    "pipeline.config": {"pipeline.errors"},
    "pipeline.security": {"pipeline.errors"},
    "pipeline.client": {"pipeline.errors", "pipeline.security"},
    "pipeline.hub": {"pipeline.errors", "pipeline.messages", "pipeline.security"},
    "pipeline.bundled": set(),
    "pipeline.media": {"pipeline.errors"},
    "pipeline.ood": {"pipeline.errors"},
    "pipeline.model": {"pipeline.errors", "pipeline.config", "pipeline.media", "pipeline.ood"},
    "pipeline.explain": {"pipeline.errors", "pipeline.messages", "pipeline.config", "pipeline.media",
                         "pipeline.ood", "pipeline.model"},
    "pipeline.evaluation": {"pipeline.errors", "pipeline.config", "pipeline.media", "pipeline.ood",
                            "pipeline.model"},
    "stages": {"pipeline.errors", "pipeline.security", "pipeline.messages", "pipeline.media", "pipeline.ood",
               "pipeline.model", "pipeline.explain"},
    "pipeline.stream": {"pipeline.errors", "pipeline.security", "pipeline.messages", "pipeline.config",
                        "pipeline.media", "pipeline.ood", "pipeline.model", "pipeline.explain", "stages"},
    "pipeline.archive": {"pipeline.errors", "pipeline.config", "pipeline.media", "pipeline.ood", "pipeline.model",
                         "pipeline.stream"},
    "pipeline.display": {"pipeline.errors", "pipeline.security", "pipeline.messages", "pipeline.client"},
    "pipeline.cli": {"pipeline.errors", "pipeline.security", "pipeline.messages", "pipeline.config", "pipeline.client",
                     "pipeline.media", "pipeline.ood", "pipeline.model", "pipeline.explain",
                     "pipeline.evaluation", "pipeline.stream", "pipeline.display", "pipeline.archive", "pipeline.hub"},
    "pipeline": {"pipeline.client", "pipeline.ood", "pipeline.cli"},   # the package face and __main__
}


def part_of(module: str) -> str:
    """The longest ALLOWED key that is `module` or a package above it."""
    return max((key for key in ALLOWED if module == key or module.startswith(key + ".")), key=len)


def modules() -> dict[str, Path]:
    found = {}
    for root in ("pipeline", "stages"):
        for path in (REPO / root).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(path: Path, ours: dict[str, Path]) -> set[str]:
    """Our modules that `path` imports (`from pipeline import messages` imports pipeline.messages)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                names.add(submodule if submodule in ours else node.module)
    return {name for name in names if name in ours}


def test_no_module_imports_a_part_above_its_own():
    ours = modules()
    wrong = []
    for module, path in sorted(ours.items()):
        part = part_of(module)
        for name in imported(path, ours):
            target = part_of(name)
            if target != part and target not in ALLOWED[part]:
                wrong.append(f"{module} imports {name} ({part} -> {target})")
    assert wrong == []


def test_every_module_belongs_to_a_part():
    assert all(part_of(module) for module in modules())
