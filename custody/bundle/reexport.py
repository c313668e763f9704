"""Re-exporting imported items (docs/bundle-format.md §13): for each import event
that brought in an exported item, a *source section* carrying the source's own
signed events about those items (by the disclosure rule of §6.1, applied to the
events the import kept), their inclusion proofs and the source checkpoint as
imported, the source's keys that signed them, and the item's payload (the same
store object).  The lab's own events (the import event and its later custody
events) travel in the bundle's main section like any other."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from custody.bundle.shapes import EXPORT_EVENT, _payload_name
from custody.canonical import content_hash, parse_strict
from custody.errors import IntegrityError
from custody.ledger import COLLECT_EVENT, OPEN_EVENT, Event, Ledger, artifact_index_row
from custody.lifecycle import Replay
from custody.sources import source_item_of

#: where a source section lives in the bag: custody/sources/<import seq>/ and
#: its payload under data/sources/<import seq>/
IMPORT_EVENT = "import"  # as custody.bundle.importer records it
SOURCES_DIR = "custody/sources/"
SOURCES_DATA = "data/sources/"
SOURCE_FILES = ("source.json", "events.jsonl", "checkpoint.txt", "proofs.json", "keys.json")


@dataclass
class SourceSection:
    """One source section: the import event's seq, the source it names, the
    exported items it brought in (source ids), and what the section discloses."""

    import_seq: int
    header_hash: str
    case_id: str
    items: list[str]  # source item ids (ITEM-n), in export order
    events: list[Event] = field(default_factory=list)
    proofs: dict[int, list[str]] = field(default_factory=dict)
    checkpoint: str = ""
    keys: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # source item -> row
    stores: dict[str, str] = field(default_factory=dict)  # source item -> store relpath

    @property
    def tag_dir(self) -> str:
        return f"{SOURCES_DIR}{self.import_seq}/"

    @property
    def data_dir(self) -> str:
        return f"{SOURCES_DATA}{self.import_seq}/"

    def signed_entry(self) -> dict[str, Any]:
        """What the lab's signed export event says of this section."""
        return {
            "import_event": self.import_seq,
            "source_header": self.header_hash,
            "items": self.items,
            "payload": {
                i: self.artifacts[i]["sha256"] for i in self.items if self.artifacts[i]["sha256"]
            },
            "events": [{"seq": e.seq, "hash": e.hash} for e in self.events],
        }


Disclose = Callable[
    [list[tuple[Event, dict[str, Any]]], list[str], str, int], tuple[list[Event], list[str]]
]


def source_sections(
    ledger: Ledger, r: Replay, imported: list[str], disclose: Disclose
) -> tuple[list[SourceSection], list[str]]:
    """The source sections of a bundle of the imported items ``imported`` (case
    ids), one per import event that brought one in, in the order of the items;
    and the warnings of their disclosure.  Everything is taken from the signed
    import event (the bundle it names, the checkpoint it pins, the keys it lists)
    and the source's signed events as kept; a kept event that no longer hashes,
    or a checkpoint other than the one pinned, is refused (run `custody verify`)."""
    sections: dict[int, SourceSection] = {}
    for item in imported:
        st = r.items[item]
        assert st.imported_at is not None
        sec = sections.get(st.imported_at)
        if sec is None:
            data = _import_data(ledger, st.imported_at)
            sec = sections[st.imported_at] = SourceSection(
                st.imported_at,
                str(data.get("source_header")),
                str(data.get("source_case")),
                [],
                checkpoint=str(data.get("checkpoint")),
            )
            _load(ledger, sec, data)
        sec.items.append(source_item_of(item))
        if st.store:
            sec.stores[source_item_of(item)] = st.store
    warnings = []
    for sec in sections.values():
        signed = [(e, _signed_data(e)) for e in sec.events]
        exporter = next(
            (str(b["signer"]) for _, b in reversed(signed) if b["type"] == EXPORT_EVENT), ""
        )
        rules = 2 if signed and signed[0][1]["type"] == OPEN_EVENT else 1
        for i in sec.items:
            if i not in sec.artifacts:
                raise IntegrityError(
                    f"import event {sec.import_seq} kept no signed collect event of {i};"
                    " run `custody verify`"
                )
        listed, warned = disclose(signed, sec.items, exporter, rules)
        sec.events = listed
        warnings += [f"{sec.case_id} (import event {sec.import_seq}): {w}" for w in warned]
        signers = {e.signer for e in listed} | {exporter}
        sec.keys = [k for k in sec.keys if k.get("fingerprint") in signers]
    return list(sections.values()), warnings


def _import_data(ledger: Ledger, seq: int) -> dict[str, Any]:
    ev = next(ledger.events(after=seq - 1), None)
    if ev is None or ev.seq != seq:
        raise IntegrityError(f"import event {seq} is missing; run `custody verify`")
    data = parse_strict(ev.body).get("data")
    if not isinstance(data, dict):
        raise IntegrityError(f"import event {seq} has no signed data; run `custody verify`")
    return data


def _signed_data(e: Event) -> dict[str, Any]:
    body = parse_strict(e.body)
    return {"type": body.get("type"), "signer": body.get("signer"), "data": body.get("data")}


def _load(ledger: Ledger, sec: SourceSection, data: dict[str, Any]) -> None:
    """The events, proofs and keys the import kept for the bundle the signed
    import event names, checked against what it signed (its checkpoint, keys)."""
    bundle = str(data.get("bundle"))
    row = ledger.conn.execute(
        "SELECT checkpoint, keys FROM imported_bundles WHERE bundle = ?", (bundle,)
    ).fetchone()
    if row is None or str(row[0]) != sec.checkpoint:
        raise IntegrityError(
            f"the bundle import event {sec.import_seq} names is not kept as it was imported;"
            " run `custody verify`"
        )
    pinned = set(data.get("keys") or [])
    sec.keys = [k for k in json.loads(str(row[1])) if k.get("fingerprint") in pinned]
    for seq, ev_hash, signer, body, signature, proof in ledger.conn.execute(
        "SELECT seq, hash, signer, body, signature, proof FROM imported_events"
        " WHERE bundle = ? ORDER BY seq",
        (bundle,),
    ):
        if content_hash(str(body).encode("utf-8")) != ev_hash:
            raise IntegrityError(
                f"imported event {seq} of import event {sec.import_seq} does not hash;"
                " run `custody verify`"
            )
        parsed = parse_strict(str(body))
        d = parsed.get("data") if isinstance(parsed.get("data"), dict) else {}
        ev = Event(
            int(seq),
            str(ev_hash),
            str(parsed.get("prev")),
            str(parsed.get("type")),
            str(parsed.get("time")),
            str(signer),
            str(d.get("item")) if d.get("item") else None,
            str(body),
            str(signature),
        )
        sec.events.append(ev)
        sec.proofs[int(seq)] = list(json.loads(str(proof)))
        if ev.type == COLLECT_EVENT and isinstance(d.get("item"), str):
            sec.artifacts[str(d["item"])] = artifact_index_row(int(seq), d)


def section_files(
    sec: SourceSection, path_of: Callable[[str], Any]
) -> tuple[dict[str, Any], int, int]:
    """The files of one source section (tag bytes, payload store paths), and its
    payload bytes and files.  Paths in its source.json are relative to the
    section: ``data/ITEM-n/<name>`` is ``data/sources/<import seq>/ITEM-n/<name>``."""
    files: dict[str, Any] = {}
    items = []
    nbytes = nfiles = 0
    for i in sec.items:
        a = sec.artifacts[i]
        entry: dict[str, Any] = {
            "id": i,
            "path": a["display_path"],
            "path_hex": a["path_hex"],
            "outcome": a["outcome"],
            "sha256": a["sha256"],
            "size": a["size"],
        }
        if a["sha256"]:
            name, mapped = _payload_name(bytes.fromhex(a["path_hex"]), i)
            entry["payload"] = f"data/{i}/{name}"
            entry["name_mapped"] = mapped
            store = sec.stores.get(i)
            if store is None:
                raise IntegrityError(f"imported item {i} has no stored bytes; run `custody verify`")
            files[f"{sec.data_dir}{i}/{name}"] = path_of(store)
            nbytes += int(a["size"] or 0)
            nfiles += 1
        items.append(entry)
    size = int(sec.checkpoint.split("\n")[1]) if sec.checkpoint.count("\n") >= 2 else 0
    meta = {
        "case_id": sec.case_id,
        "header_hash": sec.header_hash,
        "import_event": sec.import_seq,
        "items": items,
    }
    lines = [
        json.dumps(
            {
                "seq": e.seq,
                "hash": e.hash,
                "prev": e.prev,
                "signer": e.signer,
                "signature": e.signature,
                "body": e.body,
            },
            ensure_ascii=False,
            sort_keys=True,
        )
        for e in sec.events
    ]
    proofs = {
        "tree_size": size,
        "proofs": [{"seq": e.seq, "proof": sec.proofs.get(e.seq, [])} for e in sec.events],
    }
    d = sec.tag_dir
    files[d + "source.json"] = (json.dumps(meta, indent=2, ensure_ascii=False) + "\n").encode()
    files[d + "events.jsonl"] = "".join(x + "\n" for x in lines).encode()
    files[d + "checkpoint.txt"] = sec.checkpoint.encode()
    files[d + "proofs.json"] = (json.dumps(proofs, indent=2) + "\n").encode()
    keys = sorted(sec.keys, key=lambda k: str(k.get("fingerprint")))
    files[d + "keys.json"] = (json.dumps(keys, indent=2, ensure_ascii=False) + "\n").encode()
    return files, nbytes, nfiles


@dataclass
class ImportedSection:
    """A source section of a re-export, as a third case imports it: the original
    source's events, proofs, checkpoint and keys, and its items' payload stored."""

    bundle: str  # the id the third case keeps it under (the re-export's id and section)
    case_id: str
    header_hash: str
    checkpoint: str
    keys: list[dict[str, Any]]
    lines: list[dict[str, Any]]
    proofs: dict[int, list[str]]
    items: list[dict[str, Any]]
    via_event: int  # the lab's import event, in the re-export's main section

    def draft_data(self, via: dict[str, Any]) -> dict[str, Any]:
        """The data of the import event that brings this section's items in: the
        original source (so the items keep the ids the source's header hash gives
        them, whichever case they came through) and, under ``via``, the re-export
        and the lab's import event they came through."""
        return {
            "bundle": self.bundle,
            "source_case": self.case_id,
            "source_header": self.header_hash,
            "checkpoint": self.checkpoint,
            "events": len(self.lines),
            "keys": sorted(str(k["fingerprint"]) for k in self.keys),
            "items": self.items,
            "via": {**via, "import_event": self.via_event},
        }


def read_sections(
    src: Any, report: Any, bundle_id: str, ingest: Callable[[Any], Any]
) -> list[ImportedSection]:
    """The verified source sections of a bundle being imported (``report`` is its
    verification), read again and checked to be those verified; their payload goes
    through ``ingest`` (a stream -> the stored object)."""
    out = []
    for n, seen in sorted(report.sections.items(), key=lambda kv: (len(kv[0]), kv[0])):
        d = f"{SOURCES_DIR}{n}/"
        meta = json.loads(src.read(d + "source.json"))
        keys = json.loads(src.read(d + "keys.json"))
        proofs = {
            int(p["seq"]): list(p["proof"])
            for p in json.loads(src.read(d + "proofs.json"))["proofs"]
        }
        checkpoint = src.read(d + "checkpoint.txt").decode("utf-8")
        lines = [parse_strict(x) for x in src.read(d + "events.jsonl").decode().splitlines()]
        read = sorted((ln["seq"], content_hash(ln["body"].encode("utf-8"))) for ln in lines)
        if checkpoint != seen["checkpoint"] or read != seen["bodies"]:
            raise IntegrityError(f"{d} changed while it was imported")
        items = []
        for it in meta["items"]:
            signed = artifact_index_row(0, seen["collected"][str(it["id"])])
            entry = {
                "source_item": it["id"],
                "path": signed["display_path"],
                "sha256": signed["sha256"],
            }
            if it.get("payload"):
                with src.open(SOURCES_DATA + n + "/" + str(it["payload"])[len("data/") :]) as f:
                    stored = ingest(f)
                if stored.result.digests["sha256"] != signed["sha256"]:
                    raise IntegrityError(f"{it['payload']} of {d} changed while it was imported")
                entry["store"] = stored.relpath
            items.append(entry)
        out.append(
            ImportedSection(
                content_hash(f"{bundle_id} {d}".encode()),
                str(seen["case_id"]),
                str(seen["header"]),
                checkpoint,
                keys,
                lines,
                proofs,
                items,
                int(meta["import_event"]),
            )
        )
    return out


def record_section(ledger: Ledger, sec: ImportedSection, seq: int) -> None:
    """The imported-bundle rows of a section, as for any imported bundle."""
    ledger.conn.execute(
        "INSERT INTO imported_bundles (bundle, source_case, checkpoint, keys, items,"
        " import_seq) VALUES (?, ?, ?, ?, ?, ?)",
        (
            sec.bundle,
            sec.case_id,
            sec.checkpoint,
            json.dumps(sec.keys),
            json.dumps(sec.items),
            seq,
        ),
    )
    ledger.conn.executemany(
        "INSERT INTO imported_events (bundle, seq, hash, signer, body, signature, proof)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                sec.bundle,
                ln["seq"],
                ln["hash"],
                ln["signer"],
                ln["body"],
                ln["signature"],
                json.dumps(sec.proofs.get(ln["seq"], [])),
            )
            for ln in sec.lines
        ],
    )
