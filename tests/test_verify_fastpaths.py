"""The shortcuts of verify's serial pass (issue 16) change no finding.

- check_tree compares the ordered stored nodes with the re-derived ones before
  building dicts: a changed, missing, extra or mistyped node is still found;
- the signature column is decoded by one rule (``eventcheck.signature_bytes``)
  for the serial pass and for the workers' guess: strict base64 only;
- signed bodies take the parser's fast path unless a 16-digit run could hold an
  integer beyond 2^53-1: a body signed by the case's own key but not canonical
  (a huge integer, a duplicate key) is still an ``event-noncanonical`` finding,
  and digits in a string are no false alarm;
- the cyclic garbage collector is paused during a verification and restored
  after it, also when it fails.
"""

from __future__ import annotations

import base64
import binascii
import gc
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.canonical import content_hash
from custody.errors import CorruptLedgerError
from custody.eventcheck import signature_bytes
from custody.keys import Signer
from custody.ledger import EventDraft, Ledger
from custody.verify import verify_ledger
from tests.tampering import bypass, q, sqlite_ok
from tests.test_verify_parallel import _both, _copy, _kinds, template

__all__ = ["template"]  # the fixture, shared with test_verify_parallel


def _db(case: Path) -> Path:
    return case / "custody.db"


def _findings(case: Path) -> list[tuple[str, str, str]]:
    with Ledger.open(case, write=False) as led:
        report = verify_ledger(led, quick=True, parallel=False)
    return [(f.kind, f.subject, f.detail) for f in report.findings]


# -- the stored Merkle nodes -----------------------------------------------------------


NODE_TAMPERS = {
    "changed": (
        "UPDATE merkle_nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = 3;",
        "1 stored tree node(s) differ from the events, first at level 1 index 3: event"
        " bodies changed after they were recorded",
    ),
    "missing": (
        "DELETE FROM merkle_nodes WHERE level = 2 AND idx = 1;",
        "1 stored tree node(s) are missing, first at level 2 index 1",
    ),
    "extra": (
        "INSERT INTO merkle_nodes (level, idx, hash) VALUES (0, 999, zeroblob(32));",
        "1 stored tree node(s) match no event, first at level 0 index 999",
    ),
    # a hash stored as text: a finding like any other change, not a crash
    "text hash": (
        "UPDATE merkle_nodes SET hash = hex(hash) WHERE level = 0 AND idx = 5;",
        "1 stored tree node(s) differ from the events, first at level 0 index 5: event"
        " bodies changed after they were recorded",
    ),
}


@pytest.mark.parametrize("name", sorted(NODE_TAMPERS))
def test_tampered_tree_nodes_found(name: str, template: Path, tmp_path: Path) -> None:
    case = _copy(template, tmp_path)
    assert _findings(case) == []
    sql, detail = NODE_TAMPERS[name]
    bypass(_db(case), "merkle_nodes", sql)
    assert _findings(case) == [("index", "merkle tree", detail)]


# -- the signature column ----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ABCQUJDab+/=\n \t-_é", max_size=12) | st.binary(max_size=9).map(str))
def test_signature_bytes_is_strict_base64(column: str) -> None:
    try:
        want = base64.b64decode(column, validate=True)
    except (binascii.Error, ValueError):
        want = b""
    assert signature_bytes(column) == want


@pytest.mark.parametrize(
    "spoil",
    [
        lambda s: s + "\n",  # lenient base64 would still read the signature
        lambda s: s[:40] + " " + s[40:],
        lambda s: s.rstrip("="),  # unpadded
        lambda s: s + "==",
    ],
    ids=["newline", "space", "unpadded", "extra padding"],
)
def test_a_loosely_encoded_signature_is_a_signature_finding(
    spoil: Any, template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone with write access re-spells a good signature: the same bytes in
    lax base64.  Both paths (serial and workers) refuse it as a signature."""
    case = _copy(template, tmp_path)
    seq = 6
    sig = sqlite_ok(_db(case), f"SELECT signature FROM events WHERE seq = {seq};").strip()
    bypass(_db(case), "events", f"UPDATE events SET signature = {q(spoil(sig))} WHERE seq = {seq};")
    assert _kinds(_both(case, monkeypatch)) == [("signature", seq)]


# -- bodies signed by the case's own key -------------------------------------------------


def _case(tmp_path: Path) -> tuple[Path, Signer]:
    owner = Signer(Ed25519PrivateKey.generate(), "Olive Owner", "owner")
    case = tmp_path / "case"
    with Ledger.create(case, "FAST-1", "fast paths", owner=owner) as led:
        for i in range(3):
            led.append(owner, [EventDraft("note", {"reason": f"note {i}", "items": []})])
        led.append(
            owner,  # 16+ digits in strings: the exact decoder runs, and accepts
            [EventDraft("note", {"reason": "serial 12345678901234567890", "items": []})],
        )
    return case, owner


def _resign_last(case: Path, owner: Signer, spoil: Any) -> int:
    """An insider with the owner's key rewrites the last event's body as
    ``spoil(body text)`` and signs it again: hash, signature and chain are right."""
    with sqlite3.connect(_db(case)) as conn:
        seq, body = conn.execute("SELECT seq, body FROM events ORDER BY seq DESC").fetchone()
    raw = spoil(body).encode("utf-8")
    sig = base64.b64encode(owner.sign(raw)).decode("ascii")
    bypass(
        _db(case),
        ("events", "merkle_nodes"),
        f"UPDATE events SET body = {q(raw.decode())}, hash = {q(content_hash(raw))},"
        f" signature = {q(sig)} WHERE seq = {seq};"
        f"DELETE FROM merkle_nodes;",
    )
    return int(seq)


def test_digits_in_strings_verify_clean(tmp_path: Path) -> None:
    case, _ = _case(tmp_path)
    assert _findings(case) == []


@pytest.mark.parametrize(
    ("spoil", "kind"),
    [
        (lambda b: b.replace('"items":[]', '"items":[9007199254740992]'), "event-noncanonical"),
        (
            lambda b: b.replace('"items":[]', '"items":[123456789012345678901234]'),
            "event-noncanonical",
        ),
        (lambda b: b.replace('"items":[]', '"items":[1.0]'), "event-noncanonical"),
        (lambda b: b.replace("serial", "s\\u0065rial"), "event-noncanonical"),
        # a duplicate key is no JSON a signed body may be (parse_strict says why)
        (lambda b: b.replace('{"case":', '{"case":"other","case":', 1), "event-body"),
    ],
    ids=["2^53", "24 digits", "float", "escape", "duplicate key"],
)
def test_resigned_noncanonical_body_found(spoil: Any, kind: str, tmp_path: Path) -> None:
    """Changing a body breaks the stored tree and the kept checkpoint too."""
    case, owner = _case(tmp_path)
    seq = _resign_last(case, owner, spoil)
    kinds = [(k, s) for k, s, _ in _findings(case)]
    assert kinds[0] == (kind, f"event {seq}")
    assert [k for k, _ in kinds[1:]] == ["index", "checkpoint"]


def test_resigned_canonical_body_is_clean_but_for_the_tree(tmp_path: Path) -> None:
    """The control: the same rewrite, still canonical, is found only by the tree."""
    case, owner = _case(tmp_path)
    _resign_last(case, owner, lambda b: b.replace("serial", "serjal"))
    assert [k for k, _, _ in _findings(case)] == ["index", "checkpoint"]


# -- the garbage collector -----------------------------------------------------------------


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_state_restored(enabled: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case, _ = _case(tmp_path)
    seen: list[bool] = []
    import custody.verify as verify_mod

    real = verify_mod.check_chain

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(verify_mod, "check_chain", spy)
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with Ledger.open(case, write=False) as led:
            assert verify_ledger(led, quick=True).ok
        assert gc.isenabled() is enabled
        assert seen == [False]
    finally:
        (gc.enable if was else gc.disable)()


def test_gc_restored_when_verify_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case, _ = _case(tmp_path)
    import custody.verify as verify_mod

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(verify_mod, "check_chain", broken)
    assert gc.isenabled()
    with Ledger.open(case, write=False) as led, pytest.raises(CorruptLedgerError):
        verify_ledger(led, quick=True)
    assert gc.isenabled()


def test_body_text_round_trips_in_this_module() -> None:
    """The spoilers above edit JSON text the way the writer prints it."""
    body = json.dumps({"case": "X", "data": {"items": []}}, separators=(",", ":"))
    assert '"items":[]' in body and body.startswith('{"case":')
