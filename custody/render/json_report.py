"""The report model as JSON (schemas/report.schema.json), UTF-8, 2-space indent."""

from __future__ import annotations

import json
from typing import Any


def render(report: dict[str, Any]) -> bytes:
    return (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
