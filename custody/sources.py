"""Imported items' ids: a source (a case some bundle came from) is named by its
case id and its case header hash, shown as a short label ``CASEID@3fa9c2``; an
imported item's id is ``CASEID@3fa9c2/ITEM-810`` (docs/custody-model.md,
"Imported items").

Hosts of one incident often share a case id, so the case id alone cannot tell
two sources apart: the header hash (signed, as event 0's ``prev`` in the
source) can.  The label shows the first 6 hex digits of it, lengthened, one
digit at a time, where an earlier source of the same case id already holds the
shorter label.  Labels are given in the order the signed ``import`` events
name their sources, by the custody replay (:mod:`custody.lifecycle`), so the
writer and ``verify`` derive the same ids."""

from __future__ import annotations

from collections.abc import Mapping

#: hex digits of the header hash a label shows at least
LABEL_HEX = 6
SOURCE_SEP = "@"
ITEM_SEP = "/"


def header_hex(header: str) -> str:
    """The hex digits of a header hash (``sha256:<hex>`` or bare hex)."""
    return header.removeprefix("sha256:").lower()


def source_label(case_id: str, header: str, taken: Mapping[str, str]) -> str:
    """The label of the source (``case_id``, ``header``): ``CASEID@<hex>`` with the
    fewest hex digits (at least :data:`LABEL_HEX`) that no other source holds;
    ``taken`` maps the labels given so far to their sources' header hashes."""
    hexd = header_hex(header) or "0"
    for n in range(LABEL_HEX, len(hexd) + 1):
        label = f"{case_id}{SOURCE_SEP}{hexd[:n]}"
        if taken.get(label, header) == header:
            return label
    return f"{case_id}{SOURCE_SEP}{hexd}"  # two sources with one header: the same source


def imported_id(label: str, source_item: str) -> str:
    """The case-wide id of item ``source_item`` of the source ``label``."""
    return f"{label}{ITEM_SEP}{source_item}"


def is_imported_id(item: str) -> bool:
    """Whether ``item`` has the shape of an imported item's id."""
    label, sep, rest = item.rpartition(ITEM_SEP)
    return bool(sep and rest and SOURCE_SEP in label)


def source_of(item: str) -> str | None:
    """The source label of an imported item's id (None for the case's own items)."""
    return item.rpartition(ITEM_SEP)[0] if is_imported_id(item) else None


def source_item_of(item: str) -> str:
    """The item's id in its source case."""
    return item.rpartition(ITEM_SEP)[2] if is_imported_id(item) else item
