"""Authority bound to keys (custody rules 2), library level.

Each attack of issue 12 twice: through the writer, which refuses it (exit 2,
carrying the finding), and written straight into the ledger past the writers' gate,
where ``verify`` reports the same finding at that event, and the act has no effect.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tampering import append_unchecked

from custody.collect import collect
from custody.errors import CustodyRuleError, UsageError
from custody.findings import Kind
from custody.keys import Identity, Signer
from custody.ledger import Ledger, identity_draft, owner_draft
from custody.lifecycle import rotation_statement
from custody.verify import verify_ledger
from custody.writers import (
    lifecycle_event,
    reassign,
    receive,
    replace_owner,
    revoke_key,
    rotate_key,
    transfer,
)


def _signer(name: str, role: str) -> Signer:
    return Signer(Ed25519PrivateKey.generate(), name, role)


class Case:
    def __init__(self, root: Path, recovery: Signer | None = None) -> None:
        self.dana = _signer("Dana Reyes", "collector")
        self.lee = _signer("Lee Okafor", "counsel")
        self.kim = _signer("Kim Ng", "examiner")
        self.recovery = recovery
        self.led = Ledger.create(
            root / "case",
            "R-12",
            "authority",
            owner=self.dana,
            recovery=recovery.identity if recovery else None,
        )
        for name in ("a.txt", "b.txt"):
            (root / name).write_text(f"bytes of {name}\n")
        collect(
            self.led,
            self.dana,
            [str(root / n) for n in ("a.txt", "b.txt")],
            reason="r",
            algorithms=["sha256"],
        )
        self.led.register_identity(self.dana, self.lee.identity)
        self.led.register_identity(self.dana, self.kim.identity)

    def force(self, signer: Signer, type_: str, data: dict[str, Any]) -> int:
        """Append a correctly chained, signed and indexed event past the gate."""
        return append_unchecked(self.led, signer, type_, data)

    def self_register(self, signer: Signer) -> int:
        d = identity_draft(signer.identity)
        return self.force(signer, d.type, d.data)

    def findings(self) -> list[tuple[str, int | None]]:
        return [(f.kind, f.seq) for f in verify_ledger(self.led, quick=True).findings]

    def size(self) -> int:
        return self.led.event_count()


@pytest.fixture
def c(tmp_path: Path) -> Case:
    case = Case(tmp_path)
    assert case.findings() == []
    return case


def _refused(kind: Kind, fn: Any, *args: Any, **kw: Any) -> None:
    with pytest.raises(CustodyRuleError) as e:
        fn(*args, **kw)
    assert [f.kind for f in e.value.findings] == [kind]
    assert e.value.exit_code == 2
    assert f"[{kind}]" in e.value.message


def test_case_opens_with_its_owner(c: Case) -> None:
    first = next(c.led.events())
    assert (first.seq, first.type, first.signer) == (0, "case.open", c.dana.fingerprint)
    assert first.data["owner"]["fingerprint"] == c.dana.fingerprint
    assert c.led.case.rules == 2
    r = c.led.rules().current()
    assert (r.owner, r.standing(c.lee.fingerprint)) == (c.dana.fingerprint, "attested")


def test_examiner_may_not_revoke_the_owner(c: Case) -> None:
    n = c.size()
    _refused(Kind.AUTHORITY, revoke_key, c.led, c.kim, c.dana.fingerprint, "take over")
    assert c.size() == n
    seq = c.force(c.kim, "key.revoke", {"fingerprint": c.dana.fingerprint, "reason": "x"})
    assert c.findings() == [(Kind.AUTHORITY, seq)]
    # no effect: the owner still seals, and that is no revoked-key finding
    lifecycle_event(c.led, c.dana, "seal", ["ITEM-1"], "bag 42")
    assert c.findings() == [(Kind.AUTHORITY, seq)]


def test_self_registered_key_may_not_revoke_counsel(c: Case) -> None:
    mallory = _signer("Mallory", "intruder")
    lifecycle_event(c.led, mallory, "note", ["ITEM-1"], "just looking")  # allowed: a note
    assert c.led.rules().current().standing(mallory.fingerprint) == "self-asserted"
    _refused(Kind.AUTHORITY, revoke_key, c.led, mallory, c.lee.fingerprint, "x")
    t = transfer(c.led, c.dana, ["ITEM-1"], "Lee Okafor", "to counsel")
    seq = c.force(mallory, "key.revoke", {"fingerprint": c.lee.fingerprint, "reason": "x"})
    assert c.findings() == [(Kind.AUTHORITY, seq)]
    receive(c.led, c.lee, f"TRANSFER-{t.seq}")  # the hand-over can still be received
    assert c.findings() == [(Kind.AUTHORITY, seq)]


def test_owner_and_self_may_revoke(c: Case) -> None:
    revoke_key(c.led, c.kim, c.kim.fingerprint, "my laptop was lost")
    revoke_key(c.led, c.dana, c.lee.fingerprint, "left the firm")
    assert c.findings() == []


def test_forged_rotation_of_the_owner_is_not_obeyed(c: Case) -> None:
    kim2 = _signer("Kim Ng", "examiner")
    pub = kim2.identity.public_b64
    stmt = rotation_statement("R-12", c.dana.fingerprint, kim2.fingerprint, pub)
    data = {
        "old": c.dana.fingerprint,
        "new": kim2.fingerprint,
        "public_key": pub,
        "name": "Dana Reyes",
        "role": "collector",
        "algorithm": "ed25519",
        "cosignature": base64.b64encode(kim2.sign(stmt)).decode("ascii"),
    }
    seq = c.force(c.kim, "key.rotate", data)
    assert c.findings() == [(Kind.ROTATION, seq)]
    r = c.led.rules().current()
    assert r.owner == c.dana.fingerprint and kim2.fingerprint not in r.keys
    # the owner is not locked out; the forger's new key releases nothing
    lifecycle_event(c.led, c.dana, "seal", ["ITEM-1"], "bag 42")
    t = c.force(
        kim2,
        "transfer",
        {
            "items": ["ITEM-2"],
            "to": c.kim.fingerprint,
            "reason": "x",
            "location": "",
            "to_name": "",
            "digests": {},
        },
    )
    assert (Kind.UNKNOWN_SIGNER, t) in c.findings()


def test_rotation_retires_the_old_key(c: Case) -> None:
    dana2 = _signer("Dana Reyes", "collector")
    rotate_key(c.led, c.dana, dana2)
    r = c.led.rules().current()
    assert r.owner == dana2.fingerprint and r.holder_of("dana reyes") == dana2.fingerprint
    seq = c.force(c.dana, "note", {"items": ["ITEM-1"], "reason": "old key", "location": ""})
    assert c.findings() == [(Kind.REVOKED_KEY, seq)]
    lifecycle_event(c.led, dana2, "seal", ["ITEM-1"], "custody follows the rotation")


def test_outsider_under_the_owners_name_holds_nothing(c: Case) -> None:
    fake = _signer("Dana Reyes", "collector")
    lifecycle_event(c.led, fake, "note", ["ITEM-1"], "hello")
    r = c.led.rules().current()
    assert r.standing(fake.fingerprint) == "self-asserted"
    assert r.holder_of("Dana Reyes") == c.dana.fingerprint
    # its collect is refused, and forced it is reported and creates no item
    with pytest.raises(CustodyRuleError) as e:
        collect(
            c.led, fake, [str(c.led.case_dir.parent / "a.txt")], reason="r", algorithms=["sha256"]
        )
    assert {f.kind for f in e.value.findings} == {Kind.AUTHORITY}
    seq = c.force(fake, "seal", {"items": ["ITEM-1"], "reason": "x", "location": ""})
    assert c.findings() == [(Kind.AUTHORITY, seq)]
    # a hand-over by name goes to the owner's key, never to the look-alike
    t = transfer(c.led, c.dana, ["ITEM-2"], "Lee Okafor", "x")
    assert t.data["to"] == c.lee.fingerprint
    _refused(Kind.TRANSFER, transfer, c.led, c.dana, ["ITEM-1"], fake.fingerprint, "x")


@pytest.mark.parametrize("name", ["Lee Okafor", "lee  OKAFOR", " Ｌｅｅ Okafor "])
def test_a_held_name_cannot_be_attested_again(c: Case, name: str) -> None:
    other = _signer(name, "counsel")
    _refused(Kind.NAME, c.led.register_identity, c.dana, other.identity)
    d = identity_draft(other.identity, attested=True)
    seq = c.force(c.dana, d.type, d.data)
    assert c.findings() == [(Kind.NAME, seq)]


def test_name_is_free_again_after_revocation(c: Case) -> None:
    revoke_key(c.led, c.dana, c.lee.fingerprint, "left")
    lee2 = _signer("Lee Okafor", "counsel")
    assert c.led.register_identity(c.dana, lee2.identity) is not None
    assert c.findings() == []


def test_only_owner_and_delegates_attest(c: Case) -> None:
    sam = _signer("Sam Holt", "examiner")
    _refused(Kind.AUTHORITY, c.led.register_identity, c.kim, sam.identity)
    d = identity_draft(sam.identity, attested=True)
    seq = c.force(c.kim, d.type, d.data)
    assert c.findings() == [(Kind.AUTHORITY, seq)]
    assert sam.fingerprint not in c.led.rules().current().attested_by


def test_delegation_is_one_level(c: Case) -> None:
    lab = _signer("Lab Intake", "examiner")
    c.led.register_identity(c.dana, lab.identity, delegate=True)
    sam, eve = _signer("Sam Holt", "examiner"), _signer("Eve Park", "examiner")
    c.led.register_identity(lab, sam.identity)  # a delegate attests
    _refused(Kind.AUTHORITY, c.led.register_identity, lab, eve.identity, delegate=True)
    assert c.led.rules().current().standing(sam.fingerprint) == "attested"
    assert c.findings() == []


def test_only_attested_keys_receive(c: Case) -> None:
    mallory = _signer("Mallory", "intruder")
    c.self_register(mallory)
    data = {
        "items": ["ITEM-1"],
        "to": mallory.fingerprint,
        "to_name": "Mallory",
        "reason": "x",
        "location": "",
        "digests": {},
    }
    _refused(Kind.TRANSFER, transfer, c.led, c.dana, ["ITEM-1"], mallory.fingerprint, "x")
    seq = c.force(c.dana, "transfer", data)
    assert c.findings() == [(Kind.TRANSFER, seq)]


def test_reassign_items_of_a_revoked_key(c: Case) -> None:
    t = transfer(c.led, c.dana, ["ITEM-1"], "Lee Okafor", "to counsel")
    _refused(Kind.LIFECYCLE, reassign, c.led, c.dana, ["ITEM-1"], "Kim Ng", "lee is fine")
    revoke_key(c.led, c.lee, c.lee.fingerprint, "laptop stolen")
    _refused(Kind.AUTHORITY, reassign, c.led, c.kim, ["ITEM-1"], "Kim Ng", "mine now")
    reassign(c.led, c.dana, ["ITEM-1"], "Kim Ng", "counsel's key was stolen in transit")
    st = c.led.rules().current().items["ITEM-1"]
    assert (st.state, st.custodian) == ("collected", c.kim.fingerprint)
    lifecycle_event(c.led, c.kim, "seal", ["ITEM-1"], "sealed by the examiner")
    assert c.findings() == []
    with pytest.raises(UsageError):
        receive(c.led, c.lee, f"TRANSFER-{t.seq}")  # the revoked key signs nothing


def test_recovery_key_revokes_or_replaces_the_owner_only(tmp_path: Path) -> None:
    rec = _signer("Dana Reyes (recovery)", "recovery")
    c = Case(tmp_path, recovery=rec)
    assert c.led.rules().current().standing(rec.fingerprint) == "recovery"
    _refused(Kind.AUTHORITY, lifecycle_event, c.led, rec, "note", ["ITEM-1"], "hi")
    _refused(Kind.AUTHORITY, c.led.register_identity, rec, _signer("X Y", "z").identity)
    _refused(Kind.AUTHORITY, revoke_key, c.led, rec, c.lee.fingerprint, "x")
    revoke_key(c.led, rec, c.dana.fingerprint, "owner's key compromised")
    dana2 = _signer("Dana Reyes", "collector")
    replace_owner(c.led, rec, dana2)
    r = c.led.rules().current()
    assert r.owner == dana2.fingerprint and r.holder_of("Dana Reyes") == dana2.fingerprint
    lifecycle_event(c.led, dana2, "seal", ["ITEM-1"], "the new owner key holds the items")
    assert c.findings() == []


def test_first_event_must_open_the_case(tmp_path: Path) -> None:
    dana = _signer("Dana Reyes", "collector")
    led = Ledger.create(tmp_path / "case", "R-12", "no owner yet")
    d = identity_draft(dana.identity)
    led._begin()
    ev = led._insert(dana, 0, led.case.hash, d, None)
    led._index(ev, d)
    led.conn.execute("COMMIT")
    assert [(f.kind, f.seq) for f in verify_ledger(led, quick=True).findings] == [
        (Kind.AUTHORITY, 0)
    ]
    # a second case.open later is reported too
    o = owner_draft(dana.identity)
    led._begin()
    ev = led._insert(dana, 1, ev.hash, o, None)
    led._index(ev, o)
    led.conn.execute("COMMIT")
    assert (Kind.AUTHORITY, 1) in [(f.kind, f.seq) for f in verify_ledger(led).findings]


def test_the_first_signer_of_an_ownerless_case_becomes_owner(tmp_path: Path) -> None:
    dana = _signer("Dana Reyes", "collector")
    led = Ledger.create(tmp_path / "case", "R-12", "library default")
    lifecycle_event_less = led.register_identity(dana, _signer("Lee Okafor", "c").identity)
    assert lifecycle_event_less is not None
    first = next(led.events())
    assert (first.type, first.signer) == ("case.open", dana.fingerprint)
    assert [f.kind for f in verify_ledger(led, quick=True).findings] == []


def _set_header(db: Path, **fields: Any) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    header = json.loads(conn.execute("SELECT header FROM case_info").fetchone()[0])
    header.update(fields)
    conn.execute("DROP TRIGGER case_info_no_update")
    conn.execute("UPDATE case_info SET header = ?", (json.dumps(header),))
    conn.close()


def test_unknown_rules_version_refused_before_writing(tmp_path: Path) -> None:
    led = Ledger.create(tmp_path / "case", "R-12", "future")
    led.close()
    db = tmp_path / "case" / "custody.db"
    _set_header(db, rules=3)
    before = db.read_bytes()
    with pytest.raises(UsageError, match="rules=3"):
        Ledger.open(tmp_path / "case")
    assert db.read_bytes() == before


def test_rules_1_case_judged_by_rules_1(tmp_path: Path) -> None:
    """A case made before rules were versioned: anyone could revoke anyone, and
    verify says which rules it applied."""
    led = Ledger.create(tmp_path / "case", "R-1", "old")
    led.close()
    db = tmp_path / "case" / "custody.db"
    conn = sqlite3.connect(db, isolation_level=None)
    header = json.loads(conn.execute("SELECT header FROM case_info").fetchone()[0])
    del header["rules"]
    from custody.canonical import canonical_json, content_hash

    text = canonical_json(header).decode()
    conn.execute("DROP TRIGGER case_info_no_update")
    conn.execute("UPDATE case_info SET header = ?, hash = ?", (text, content_hash(text.encode())))
    conn.close()
    led = Ledger.open(tmp_path / "case")
    assert led.case.rules == 1
    dana, kim = _signer("Dana Reyes", "collector"), _signer("Kim Ng", "examiner")
    led.register_identity(dana, kim.identity)
    revoke_key(led, kim, dana.fingerprint, "allowed under rules 1")
    report = verify_ledger(led, quick=True)
    assert report.findings == []
    assert any("rules version 1" in n for n in report.notes)
    assert next(led.events()).type == "identity"


def test_imported_key_signature_counts_only_when_attested(c: Case) -> None:
    """Identity(self) of a key later attested by the owner: it becomes attested and
    takes the attested name (the derived table keeps the first row)."""
    sam = _signer("Samuel", "examiner")
    lifecycle_event(c.led, sam, "note", ["ITEM-1"], "hello")
    c.led.register_identity(c.dana, Identity("Sam Holt", "examiner", sam.identity.public_raw))
    r = c.led.rules().current()
    assert (r.standing(sam.fingerprint), r.names[sam.fingerprint][0]) == ("attested", "Sam Holt")
    assert c.findings() == []
