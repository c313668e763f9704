"""verify --incremental: a signed "verified through N" note of the verifier's key
(custody.verified) spares the signature checks of events 0..N on the next run;
everything else is still checked.  Attacked three ways: someone with write access
but no key (a forged note, an edited note, a signature or body rewritten below
N); a note swapped in from another key or case; a hostile option (--key of
another person's key, an unreadable one)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from custody import verify as verify_mod
from custody.keys import load_signer
from custody.ledger import EventDraft, Ledger
from custody.verified import VERIFIED_EVENT, latest_note, note_draft
from tests.conftest import PASSPHRASE, Case, cli, new_key
from tests.tampering import append_unchecked, bypass, q, sqlite_ok


def _verify(case: Case, *extra: str | Path) -> tuple[int, dict[str, Any]]:
    r = cli(case, "verify", "--quick", "--incremental", "--json", *extra)
    assert r.stdout, r.stderr
    return r.returncode, json.loads(r.stdout)


def _notes(case: Case) -> list[tuple[int, dict[str, Any]]]:
    rows = sqlite_ok(
        case.dir / "custody.db",
        f"SELECT seq, body FROM events WHERE type = {q(VERIFIED_EVENT)} ORDER BY seq;",
    )
    out = []
    for line in rows.splitlines():
        seq, body = line.split("|", 1)
        out.append((int(seq), json.loads(body)["data"]))
    return out


def _add_events(case: Case, n: int) -> None:
    signer = load_signer(case.key, PASSPHRASE.encode(), insecure=False)
    with Ledger.open(case.dir) as led:
        for i in range(n):
            led.append(signer, [EventDraft("note", {"reason": f"remark {i}", "items": []})])


@pytest.fixture
def checked(case: Case) -> Case:
    """A case with a few events, verified once with --incremental (a full check
    that recorded the note), then two more events."""
    _add_events(case, 3)
    rc, out = _verify(case)
    assert rc == 0, out
    assert out["signatures_trusted_through"] is None  # no note yet: every signature
    assert out["verified_note_recorded"] == out["events"]
    assert [n for n, _ in _notes(case)] == [out["events"]]
    _add_events(case, 2)
    return case


def _spy_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Seqs whose signatures verify checks (the serial path)."""
    seen: list[int] = []
    real = verify_mod.check_now

    def spy(out: Any, check: Any, *a: Any) -> bool:
        if check is not None:
            seen.append(check.seq)
        return real(out, check, *a)

    monkeypatch.setattr(verify_mod, "check_now", spy)
    return seen


def test_second_run_checks_only_new_signatures(
    checked: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    ((note_seq, data),) = _notes(checked)
    seen = _spy_checks(monkeypatch)
    rc, out = _verify(checked)
    assert rc == 0, out
    assert out["signatures_trusted_through"] == data["through"] == note_seq - 1
    assert seen == list(range(note_seq, out["events"]))  # the note and the 2 new events
    assert out["findings"] == []
    # a new note covers them; a run with nothing new records none
    assert [n for n, _ in _notes(checked)] == [note_seq, out["events"]]
    rc, again = _verify(checked)
    assert rc == 0 and again["verified_note_recorded"] is None
    assert again["signatures_trusted_through"] == out["events"] - 1


def test_plain_verify_ignores_notes(checked: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy_checks(monkeypatch)
    r = cli(checked, "verify", "--quick", "--json")
    assert r.returncode == 0
    out = json.loads(r.stdout)
    assert seen == list(range(out["events"]))
    assert "signatures_trusted_through" not in out


def _full_fallback(case: Case, monkeypatch: pytest.MonkeyPatch) -> tuple[int, dict[str, Any]]:
    seen = _spy_checks(monkeypatch)
    rc, out = _verify(case)
    assert rc == 1, json.dumps(out)
    assert out["signatures_trusted_through"] is None
    assert out["verified_note_recorded"] is None
    assert set(range(out["events"])) - {n for n, _ in _notes(case)} <= set(seen)
    return rc, out


def test_signature_rewritten_below_n(checked: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write access, no key: a signature below N replaced by another event's.  The
    note's signature digest no longer holds: a finding, and every signature is
    checked, which finds the bad one."""
    db = checked.dir / "custody.db"
    other = sqlite_ok(db, "SELECT signature FROM events WHERE seq = 2;").strip()
    bypass(db, "events", f"UPDATE events SET signature = {q(other)} WHERE seq = 1;")
    _, out = _full_fallback(checked, monkeypatch)
    kinds = [(f["kind"], f["subject"]) for f in out["findings"]]
    ((note_seq, _),) = _notes(checked)
    assert kinds[0] == ("verified-note", f"event {note_seq}")
    assert "signatures of events 0-" in out["findings"][0]["detail"]
    assert ("signature", "event 1") in kinds


def test_body_rewritten_below_n(checked: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    db = checked.dir / "custody.db"
    bypass(
        db,
        "events",
        "UPDATE events SET body = replace(body, 'remark 1', 'remark 7') WHERE seq = 2;",
    )
    _, out = _full_fallback(checked, monkeypatch)
    kinds = [f["kind"] for f in out["findings"]]
    assert kinds[0] == "verified-note"
    assert "tree root" in out["findings"][0]["detail"]
    assert "event-hash" in kinds and "signature" in kinds


def test_forged_note_is_refused(checked: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write access, no key: the note's data edited (through raised) under its
    signature.  Its signature fails with the verifier's key: a finding, a full check."""
    db = checked.dir / "custody.db"
    ((note_seq, _),) = _notes(checked)
    bypass(
        db,
        "events",
        f"UPDATE events SET body = replace(body, '\"through\":', '\"through\":1') "
        f"WHERE seq = {note_seq};",
    )
    _, out = _full_fallback(checked, monkeypatch)
    first = out["findings"][0]
    assert (first["kind"], first["subject"]) == ("verified-note", f"event {note_seq}")
    assert "does not verify with your key" in first["detail"]


def test_note_of_another_key_is_not_used(
    checked: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trust binds to keys: Lee's run does not use Dana's note; it checks every
    signature and then records Lee's own (Lee is attested by the owner)."""
    lee = tmp_path / "lee.pem"
    new_key(checked, lee, "Lee Okafor", "counsel", default=False)
    checked(
        "key",
        "import",
        lee.with_suffix(".pub"),
        "--name",
        "Lee Okafor",
        "--role",
        "counsel",
        check=True,
    )
    seen = _spy_checks(monkeypatch)
    rc, out = _verify(checked, "--key", lee)
    assert rc == 0, out
    assert out["signatures_trusted_through"] is None
    assert seen == list(range(out["events"]))
    with Ledger.open(checked.dir, write=False) as led:
        signer = load_signer(lee, PASSPHRASE.encode(), insecure=False)
        note, problem = latest_note(led, signer.identity.fingerprint, signer.identity.public_raw)
    assert problem is None and note is not None and note.seq == out["verified_note_recorded"]


def test_note_naming_another_root(
    checked: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A note whose root is swapped for another ledger's (write access, no key):
    its signature no longer verifies, a finding and a full check."""
    db = checked.dir / "custody.db"
    ((note_seq, data),) = _notes(checked)
    fake_root = base64.b64encode(bytes(32)).decode()
    bypass(
        db,
        "events",
        f"UPDATE events SET body = replace(body, {q(data['root'])}, {q(fake_root)}) "
        f"WHERE seq = {note_seq};",
    )
    _, out = _full_fallback(checked, monkeypatch)
    assert out["findings"][0]["kind"] == "verified-note"


def test_missing_key_is_one_clear_line(case: Case, tmp_path: Path) -> None:
    r = cli(case, "verify", "--incremental", "--key", tmp_path / "nope.pem")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"custody: error: key file not found: {tmp_path / 'nope.pem'}"
    ]
    assert _notes(case) == []


def test_a_failed_verification_records_no_note(case: Case) -> None:
    db = case.dir / "custody.db"
    bypass(db, "events", "UPDATE events SET body = body || ' ' WHERE seq = 0;")
    rc, out = _verify(case)
    assert rc == 1, json.dumps(out)
    assert out["verified_note_recorded"] is None
    assert _notes(case) == []


def test_self_asserted_key_records_no_note(checked: Case, tmp_path: Path) -> None:
    """A key nobody attested may not sign a note (rules 2): the verification's
    result stands, one line says why no note was recorded, nothing is written."""
    eve = tmp_path / "eve.pem"
    new_key(checked, eve, "Eve Stranger", "examiner", default=False)
    before = sqlite_ok(checked.dir / "custody.db", "SELECT count(*) FROM events;")
    r = cli(checked, "verify", "--quick", "--incremental", "--key", eve)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("custody: no verified-through note recorded: ")
    assert len(r.stderr.strip().splitlines()) == 1
    assert sqlite_ok(checked.dir / "custody.db", "SELECT count(*) FROM events;") == before


def test_note_by_a_revoked_key_is_not_trusted(
    checked: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lee's key is stolen and revoked; the thief, with write access, appends a
    note by it past every writer check, covering events it never verified.  The
    note's signature and root hold, but its key was retired before it: a finding,
    and every signature is checked."""
    lee = tmp_path / "lee.pem"
    new_key(checked, lee, "Lee Okafor", "counsel", default=False)
    checked(
        "key",
        "import",
        lee.with_suffix(".pub"),
        "--name",
        "Lee Okafor",
        "--role",
        "counsel",
        check=True,
    )
    checked("key", "revoke", "Lee Okafor", "--reason", "laptop stolen", check=True)
    thief = load_signer(lee, PASSPHRASE.encode(), insecure=False)
    with Ledger.open(checked.dir, write=False) as led:
        report = verify_mod.verify_ledger(led, quick=True, verifier=thief.identity)
        assert report.ok and report.root is not None and report.signatures is not None
        through, root, sigs = report.events - 1, report.root, report.signatures
    with Ledger.open(checked.dir) as led:
        data = note_draft(through, root, sigs).data
        forged = append_unchecked(led, thief, VERIFIED_EVENT, data)
    seen = _spy_checks(monkeypatch)
    rc, out = _verify(checked, "--key", lee)
    assert rc == 1
    first = out["findings"][0]
    assert (first["kind"], first["subject"]) == ("verified-note", f"event {forged}")
    assert "retired key" in first["detail"]
    assert ("revoked-key", f"event {forged}") in [
        (f["kind"], f["subject"]) for f in out["findings"]
    ]
    assert out["signatures_trusted_through"] is None
    assert set(range(forged)) <= set(seen)
