"""verify's signature checks on worker processes give exactly the findings of the
serial path, in the same order, on clean and tampered ledgers: a broken signature,
a body edited under its signature, signatures swapped between events, a key
registration whose signature fails (so later events are by an unknown signer), an
identities table naming the wrong key (the workers' guess is wrong), and an event
forged by a key the case never knew."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody import eventcheck
from custody.keys import Signer
from custody.ledger import EventDraft, Ledger
from custody.verify import verify_ledger
from tests.tampering import append_unchecked, bypass, q, sqlite_ok


class SpyPool(ProcessPoolExecutor):
    """The worker pool, counting the batches of signature checks it is given."""

    batches: ClassVar[int] = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        assert fn is eventcheck.verify_batch
        SpyPool.batches += 1
        return super().submit(fn, *args, **kwargs)


def _signer(name: str, role: str) -> Signer:
    return Signer(Ed25519PrivateKey.generate(), name, role)


def _note(text: str) -> EventDraft:
    return EventDraft("note", {"reason": text, "items": []})


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A case with an owner, an attested examiner and a self-registered counsel,
    each signing notes: 37 events, more than the verifier reads ahead with
    batches of 2 (the window then moves)."""
    root = tmp_path_factory.mktemp("par") / "case"
    owner = _signer("Olive Owner", "owner")
    exam = _signer("Eli Examiner", "examiner")
    with Ledger.create(root, "PAR-1", "parallel", owner=owner) as led:
        led.register_identity(owner, exam.identity)
        for i in range(15):
            led.append(owner, [_note(f"owner {i}")])
            led.append(exam, [_note(f"examiner {i}")])
        counsel = _signer("Cy Counsel", "counsel")
        for i in range(4):
            led.append(counsel, [_note(f"counsel {i}")])  # self-registers first
    return root


def _copy(template: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "case"
    shutil.copytree(template, dest)
    return dest


def _both(case: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The findings of the serial path, checked equal to the workers' (in batches
    of 2: several batches, the last one short)."""
    monkeypatch.setattr(eventcheck, "ProcessPoolExecutor", SpyPool)
    monkeypatch.setattr(eventcheck, "SIG_BATCH", 2)
    with Ledger.open(case, write=False) as led:
        SpyPool.batches = 0
        serial = verify_ledger(led, quick=True, parallel=False).as_json()
        assert SpyPool.batches == 0
        parallel = verify_ledger(led, quick=True, parallel=True).as_json()
        assert SpyPool.batches >= 5
        auto = verify_ledger(led, quick=True).as_json()  # too small for workers
        assert SpyPool.batches >= 5
    assert parallel == serial
    assert auto == serial
    return list(serial["findings"])


def _kinds(findings: list[dict[str, Any]]) -> list[tuple[str, int | None]]:
    """(kind, event number) of each finding (None: not about one event)."""
    out: list[tuple[str, int | None]] = []
    for f in findings:
        subject = str(f["subject"])
        seq = int(subject[6:]) if subject.startswith("event ") else None
        out.append((str(f["kind"]), seq))
    return out


def _db(case: Path) -> Path:
    return case / "custody.db"


def _events_by(case: Path, role: str) -> list[int]:
    rows = sqlite_ok(
        _db(case),
        "SELECT e.seq FROM events e JOIN identities i ON e.signer = i.fingerprint"
        f" WHERE i.role = {q(role)} AND e.type = 'note' ORDER BY e.seq;",
    )
    return [int(x) for x in rows.split()]


def test_clean_ledger(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _both(_copy(template, tmp_path), monkeypatch) == []


def _flip_signature(case: Path, seq: int) -> None:
    sig = sqlite_ok(_db(case), f"SELECT signature FROM events WHERE seq = {seq};").strip()
    bad = ("B" if sig[0] != "B" else "C") + sig[1:]
    bypass(_db(case), "events", f"UPDATE events SET signature = {q(bad)} WHERE seq = {seq};")


def _swap_signatures(case: Path, a: int, b: int) -> None:
    get = lambda s: sqlite_ok(_db(case), f"SELECT signature FROM events WHERE seq = {s};").strip()  # noqa: E731
    sa, sb = get(a), get(b)
    bypass(
        _db(case),
        "events",
        f"UPDATE events SET signature = {q(sb)} WHERE seq = {a};"
        f"UPDATE events SET signature = {q(sa)} WHERE seq = {b};",
    )


def _edit_body(case: Path, seq: int) -> None:
    bypass(
        _db(case),
        "events",
        f"UPDATE events SET body = replace(body, 'examiner 1', 'examiner 9') WHERE seq = {seq};",
    )


def _wrong_identity_key(case: Path) -> None:
    """The derived table names the counsel's key for the examiner: only the
    table is wrong (an index finding), every signature still verifies."""
    pub = sqlite_ok(_db(case), "SELECT public_key FROM identities WHERE role = 'counsel';").strip()
    bypass(
        _db(case),
        "identities",
        f"UPDATE identities SET public_key = {q(pub)} WHERE role = 'examiner';",
    )


TAMPERS: dict[str, tuple[Callable[[Path], None], list[tuple[str, int | None]]]] = {
    "flipped signature": (
        lambda c: _flip_signature(c, _events_by(c, "examiner")[2]),
        [("signature", 7)],
    ),
    "swapped signatures": (
        lambda c: _swap_signatures(c, 3, 5),
        [("signature", 3), ("signature", 5)],
    ),
    "edited body": (
        lambda c: _edit_body(c, _events_by(c, "examiner")[1]),
        [("event-hash", 5), ("signature", 5), ("index", None)],  # + the kept checkpoint
    ),
    # the registration's signature fails: it registers nothing, and the
    # examiner's notes after it are by a key the ledger does not know
    "broken registration": (
        lambda c: _flip_signature(c, 1),
        [("signature", 1)] + [("unknown-signer", s) for s in (3, 5, 7, 9)],
    ),
    "wrong identities row": (_wrong_identity_key, [("index", None)]),
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_tampered_ledger_same_findings(
    name: str, template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = _copy(template, tmp_path)
    tamper, want = TAMPERS[name]
    tamper(case)
    found = _kinds(_both(case, monkeypatch))
    for kind in want:
        assert kind in found, (kind, found)
    assert {k for k, _ in found} <= {k for k, _ in want} | {"checkpoint"}


def test_forged_event_by_an_unknown_key(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone with write access but no key appends a correctly chained event
    signed by a key of their own that claims to be the examiner's fingerprint in
    the row; neither path accepts it."""
    case = _copy(template, tmp_path)
    mallory = _signer("Eli Examiner", "examiner")
    with Ledger.open(case) as led:
        seq = append_unchecked(led, mallory, "note", {"reason": "forged", "items": []})
    exam_fp = sqlite_ok(
        _db(case), "SELECT fingerprint FROM identities WHERE role = 'examiner';"
    ).strip()
    bypass(
        _db(case),
        "events",
        f"UPDATE events SET signer = {q(exam_fp)} WHERE seq = {seq};",
    )
    found = _kinds(_both(case, monkeypatch))
    assert ("unknown-signer", seq) in found or ("signature", seq) in found
    assert ("event-mismatch", seq) in found


def test_workers_check_every_signature_of_a_clean_ledger(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the right guesses, no signature is checked in this process (each
    verdict comes from a worker), and a ledger read in several windows still
    gets every verdict in order."""
    case = _copy(template, tmp_path)
    here: list[bytes] = []
    real = eventcheck.verify_signature

    def counted(k: bytes, s: bytes, m: bytes) -> bool:
        here.append(m)
        return real(k, s, m)

    monkeypatch.setattr(eventcheck, "verify_signature", counted)
    monkeypatch.setattr(eventcheck, "SIG_BATCH", 2)
    with Ledger.open(case, write=False) as led:
        report = verify_ledger(led, quick=True, parallel=True)
    assert report.ok, report.findings
    assert report.events == 37
    assert here == []
