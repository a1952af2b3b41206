"""Print the config reference (Markdown tables) from workflow/schemas/config.schema.yaml.

README.md's "Config reference" section is this script's output; a test keeps the two in step:
    python scripts/config_reference.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        return " \\| ".join("null" if v is None else f"`{v}`" for v in node["enum"])
    kind = node.get("type", "object")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(kinds)
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    if low is not None or high is not None:
        lo = "" if low is None else ("> " if "exclusiveMinimum" in node else "≥ ") + str(low)
        hi = "" if high is None else ("< " if "exclusiveMaximum" in node else "≤ ") + str(high)
        text += f" ({', '.join(x for x in (lo, hi) if x)})"
    return text


def _default(node: dict[str, Any]) -> str:
    if "default" not in node or (node.get("type") == "object" and "properties" in node):
        return ""
    return f"`{json.dumps(node['default'])}`"


def _rows(node: dict[str, Any], prefix: str) -> list[str]:
    rows = []
    for key, sub in node.get("properties", {}).items():
        name = f"{prefix}{key}"
        if sub.get("type") == "object" and "properties" in sub:
            rows += _rows(sub, f"{name}.")
        elif key != "kind":
            desc = " ".join(str(sub.get("description", "")).split())
            rows.append(f"| `{name}` | {_type(sub)} | {_default(sub)} | {desc} |")
    return rows


def reference(schema: dict[str, Any]) -> str:
    head = "| key | type | default | meaning |\n|---|---|---|---|"
    out = [
        head,
        *_rows(
            {"properties": {k: v for k, v in schema["properties"].items() if k != "methods"}}, ""
        ),
    ]
    out += ["", "Method kinds and their parameters (`methods.<name>.<parameter>`):", ""]
    for kind, node in schema["$defs"].items():
        out += [f"**`{kind}`**: {' '.join(node['description'].split())}", ""]
        rows = _rows(node, "")
        out += [head, *rows, ""] if rows else ["(no parameters)", ""]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference(yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))))
