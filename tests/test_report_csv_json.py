"""CSV and JSON reports (issue 5): golden files, the CSV conventions, the JSON schema.

Golden files (tests/golden/report.csv and report.json) are compared byte for byte
with the reports of a case built in-process with everything fixed: Ed25519 keys
from fixed seeds (Ed25519 signatures are deterministic), event times from a fake
clock, the case uuid, the tool version, the case directory (a relative path), and
the report time (SOURCE_DATE_EPOCH).  The collect events are appended directly
with fixed data (a real collection records inode, device and ctime, which a test
cannot fix); their bytes go through the real store, so verification re-hashes
them.  ITEM-2's stored copy is then tampered with, so the golden files hold a
FAILED item.

Regenerate after an intended change, and read the diff:

    CUSTODY_UPDATE_GOLDEN=1 python -m pytest -q tests/test_report_csv_json.py
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jsonschema import Draft202012Validator
from report_fixtures import ReportCase, report_case, report_template  # noqa: F401

import custody.findings
import custody.ledger
import custody.report
from custody.canonical import rfc3339_ns
from custody.checkpoint import make_checkpoint
from custody.collect import RUN_END_EVENT, RUN_START_EVENT
from custody.display import formula_guarded, shown
from custody.keys import Signer
from custody.ledger import COLLECT_EVENT, EventDraft, Ledger
from custody.lifecycle import transfer_id
from custody.render import csv_form, render
from custody.render.csv_form import COLUMNS, DISPLAY_COLUMNS
from custody.report import case_report
from custody.store import Store
from custody.writers import lifecycle_event, receive, transfer

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
SCHEMA = ROOT / "schemas" / "report.schema.json"
UPDATE = os.environ.get("CUSTODY_UPDATE_GOLDEN") == "1"

# -- the fixed case ------------------------------------------------------------------

VERSION = "0.0.0-golden"
CASE_UUID = uuid.UUID("00000000-0000-4000-8000-000000002026")
RUN_UUID = "11111111-2222-4333-8444-555555555555"
T0 = 1_772_442_000_000_000_000  # 2026-03-02T09:00:00Z, in ns
STEP_NS = 90_000_000_017  # 90 s (and 17 ns, so the fractions are not all zero) per event
REPORT_EPOCH = "1772445600"  # 2026-03-02T10:00:00Z
DANA_SEED = bytes(range(32))
LEE_SEED = bytes(range(32, 64))
ITEM1_PATH = '/evidence/payroll-srv/memo, "final".txt'
ITEM1_BYTES = b"Quarterly payroll memo\nline two, with a comma\n"
ITEM2_PATH = "/evidence/payroll-srv/var/log/auth.log"
ITEM2_BYTES = b"Mar  1 23:58:02 payroll sshd[812]: Accepted password for admin\n"
REASON = "for counsel, review"
LOCATION = "Room 4, HQ"
NOTE = 'photographed both labels\nsheet 2:\tlabel reads "44"'
NOTE_LOCATION = "@locker B4, shelf 2"  # begins with @: must stay exactly so in the CSV


def _signer(seed: bytes, name: str, role: str) -> Signer:
    return Signer(Ed25519PrivateKey.from_private_bytes(seed), name, role)


def _stat(size: int, inode: int, mtime_ns: int) -> dict[str, Any]:
    """A stat record as custody.collect.stat_record writes it, with fixed values."""
    rec: dict[str, Any] = {
        "kind": "file",
        "mode": 0o100644,
        "mode_str": "-rw-r--r--",
        "size": size,
        "blocks": 8,
        "inode": str(inode),
        "device": "2049",
        "nlink": 1,
        "uid": 1000,
        "gid": 1000,
        "owner": "svc",
        "group": "svc",
    }
    for name, ns in (("atime", mtime_ns), ("mtime", mtime_ns), ("ctime", mtime_ns)):
        rec[f"{name}_ns"] = str(ns)
        rec[name] = rfc3339_ns(ns)
    return rec


def _store(ledger: Ledger, src: Path, data: bytes) -> tuple[str, dict[str, str]]:
    src.write_bytes(data)
    fd = os.open(src, os.O_RDONLY)
    try:
        stored = Store(ledger.store_dir).ingest(fd, ["md5", "sha1", "sha256"])
    finally:
        os.close(fd)
    return stored.relpath, dict(stored.result.digests)


def _collect_data(
    path: str, data: bytes, relpath: str, digests: dict[str, str], inode: int
) -> dict[str, Any]:
    raw = path.encode("utf-8")
    return {
        "run": RUN_UUID,
        "outcome": "collected",
        "path": {"hex": raw.hex(), "display": path},
        "reason": "suspected exfiltration",
        "host": "payroll-srv",
        "os": "Linux-6.1.0-18-amd64-x86_64-with-glibc2.36",
        "tool": f"custody {VERSION}",
        "source": _stat(len(data), inode, T0 - 86_400_000_000_000),
        "size": len(data),
        "digests": digests,
        "store": relpath,
        "mime": "text/plain",
        "magic": "ASCII text",
    }


def build_golden_case(
    root: Path, monkeypatch: pytest.MonkeyPatch, *, tamper: bool = True
) -> Ledger:
    """The fixed case, in ``root/case`` (opened by the relative path ``case``)."""
    ticks = iter(range(1_000))

    def clock() -> str:
        return rfc3339_ns(T0 + next(ticks) * STEP_NS)

    monkeypatch.chdir(root)
    monkeypatch.setattr(custody.ledger, "now_rfc3339", clock)
    monkeypatch.setattr(custody.ledger.uuid, "uuid4", lambda: CASE_UUID)
    monkeypatch.setattr(custody.ledger, "__version__", VERSION)
    monkeypatch.setattr(custody.report, "__version__", VERSION)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", REPORT_EPOCH)
    dana = _signer(DANA_SEED, "Dana Reyes", "collector")
    lee = _signer(LEE_SEED, "Lee Okafor", "counsel")

    ledger = Ledger.create(Path("case"), "2026-GOLD", 'Payroll breach, "golden" case')
    (root / "src").mkdir()
    rel1, dig1 = _store(ledger, root / "src" / "1", ITEM1_BYTES)
    rel2, dig2 = _store(ledger, root / "src" / "2", ITEM2_BYTES)
    paths = [ITEM1_PATH, ITEM2_PATH]
    ledger.append(
        dana,
        [
            EventDraft(
                RUN_START_EVENT,
                {
                    "run": RUN_UUID,
                    "reason": "suspected exfiltration",
                    "paths": [{"hex": p.encode().hex(), "display": p} for p in paths],
                    "algorithms": ["md5", "sha1", "sha256"],
                    "cwd": {"hex": b"/root".hex(), "display": "/root"},
                    "host": "payroll-srv",
                    "os": "Linux-6.1.0-18-amd64-x86_64-with-glibc2.36",
                    "tool": f"custody {VERSION}",
                },
            ),
            EventDraft(
                COLLECT_EVENT,
                _collect_data(ITEM1_PATH, ITEM1_BYTES, rel1, dig1, 131_001),
                new_item=True,
            ),
            EventDraft(
                COLLECT_EVENT,
                _collect_data(ITEM2_PATH, ITEM2_BYTES, rel2, dig2, 131_002),
                new_item=True,
            ),
            EventDraft(
                RUN_END_EVENT,
                {
                    "run": RUN_UUID,
                    "status": "complete",
                    "counts": {"collected": 2},
                    "bytes": len(ITEM1_BYTES) + len(ITEM2_BYTES),
                },
            ),
        ],
    )
    ledger.register_identity(dana, lee.identity)
    t = transfer(ledger, dana, ["ITEM-1"], "Lee Okafor", REASON, LOCATION)
    receive(ledger, lee, transfer_id(t.seq), location="Counsel's office")
    lifecycle_event(ledger, lee, "seal", ["ITEM-1"], "sealed in bag 44")
    make_checkpoint(ledger, lee)
    lifecycle_event(ledger, dana, "note", ["ITEM-1", "ITEM-2"], NOTE, location=NOTE_LOCATION)
    if tamper:
        obj = ledger.store_dir / rel2
        obj.chmod(0o644)
        data = bytearray(obj.read_bytes())
        data[0] ^= 0x01
        obj.write_bytes(bytes(data))
        obj.chmod(0o400)
    return ledger


@pytest.fixture
def golden_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    ledger = build_golden_case(tmp_path, monkeypatch)
    try:
        return case_report(ledger, detail="all")
    finally:
        ledger.close()


@pytest.fixture
def clean_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    ledger = build_golden_case(tmp_path, monkeypatch, tamper=False)
    try:
        return case_report(ledger, detail="all")
    finally:
        ledger.close()


def _check_golden(name: str, data: bytes) -> None:
    path = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(data)
    expected = path.read_bytes()
    if data != expected:
        import difflib

        diff = "".join(
            difflib.unified_diff(
                expected.decode("utf-8", "replace").splitlines(keepends=True),
                data.decode("utf-8", "replace").splitlines(keepends=True),
                f"tests/golden/{name}",
                "rendered now",
            )
        )
        pytest.fail(
            f"{name} differs from tests/golden/{name}; if the change is intended, run"
            f" CUSTODY_UPDATE_GOLDEN=1 python -m pytest -q {Path(__file__).name}\n{diff}"
        )


def _csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "the CSV starts with a UTF-8 byte-order mark"
    return list(csv.reader(io.StringIO(data[3:].decode("utf-8"), newline="")))


def _schema_errors(instance: Any) -> list[str]:
    v = Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in v.iter_errors(instance)
    ]


# -- golden files ------------------------------------------------------------------------


def test_golden_csv(golden_model: dict[str, Any]) -> None:
    _check_golden("report.csv", render(golden_model, "csv"))


def test_golden_json(golden_model: dict[str, Any]) -> None:
    _check_golden("report.json", render(golden_model, "json"))


def test_golden_case_is_the_case_described(golden_model: dict[str, Any]) -> None:
    """What the golden files must say, checked independently of them: the builder
    really made the case the golden files claim to show."""
    m = golden_model
    assert m["tool"] == f"custody {VERSION}"
    assert m["generated"] == m["verification"]["verified_at"] == "2026-03-02T10:00:00.000000000Z"
    assert m["source"] == {"kind": "case", "path": "case"}
    assert m["case"]["id"] == "2026-GOLD"
    assert m["case"]["created"] == "2026-03-02T09:00:00.000000000Z"
    items = {i["id"]: i for i in m["items"]}
    assert items["ITEM-1"]["path"] == ITEM1_PATH and items["ITEM-2"]["path"] == ITEM2_PATH
    for item, data in (("ITEM-1", ITEM1_BYTES), ("ITEM-2", ITEM2_BYTES)):
        assert items[item]["digests"] == {
            "md5": hashlib.md5(data).hexdigest(),
            "sha1": hashlib.sha1(data).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    tampered = bytearray(ITEM2_BYTES)
    tampered[0] ^= 0x01
    assert items["ITEM-2"]["verified_digests"]["sha256"] == hashlib.sha256(tampered).hexdigest()
    assert items["ITEM-1"]["verified_digests"] == items["ITEM-1"]["digests"]
    assert items["ITEM-1"]["integrity"] == {"ok": True, "findings": []}
    assert items["ITEM-2"]["integrity"]["ok"] is False
    assert {f["kind"] for f in items["ITEM-2"]["integrity"]["findings"]} == {"object-digest"}
    assert m["verification"]["ok"] is False
    assert [s["step"] for s in m["verification"]["steps"] if not s["ok"]] == ["stored bytes"]
    assert items["ITEM-1"]["state"] == "sealed"
    assert items["ITEM-1"]["custodian"] == "Lee Okafor (counsel)"
    assert [e["type"] for e in items["ITEM-1"]["timeline"]] == [
        "collect",
        "transfer",
        "receive",
        "seal",
        "note",
    ]
    assert [e["type"] for e in items["ITEM-2"]["timeline"]] == ["collect", "note"]
    assert m["verification"]["latest_checkpoint"]["signature_verified"] is True
    assert m["ledger_state"]["size"] == m["ledger_state"]["checkpoint"]["size"] + 2
    assert [k["name"] for k in m["keys"]] == ["Dana Reyes", "Lee Okafor"]
    # every key from the custody replay: Dana opened the case (its owner) and
    # attested Lee's key
    dana, lee = (k["fingerprint"] for k in m["keys"])
    assert [(k["standing"], k["attested_by"], k["status"]) for k in m["keys"]] == [
        ("owner", dana, "active"),
        ("attested", dana, "active"),
    ]
    assert [(x["fingerprint"], x["standing"]) for x in m["case"]["examiners"]] == [
        (dana, "owner"),
        (lee, "attested"),
    ]
    assert items["ITEM-1"]["custodian_key"]["fingerprint"] == lee
    assert items["ITEM-1"]["collected_by_key"]["standing"] == "owner"
    (h,) = items["ITEM-1"]["handovers"]
    assert (h["released_by_key"]["fingerprint"], h["to_key"]["fingerprint"]) == (dana, lee)
    assert h["received_by_key"]["fingerprint"] == lee
    assert [e["signer_key"]["fingerprint"] for e in items["ITEM-1"]["timeline"]] == [
        dana,
        dana,
        lee,
        lee,
        dana,
    ]
    assert m["verification"]["latest_checkpoint"]["signer_key"]["standing"] == "attested"
    assert all(e["signature_verified"] for i in m["items"] for e in i["timeline"])


def test_golden_case_is_reproducible(
    golden_model: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second, independent build gives byte-identical reports."""
    again = tmp_path / "again"
    again.mkdir()
    ledger = build_golden_case(again, monkeypatch)
    try:
        model = case_report(ledger)
    finally:
        ledger.close()
    for fmt in ("csv", "json"):
        assert render(model, fmt) == render(golden_model, fmt), fmt


def test_golden_event_bodies_match_the_event_schema(
    golden_model: dict[str, Any], tmp_path: Path
) -> None:
    """The hand-written collect events have exactly the shape custody's collector writes."""
    schema = json.loads((ROOT / "schemas" / "event-body.schema.json").read_text(encoding="utf-8"))
    v = Draft202012Validator(schema)
    ledger = Ledger.open(tmp_path / "case")
    try:
        problems = {ev.seq: [e.message for e in v.iter_errors(ev.parsed)] for ev in ledger.events()}
    finally:
        ledger.close()
    assert not any(problems.values()), problems


def test_golden_files_read_back() -> None:
    """The committed golden files themselves: the CSV parses to the form, with the
    exact digests of the known bytes and the tampered item FAILED; the JSON is a
    valid report.  (Guards against regenerating them blindly.)"""
    rows = _csv_rows((GOLDEN / "report.csv").read_bytes())
    assert rows[0] == list(COLUMNS)
    body = [dict(zip(COLUMNS, r, strict=True)) for r in rows[1:]]
    # the failing item first (issue 16), then the others in collection order
    assert [(r["item"], r["event_seq"]) for r in body] == [
        ("ITEM-2", "3"),
        ("ITEM-2", "10"),
        ("ITEM-1", "2"),
        ("ITEM-1", "6"),
        ("ITEM-1", "7"),
        ("ITEM-1", "8"),
        ("ITEM-1", "10"),
    ]
    body = body[2:] + body[:2]  # ITEM-1's rows, as below
    for r in body:
        data = ITEM1_BYTES if r["item"] == "ITEM-1" else ITEM2_BYTES
        assert r["sha256"] == hashlib.sha256(data).hexdigest()
        assert r["item_integrity"] == ("intact" if r["item"] == "ITEM-1" else "FAILED")
        assert r["signature_verified"] == "yes"
    assert body[0]["description"] == f"{ITEM1_PATH} (ASCII text, 46 bytes, host payroll-srv)"
    assert body[0]["date"] == "2026-03-02" and body[0]["time_utc"] == "09:04:30"
    assert body[1]["action"] == "released to Lee Okafor (counsel), TRANSFER-6"
    assert (body[1]["released_by"], body[1]["received_by"]) == ("Dana Reyes (collector)", "")
    assert (body[1]["reason"], body[1]["location"]) == (REASON, LOCATION)
    assert (body[2]["released_by"], body[2]["received_by"]) == (
        "Dana Reyes (collector)",
        "Lee Okafor (counsel)",
    )
    assert body[3]["action"] == "sealed" and body[3]["actor"] == "Lee Okafor"
    # the signing key of every row: its fingerprint, its standing and who attested it
    dana = _signer(DANA_SEED, "Dana Reyes", "collector").fingerprint
    lee = _signer(LEE_SEED, "Lee Okafor", "counsel").fingerprint
    for r in body:
        signer = lee if r["actor"] == "Lee Okafor" else dana
        standing = "attested" if signer == lee else "owner"
        assert (r["signer"], r["signer_standing"]) == (signer, standing)
        assert (r["signer_attested_by_name"], r["signer_attested_by"]) == ("Dana Reyes", dana)
    # a display column: shown by the display rule and formula-guarded; its exact value beside
    assert body[4]["reason_exact"] == body[6]["reason_exact"] == NOTE
    assert body[4]["reason"] == NOTE.replace("\n", "\\n").replace("\t", "\\t")
    assert body[4]["location_exact"] == NOTE_LOCATION
    assert body[4]["location"] == "'" + NOTE_LOCATION
    for r in body:
        for name in DISPLAY_COLUMNS:
            assert r[name] == formula_guarded(shown(r[f"{name}_exact"])), (name, r)
    report = json.loads((GOLDEN / "report.json").read_bytes())
    assert not _schema_errors(report)
    assert report["items"][0]["integrity"]["ok"] is False


# -- CSV conventions -----------------------------------------------------------------------


def test_csv_is_rfc4180_with_bom_and_crlf(golden_model: dict[str, Any]) -> None:
    data = render(golden_model, "csv")
    assert data.startswith(
        b"\xef\xbb\xbfitem,description,description_exact,sha256,date,time_utc,action,"
    )
    text = data[3:].decode("utf-8")
    assert text.startswith(",".join(COLUMNS) + "\r\n")
    assert text.endswith("\r\n")
    # every line break outside a quoted field is CRLF; the note's own \n stays inside the
    # quotes of its exact column (the display column shows it escaped)
    quoted = False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif ch == "\n" and not quoted:
            assert text[i - 1] == "\r", text[max(0, i - 40) : i + 1]
    assert '"photographed both labels\nsheet 2:\tlabel reads ""44"""' in text
    assert '"photographed both labels\\nsheet 2:\\tlabel reads ""44"""' in text
    assert (
        f'"{ITEM1_PATH.replace(chr(34), 2 * chr(34))} (ASCII text, 46 bytes, host payroll-srv)"'
        in text
    )


def test_csv_one_row_per_event_per_item(golden_model: dict[str, Any]) -> None:
    rows = _csv_rows(render(golden_model, "csv"))
    events = [(i["id"], str(e["seq"])) for i in golden_model["items"] for e in i["timeline"]]
    seq = COLUMNS.index("event_seq")
    assert [(r[0], r[seq]) for r in rows[1:]] == events
    note_seq = next(e["seq"] for e in golden_model["items"][1]["timeline"] if e["type"] == "note")
    assert sorted(r[0] for r in rows[1:] if r[seq] == str(note_seq)) == ["ITEM-1", "ITEM-2"]


def test_csv_guards_formula_like_display_cells_and_keeps_them_exact_beside(
    golden_model: dict[str, Any],
) -> None:
    """A display cell starting with = + - @ gets a leading apostrophe (so a
    spreadsheet does not run it); the exact value is in the ``_exact`` column beside
    it; ``formula_guard=False`` leaves the display cells unguarded."""
    model = copy.deepcopy(golden_model)
    ev = model["items"][0]["timeline"][0]
    ev["reason"], ev["location"], ev["actor"] = '=HYPERLINK("x")', "+1 floor", "-dash"
    rows = [dict(zip(COLUMNS, r, strict=True)) for r in _csv_rows(render(model, "csv"))[1:]]
    got = [(rows[0][c], rows[0][f"{c}_exact"]) for c in ("reason", "location", "actor")]
    assert got == [
        ('\'=HYPERLINK("x")', '=HYPERLINK("x")'),
        ("'+1 floor", "+1 floor"),
        ("'-dash", "-dash"),
    ]
    notes = [(r["location"], r["location_exact"]) for r in rows if r["location_exact"][:1] == "@"]
    assert notes == [("'" + NOTE_LOCATION, NOTE_LOCATION)] * 2
    raw = csv_form.rows(model, formula_guard=False)
    assert raw[0][COLUMNS.index("reason")] == '=HYPERLINK("x")'


def test_csv_round_trips_commas_quotes_newlines_and_tabs(report_case: ReportCase) -> None:  # noqa: F811
    proc, out = report_case.report("json", "--detail", "all")
    assert proc.returncode == 1, proc.stderr
    model = json.loads(out.read_text(encoding="utf-8"))
    item = next(i for i in model["items"] if i["id"] == "ITEM-1")
    assert item["path"].endswith('/memo, "final".txt')
    item["path"] = '/ev/line one\nline two\ttabbed, "quoted".txt'
    item["timeline"][0]["reason"] = 'CR LF\r\nand a tab\there, "q"'
    item["timeline"][0]["location"] = "\n"
    item["path_hex"] = item["path"].encode().hex()
    rows = _csv_rows(render(model, "csv"))
    row = next(dict(zip(COLUMNS, r, strict=True)) for r in rows[1:] if r[0] == "ITEM-1")
    assert row["description_exact"].startswith('/ev/line one\nline two\ttabbed, "quoted".txt (')
    assert row["description"].startswith('/ev/line one\\nline two\\ttabbed, "quoted".txt (')
    assert row["path"] == '/ev/line one\\nline two\\ttabbed, "quoted".txt'
    assert bytes.fromhex(row["path_hex"]).decode() == item["path"]
    assert row["reason_exact"] == 'CR LF\r\nand a tab\there, "q"'
    assert row["reason"] == 'CR LF\\r\\nand a tab\\there, "q"'
    assert (row["location"], row["location_exact"]) == ("\\n", "\n")
    assert all(len(r) == len(COLUMNS) for r in rows)


def test_cli_csv_of_the_shared_case(report_case: ReportCase) -> None:  # noqa: F811
    proc, out = report_case.report("csv")
    assert proc.returncode == 1, proc.stderr  # findings recorded, report still written
    assert (
        "SHA-256 of the report: sha256:" + hashlib.sha256(out.read_bytes()).hexdigest()
        in proc.stdout
    )
    rows = _csv_rows(out.read_bytes())
    assert rows[0] == list(COLUMNS)
    body = [dict(zip(COLUMNS, r, strict=True)) for r in rows[1:]]
    item1 = [r for r in body if r["item"] == "ITEM-1"]
    item2 = [r for r in body if r["item"] == "ITEM-2"]
    assert [r["action"].split(" ")[0] for r in item1] == [
        "collected",
        "released",
        "received",
        "sealed",
    ]
    # the description: the exact source path, then what it is, its size and host
    assert all(
        re.fullmatch(r'/.+/evidence/memo, "final"\.txt \(.+, 46 bytes, host .+\)', r["description"])
        for r in item1
    ), item1
    assert all(
        re.fullmatch(r"/.+/evidence/auth\.log \(.+, 63 bytes, host .+\)", r["description"])
        for r in item2
    ), item2
    assert {r["sha256"] for r in item1} == {report_case.sha256["ITEM-1"]}
    assert {r["sha256"] for r in item2} == {report_case.sha256["ITEM-2"]}
    assert {r["item_integrity"] for r in item1} == {"intact"}
    assert {r["item_integrity"] for r in item2} == {"FAILED"}
    handover = item1[1]
    assert (handover["reason"], handover["location"]) == (REASON, LOCATION)
    assert handover["released_by"] == "Dana Reyes (collector)"
    receipt = item1[2]
    assert receipt["received_by"] == "Lee Okafor (counsel)"
    assert {r["signature_verified"] for r in body} == {"yes"}


def test_csv_marks_unverified_signatures(golden_model: dict[str, Any]) -> None:
    model = copy.deepcopy(golden_model)
    model["items"][0]["timeline"][1]["signature_verified"] = False
    rows = _csv_rows(render(model, "csv"))
    col = COLUMNS.index("signature_verified")
    assert [r[col] for r in rows[1:6]] == ["yes", "NO", "yes", "yes", "yes"]


# -- the JSON report and its schema ----------------------------------------------------------


def test_report_schema_is_valid_draft_2020_12() -> None:
    from importlib.resources import files

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    shipped = files("custody.schemas").joinpath("report.schema.json").read_text(encoding="utf-8")
    assert json.loads(shipped) == schema


def test_schema_knows_every_verification_step() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    step = schema["properties"]["verification"]["properties"]["steps"]["items"]["properties"][
        "step"
    ]
    # every step of custody.findings, and only those (every finding kind has a step)
    assert [s.value for s, _ in custody.findings.steps()] == step["enum"]


def test_cli_json_of_the_shared_case_matches_schema(report_case: ReportCase) -> None:  # noqa: F811
    proc, out = report_case.report("json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert not _schema_errors(report), _schema_errors(report)
    assert report["verification"]["ok"] is False
    # the failing item first; only it has its detail (--detail auto, the default for json)
    assert [(i["id"], i["integrity"]["ok"]) for i in report["items"]] == [
        ("ITEM-2", False),
        ("ITEM-1", True),
    ]
    assert [("timeline" in i, i["detail"]) for i in report["items"]] == [
        (True, True),
        (False, False),
    ]
    assert report["summary"] == {
        "items": 2,
        "failing": 1,
        "intact": 1,
        "failing_items": ["ITEM-2"],
        "detail_items": 1,
        "by_state": {"collected": 1, "sealed": 1},
        "by_outcome": {"collected": 2},
    }
    assert report["scope"] == {"items": [], "all_items": True, "detail": "auto"}


def test_clean_case_json_matches_schema(clean_model: dict[str, Any]) -> None:
    assert clean_model["verification"]["ok"] is True
    assert clean_model["verification"]["findings"] == []
    report = json.loads(render(clean_model, "json"))
    assert not _schema_errors(report), _schema_errors(report)


def test_json_is_the_model(golden_model: dict[str, Any]) -> None:
    data = render(golden_model, "json")
    assert json.loads(data) == golden_model
    assert data.endswith(b"}\n") and 'memo, \\"final\\".txt' in data.decode("utf-8")


Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = m
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[int(last) if last.isdigit() else last] = value

    return mutate


@pytest.mark.parametrize(
    "mutate",
    [
        _set("verification/ok", True),  # ok with findings
        _set("items/0/integrity/ok", True),  # an item passing with findings
        _set("items/1/integrity/ok", False),  # an item failing without any
        _set("items/0/digests/sha256", "F" * 64),  # upper-case hex
        _set("items/0/digests/sha1", "0" * 64),  # wrong length for the algorithm
        _set("items/0/digests/crc32", "00000000"),  # unknown algorithm
        _set("items/0/verified_digests", "not re-verified"),
        _set("items/0/timeline/0/hash", "0" * 64),  # no sha256: prefix
        _set("items/0/timeline/0/signature_verified", "yes"),
        _set("items/0/id", "item-1"),
        _set("ledger_state/head", "sha256:" + "0" * 63),
        _set("ledger_state/root", "sha256:" + "0" * 64),
        _set("keys/0/fingerprint", "0" * 64),
        _set("keys/0/status", "lost"),
        _set("verification/findings/0/severity", "high"),  # additionalProperties
        _set("items/0/colour", "red"),
        _set("report_version", 2),
        _set("generated", "2026-03-02T10:00:00Z"),  # not 9 fractional digits
    ],
)
def test_schema_rejects_malformed_reports(golden_model: dict[str, Any], mutate: Mutation) -> None:
    report = json.loads(render(golden_model, "json"))
    assert not _schema_errors(report)
    mutate(report)
    assert _schema_errors(report)


def test_schema_requires_every_top_level_part(golden_model: dict[str, Any]) -> None:
    report = json.loads(render(golden_model, "json"))
    for key in list(report):
        broken = {k: v for k, v in report.items() if k != key}
        assert _schema_errors(broken), key
