"""Renderers of the report model (:mod:`custody.report`): one module per format,
each with ``render(report) -> bytes``; those that can write as they go (HTML, CSV,
JSON) also have ``write(report, out)``, which writes to a binary file and never
holds the whole document (or, with a streamed model, every item) at once.
Imported on demand, so a CSV does not pay for the PDF library."""

from __future__ import annotations

import importlib
import inspect
import io
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

FORMATS = {
    "html": "custody.render.html",
    "pdf": "custody.render.pdf",
    "csv": "custody.render.csv_form",
    "json": "custody.render.json_report",
    "case": "custody.render.case_uco",
    "certification": "custody.render.certification",
}


def write(
    report: dict[str, Any],
    fmt: str,
    out: IO[bytes],
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write the report in format ``fmt`` (a key of FORMATS) to ``out``;
    ``progress(done, total)`` is called by the renderers that take long (the PDF's
    pages; a streamed model's items report their own progress)."""
    module = importlib.import_module(FORMATS[fmt])
    if hasattr(module, "write"):
        module.write(report, out)
    elif progress is not None and "progress" in inspect.signature(module.render).parameters:
        out.write(module.render(report, progress=progress))
    else:
        out.write(module.render(report))


def render(
    report: dict[str, Any], fmt: str, progress: Callable[[int, int], None] | None = None
) -> bytes:
    """The report in format ``fmt`` as bytes (:func:`write` to memory)."""
    buf = io.BytesIO()
    write(report, fmt, buf, progress)
    return buf.getvalue()


def detailed_items(items: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The items of a model that carry their detail: a streamed model's
    (custody.report.ReportItems) made without making the others."""
    detailed = getattr(items, "detailed", None)
    if callable(detailed):
        found: Iterator[dict[str, Any]] = detailed()
        return found
    return (i for i in items if i.get("detail", True))
