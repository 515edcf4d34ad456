"""Write docs/schema/: a JSON Schema (draft 2020-12) for every message kind the monitor publishes.

They are generated from the TypedDicts of pipeline/messages.py, the one definition the monitor builds its
messages with, so the contract display builders code against cannot drift from what is sent:
tests/pipeline/test_messages.py fails when these files are not what this script writes, and validates the
traffic of a real replay against them. Every object is closed (`additionalProperties: false`): a field the
monitor sends but the contract does not name fails that test.

    python scripts/make_schema.py            # rewrites docs/schema/*.schema.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import msgspec

from pipeline import messages

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "schema"
log = logging.getLogger("make_schema")


def close(node: Any) -> Any:
    """Every object schema with properties refuses properties it does not name."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node["additionalProperties"] = False
        for value in node.values():
            close(value)
    elif isinstance(node, list):
        for value in node:
            close(value)
    return node


def schemas() -> dict[str, dict[str, Any]]:
    """kind -> its JSON Schema, self-contained ($defs), as the files hold them."""
    kinds = list(messages.MESSAGE_KINDS.items())
    refs, definitions = msgspec.json.schema_components([kind for _, kind in kinds], ref_template="#/$defs/{name}")
    close(definitions)
    out = {}
    for (name, _), ref in zip(kinds, refs, strict=True):
        out[name] = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                     "$id": f"https://nero-monitor.invalid/schema/v{messages.SCHEMA_VERSION}/{name}.schema.json",
                     **ref, "$defs": definitions}
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas().items():
        path = OUT / f"{name}.schema.json"
        path.write_text(render(schema))
        log.info("wrote %s", path.relative_to(REPO))


if __name__ == "__main__":
    main()
