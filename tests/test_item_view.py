"""The item view (custody.views): one definition of an item, its custodian, its
hand-overs and its timeline, shared by ``custody show`` and every report; the
signature status of each event is the verifier's word (a signature finding for
that event), never a check the CLI makes with keys from a derived table.

Runs the CLI in-process (conftest.invoke_here)."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke_here, ok_here
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from custody.findings import SIGNATURE_KINDS, Finding, Kind
from custody.ledger import Ledger
from custody.views import case_item_view, unverified_events


@pytest.fixture
def handed_over(custody_env: dict[str, str], tmp_path: Path) -> Path:
    """A case: ITEM-1 collected by Dana, handed over to Lee and received."""
    ok_here(
        "key", "new", "--name", "Dana Reyes", "--role", "collector", "--out", tmp_path / "dana.pem"
    )
    ok_here(
        "key",
        "new",
        "--name",
        "Lee Okafor",
        "--role",
        "counsel",
        "--out",
        tmp_path / "lee.pem",
        "--no-default",
    )
    case = tmp_path / "case"
    ok_here("init", case, "--case-id", "2026-017", "--title", "Payroll server breach")
    (tmp_path / "memo.txt").write_text("payroll memo\n")
    ok_here(
        "collect",
        "--reason",
        "test",
        tmp_path / "memo.txt",
        "--no-selftest",
        "--quiet",
        "--case",
        case,
    )
    ok_here(
        "key",
        "import",
        tmp_path / "lee.pub",
        "--name",
        "Lee Okafor",
        "--role",
        "counsel",
        "--case",
        case,
    )
    t = json.loads(
        ok_here(
            "transfer",
            "ITEM-1",
            "--to",
            "Lee Okafor",
            "--reason",
            "to counsel",
            "--json",
            "--case",
            case,
        ).stdout
    )
    ok_here("receive", t["id"], "--key", tmp_path / "lee.pem", "--case", case)
    return case


def _other_key_b64() -> str:
    pub = Ed25519PrivateKey.generate().public_key()
    return base64.b64encode(pub.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def _edit_identities_table(case: Path, name: str) -> None:
    """Replace ``name``'s public key in the derived identities table with another
    key (the append-only triggers dropped and put back)."""
    conn = sqlite3.connect(case / "custody.db", isolation_level=None)
    try:
        triggers = [
            r[0]
            for r in conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'identities'"
            )
        ]
        conn.execute("BEGIN")
        for (t,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'identities'"
        ).fetchall():
            conn.execute(f"DROP TRIGGER {t}")
        n = conn.execute(
            "UPDATE identities SET public_key = ? WHERE name = ?", (_other_key_b64(), name)
        ).rowcount
        assert n == 1
        for sql in triggers:
            conn.execute(sql)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _report(case: Path, out: Path) -> dict[str, Any]:
    r = invoke_here("report", "ITEM-1", "--format", "json", "--out", out, "--case", case)
    assert r.returncode in (0, 1), r.stderr
    model: dict[str, Any] = json.loads(out.read_text())
    return model


def test_show_and_report_agree_after_the_identities_table_is_edited(
    handed_over: Path, tmp_path: Path
) -> None:
    """The defect: show checked signatures itself with keys from the (derived,
    editable) identities table and called a genuine signature unverified, while
    the report (the verifier) called it verified.  Both now take the verifier's
    word, whose keys come from the signed identity events."""
    case = handed_over
    _edit_identities_table(case, "Dana Reyes")

    verify = json.loads(invoke_here("verify", "--json", "--case", case).stdout)
    kinds = {f["kind"] for f in verify["findings"]}
    assert "index" in kinds  # the edited table is reported ...
    assert not kinds & {str(k) for k in SIGNATURE_KINDS}  # ... and no signature is doubted

    show = json.loads(ok_here("show", "ITEM-1", "--json", "--case", case).stdout)
    model = _report(case, tmp_path / "r.json")
    (item,) = model["items"]
    by_seq_report = {e["seq"]: e["signature_verified"] for e in item["timeline"]}
    by_seq_show = {e["seq"]: e["signature_verified"] for e in show["events"]}
    assert by_seq_show == by_seq_report
    assert all(by_seq_show.values())
    (h,) = show["handovers"]
    (rh,) = item["handovers"]
    assert h["release_signature_verified"] is rh["release_signature_verified"] is True
    assert h["receipt_signature_verified"] is rh["receipt_signature_verified"] is True
    # the signer's key shown is the one the signed identity event carries
    dana_pub = (tmp_path / "dana.pub").read_text()
    collect = next(e for e in show["events"] if e["type"] == "collect")
    assert collect["signer_public_key_pem"] == dana_pub
    assert collect["signer_name"] == "Dana Reyes"
    # the text form says the same
    text = ok_here("show", "ITEM-1", "--case", case).stdout
    assert "SIGNATURE INVALID" not in text
    assert "[signature verified]" in text


def test_a_forged_signature_is_unverified_in_show_and_report(
    handed_over: Path, tmp_path: Path
) -> None:
    """A signature the verifier rejects is unverified everywhere, marked on the
    same event."""
    case = handed_over
    conn = sqlite3.connect(case / "custody.db", isolation_level=None)
    seq, sig = conn.execute("SELECT seq, signature FROM events WHERE type = 'transfer'").fetchone()
    raw = bytearray(base64.b64decode(sig))
    raw[0] ^= 1
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute(
        "UPDATE events SET signature = ? WHERE seq = ?", (base64.b64encode(raw).decode(), seq)
    )
    conn.close()

    # the item's record fails verification: show says so and exits 1 (issue 13)
    proc = invoke_here("show", "ITEM-1", "--json", "--case", case)
    assert proc.returncode == 1, proc.stderr
    show = json.loads(proc.stdout)
    assert show["verification"]["ok"] is False
    model = _report(case, tmp_path / "r.json")
    (item,) = model["items"]
    assert {e["seq"]: e["signature_verified"] for e in show["events"]} == {
        e["seq"]: e["signature_verified"] for e in item["timeline"]
    }
    assert [e["seq"] for e in show["events"] if not e["signature_verified"]] == [seq]
    assert show["handovers"][0]["release_signature_verified"] is False
    assert item["handovers"][0]["release_signature_verified"] is False
    text = invoke_here("show", "ITEM-1", "--case", case)
    assert text.returncode == 1
    assert text.stdout.startswith("FAILED: the record of ITEM-1 fails verification (signature,")
    assert "SIGNATURE INVALID" in text.stdout


def test_unverified_events_come_from_signature_findings_by_seq() -> None:
    findings = [
        Finding.event(Kind.SIGNATURE, 3, "Ed25519 signature does not verify"),
        Finding.event(Kind.UNKNOWN_SIGNER, 5, "no key"),
        Finding.event(Kind.CHAIN_LINK, 6, "prev differs"),  # not a signature finding
        Finding(Kind.SIGNATURE, "event 9", "a subject alone says nothing"),  # no seq
    ]
    assert unverified_events(findings) == {3, 5}


def test_library_view_is_what_show_prints(handed_over: Path) -> None:
    with Ledger.open(handed_over) as ledger:
        view = case_item_view(ledger, "item-1")
        assert view.id == "ITEM-1"
        assert view.state == "collected"  # received: back to its state before transit
        assert view.custodian == "Lee Okafor (counsel)"
        assert [h.status for h in view.handovers] == ["received"]
        assert view.ok and view.findings == []
        as_json = view.as_json()
    show = json.loads(ok_here("show", "ITEM-1", "--json", "--case", handed_over).stdout)
    # show --json adds the verification's verdict on the item (issue 13)
    assert show.pop("verification") == {"ok": True, "findings": [], "other_problems": 0}
    assert show == json.loads(json.dumps(as_json))


def test_show_unknown_item_is_a_usage_error(handed_over: Path) -> None:
    r = invoke_here("show", "ITEM-9", "--case", handed_over)
    assert r.returncode == 2
    assert r.stderr == "custody: error: no such item: ITEM-9\n"


# -- the report: per-item findings and signature status from structured fields ----------


def test_report_reads_findings_by_their_fields_not_their_subjects(handed_over: Path) -> None:
    """A finding concerns an item by its ``item``, ``seq`` or ``obj``; a subject
    that merely reads like an item or an event decides nothing."""
    from custody.findings import Step, steps
    from custody.report import case_report
    from custody.verify import VerifyReport

    with Ledger.open(handed_over) as ledger:
        collect_seq = next(e.seq for e in ledger.events() if e.type == "collect")
        store = json.loads(next(e.body for e in ledger.events() if e.type == "collect"))["data"][
            "store"
        ]
        fake = VerifyReport(case_id="2026-017", quick=True)
        fake.add(Kind.OBJECT_DIGEST, "a subject naming nothing", "by item", item="ITEM-1")
        fake.add(Kind.OBJECT_SIZE, "neither", "by object", obj=store)
        fake.add(Kind.SIGNATURE, "whatever", "by seq", seq=collect_seq)
        fake.add(Kind.INDEX, "ITEM-1", "subject only: no field names the item")
        fake.add(Kind.CHAIN_LINK, f"event {collect_seq}", "subject only: no seq")
        model = case_report(ledger, verify=fake)
    (item,) = model["items"]
    assert [f["detail"] for f in item["integrity"]["findings"]] == [
        "by item",
        "by object",
        "by seq",
    ]
    assert item["collect_signature_verified"] is False
    assert [e["seq"] for e in item["timeline"] if not e["signature_verified"]] == [collect_seq]
    # the steps are custody.findings' steps, each finding counted in its kind's step
    got = {s["step"]: s["findings"] for s in model["verification"]["steps"]}
    assert list(got) == [s.value for s, _ in steps()]
    assert got[Step.STORE.value] == 2 and got[Step.SIGNATURES.value] == 1
    assert got[Step.INDEX.value] == 1 and got[Step.CHAIN.value] == 1
    assert sum(got.values()) == len(model["verification"]["findings"]) == 5


def test_report_names_no_unverified_signature_from_a_subject(handed_over: Path) -> None:
    from custody.report import case_report
    from custody.verify import VerifyReport

    with Ledger.open(handed_over) as ledger:
        seqs = [e.seq for e in ledger.events()]
        fake = VerifyReport(case_id="2026-017", quick=True)
        for s in seqs:  # reads like every event's signature failing, names no event
            fake.add(Kind.SIGNATURE, f"event {s}", "subject only")
        model = case_report(ledger, verify=fake)
    (item,) = model["items"]
    assert all(e["signature_verified"] for e in item["timeline"])
    assert item["integrity"]["findings"] == []
