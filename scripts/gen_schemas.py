#!/usr/bin/env python3
"""Write the JSON Schemas of the Event and Action contracts from the models.

    python scripts/gen_schemas.py           # (re)write docs/schema/*.schema.json
    python scripts/gen_schemas.py --check   # exit 1 if the committed files are stale

The pydantic models in ``qunyun.core.events`` and ``qunyun.core.actions`` are
the source of truth; these files are generated from them so that people and
tools outside Python can validate events and actions. ``tests/test_schemas.py``
fails when the committed files drift from the models.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "docs" / "schema"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://qunyun.dev/schema/"


def schemas() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema, generated from the pydantic models."""
    from qunyun.core.actions import ACTION_ADAPTER
    from qunyun.core.events import EVENT_ADAPTER

    def wrap(name: str, title: str, description: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "$schema": DIALECT,
            "$id": BASE_ID + name,
            "title": title,
            "description": description,
            **body,
        }

    return {
        "event.schema.json": wrap(
            "event.schema.json",
            "qunyun Event (v1)",
            'One line of an events JSONL file: something that happened in a group. '
            'Unknown fields are allowed and kept. See docs/events.md.',
            EVENT_ADAPTER.json_schema(),
        ),
        "action.schema.json": wrap(
            "action.schema.json",
            "qunyun Action (v1)",
            'One line of an actions JSONL file: something a playbook decided to do in a '
            'group. Unknown fields are refused. See docs/actions.md.',
            ACTION_ADAPTER.json_schema(),
        ),
    }


def render(schema: dict[str, Any]) -> str:
    """The exact text written to disk (stable key order, UTF-8, trailing newline)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; write nothing")
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR, help="directory to write to")
    args = parser.parse_args(argv)
    stale = []
    for name, schema in schemas().items():
        path = args.out / name
        text = render(schema)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print("stale schema files (run python scripts/gen_schemas.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
