"""Rewrite the finding-kind and step lists of the JSON Schemas, and the kind table of
docs/exit-codes.md, from custody.findings (run after adding a kind):

    python tests/regen_kinds.py

tests/test_rules_once.py fails until they agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from custody.findings import Kind, Step

ROOT = Path(__file__).resolve().parents[1]


def _walk(o: Any) -> None:
    if isinstance(o, dict):
        props = o.get("properties")
        if isinstance(props, dict) and {"kind", "subject", "detail"} <= props.keys():
            props["kind"]["enum"] = [k.kind for k in Kind]
        if isinstance(props, dict) and "step" in props and "enum" in props["step"]:
            props["step"]["enum"] = [s.value for s in Step]
        for v in o.values():
            _walk(v)
    elif isinstance(o, list):
        for v in o:
            _walk(v)


def main() -> None:
    for name in ("verify-report.schema.json", "report.schema.json"):
        path = ROOT / "schemas" / name
        schema = json.loads(path.read_text(encoding="utf-8"))
        _walk(schema)
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "cogapp", "-r", "docs/exit-codes.md"], cwd=ROOT, check=True
    )


if __name__ == "__main__":
    main()
