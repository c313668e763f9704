"""Renderers of the report model (:mod:`custody.report`): one module per format,
each with ``render(report) -> bytes``.  Imported on demand, so a CSV does not pay
for the PDF library."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

FORMATS = {
    "html": "custody.render.html",
    "pdf": "custody.render.pdf",
    "csv": "custody.render.csv_form",
    "json": "custody.render.json_report",
    "case": "custody.render.case_uco",
    "certification": "custody.render.certification",
}


def render(
    report: dict[str, Any], fmt: str, progress: Callable[[int, int], None] | None = None
) -> bytes:
    """The report in format ``fmt`` (a key of FORMATS); ``progress(done, total)``
    is called by the renderers that take long (the PDF's pages)."""
    module = importlib.import_module(FORMATS[fmt])
    if progress is not None and "progress" in inspect.signature(module.render).parameters:
        data: bytes = module.render(report, progress=progress)
    else:
        data = module.render(report)
    return data
