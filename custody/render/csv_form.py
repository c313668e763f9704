"""The report as a chain-of-custody form in CSV: one row per custody event per item.

An event that concerns two items (a hand-over of both, a note on both) gives one
row for each.  Rows are grouped by item, in the report's item order, and follow
each item's timeline (ledger order).  The columns, in order, are :data:`COLUMNS`:
the form's columns, then the collected path exactly (``path_hex``: its bytes in hex,
since a displayed name cannot tell byte 0xff from the text ``\xff``), then the
ledger state the report was made from (event count and Merkle root), on every row
so that any extract of the sheet still names it, then the signing key: its full
fingerprint, its standing (``owner``, ``recovery``, ``delegate``, ``attested``, or
``SELF-ASSERTED`` / ``UNKNOWN`` in capitals: nobody vouched for the key) and the
name and fingerprint of the key that attested it.

Conventions (docs/reports.md): RFC 4180 (``\\r\\n`` line ends, fields quoted only
when needed, ``"`` doubled inside quotes, line breaks kept inside quoted fields),
UTF-8 with a byte-order mark so spreadsheet programs open it as UTF-8.  Every value
is written exactly as recorded: a cell that begins with ``=``, ``+``, ``-`` or
``@`` is *not* altered (a custody record must not be rewritten), so open the file
as text or import it with every column typed as text.
"""

from __future__ import annotations

import csv
import io
from typing import Any

COLUMNS = (
    "item",
    "description",
    "sha256",
    "date",
    "time_utc",
    "action",
    "released_by",
    "received_by",
    "reason",
    "location",
    "actor",
    "role",
    "signature_verified",
    "event_seq",
    "item_integrity",
    "path",
    "path_hex",
    "ledger_events",
    "ledger_root",
    "signer",
    "signer_standing",
    "signer_attested_by_name",
    "signer_attested_by",
)


def describe(item: dict[str, Any]) -> str:
    """The form's description of an item: its source path, then what it is, its
    size and the host it was collected on, e.g.
    ``/evidence/memo.txt (ASCII text, 46 bytes, host payroll-srv)``."""
    facts = []
    if item.get("description"):
        facts.append(str(item["description"]))
    if isinstance(item.get("size"), int):
        facts.append(f"{item['size']} bytes")
    if item.get("host"):
        facts.append(f"host {item['host']}")
    path = str(item.get("path") or "")
    if not facts:
        return path
    return f"{path} ({', '.join(facts)})" if path else ", ".join(facts)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def standing_cell(card: Any) -> str:
    """A key's standing as the form shows it: a key nobody vouched for in capitals."""
    standing = str(card.get("standing") or "unknown") if isinstance(card, dict) else "unknown"
    return standing.upper() if standing in ("self-asserted", "unknown") else standing


def rows(report: dict[str, Any]) -> list[list[str]]:
    """The form's rows (without the header), as the CSV holds them."""
    out: list[list[str]] = []
    state = report.get("ledger_state") or {}
    for item in report.get("items", []):
        integrity = "intact" if item.get("integrity", {}).get("ok") else "FAILED"
        description = describe(item)
        sha256 = _text(item.get("digests", {}).get("sha256"))
        for ev in item.get("timeline", []):
            key = ev.get("signer_key") if isinstance(ev.get("signer_key"), dict) else {}
            out.append(
                [
                    _text(item.get("id")),
                    description,
                    sha256,
                    _text(ev.get("date")),
                    _text(ev.get("time_utc")),
                    _text(ev.get("action")),
                    _text(ev.get("released_by")),
                    _text(ev.get("received_by")),
                    _text(ev.get("reason")),
                    _text(ev.get("location")),
                    _text(ev.get("actor")),
                    _text(ev.get("role")),
                    "yes" if ev.get("signature_verified") is True else "NO",
                    _text(ev.get("seq")),
                    integrity,
                    _text(item.get("path")),
                    _text(item.get("path_hex")),
                    _text(state.get("size")),
                    _text(state.get("root")),
                    _text(ev.get("signer")),
                    standing_cell(key),
                    _text(key.get("attested_by_name")),
                    _text(key.get("attested_by")),
                ]
            )
    return out


def render(report: dict[str, Any]) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows(report))
    return buf.getvalue().encode("utf-8-sig")
