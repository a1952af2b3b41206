"""The config reference, docs/config.md, generated from workflow/schemas/config.schema.yaml.

    python scripts/config_reference.py                          # print the page
    python scripts/config_reference.py --write docs/config.md   # regenerate the page

tests/test_docs.py fails while docs/config.md differs from what this script prints, so a change
to the schema comes with the regenerated page.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
PAGE = "docs/config.md"
REGENERATE = f"python scripts/config_reference.py --write {PAGE}"


def _type(node: dict[str, Any]) -> str:
    if "oneOf" in node or "anyOf" in node:
        return " or ".join(_type(alt) for alt in node.get("oneOf", node.get("anyOf")))
    if node.get("type") == "array" and "items" in node:
        return f"list of {_type(node['items'])}"
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
        elif key not in ("kind", "arch"):
            desc = " ".join(str(sub.get("description", "")).split())
            rows.append(f"| `{name}` | {_type(sub)} | {_default(sub)} | {desc} |")
    return rows


def reference(schema: dict[str, Any]) -> str:
    head = "| key | type | default | meaning |\n|---|---|---|---|"
    variants = ("methods", "models")
    top = {k: v for k, v in schema["properties"].items() if k not in variants}
    out = [head, *_rows({"properties": top}, "")]
    defs = schema["$defs"]
    archs = {k.removeprefix("model_"): v for k, v in defs.items() if k.startswith("model_")}
    kinds = {k: v for k, v in defs.items() if not k.startswith("model_")}
    for title, group in (
        ("Model architectures and their parameters (`models.<name>.<parameter>`)", archs),
        ("Method kinds and their parameters (`methods.<name>.<parameter>`)", kinds),
    ):
        out += ["", f"{title}:", ""]
        for name, node in group.items():
            out += [f"**`{name}`**: {' '.join(node['description'].split())}", ""]
            rows = _rows(node, "")
            out += [head, *rows, ""] if rows else ["(no parameters)", ""]
    return "\n".join(out).rstrip() + "\n"


def page(schema: dict[str, Any]) -> str:
    """The whole Markdown page: title, how it is made and read, then the tables."""
    header = [
        "# Config reference",
        "",
        "Generated from `workflow/schemas/config.schema.yaml` by `scripts/config_reference.py`;",
        "do not edit it by hand. After changing the schema, regenerate it from the repository root",
        f"with `{REGENERATE}` (a test fails until the two agree).",
        "",
        "Keys are written with dots for nesting: `data.csv.path` is `path` under `csv` under",
        "`data` in `config.yaml` or any `--configfile`. A key left out takes its default; an",
        "unknown key is an error. Each model variant `models.<name>` is checked against the",
        "parameters of its `arch`, and each method variant `methods.<name>` against those of its",
        "`kind`, both listed after the first table. A `--configfile` merges into `models:` and",
        "`methods:` variant by variant (a named variant changes only the keys given, a new name",
        "adds one, `null` removes one); `replace: [methods]` in the file runs its own list alone.",
        "",
    ]
    return "\n".join(header) + "\n" + reference(schema)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="PATH", help=f"write the page to PATH (e.g. {PAGE})")
    args = parser.parse_args(argv)
    text = page(yaml.safe_load(SCHEMA.read_text(encoding="utf-8")))
    if args.write is None:
        sys.stdout.write(text)
        return 0
    target = Path(args.write)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
