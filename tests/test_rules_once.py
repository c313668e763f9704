"""A custody rule is written once: the writers refuse exactly what verify reports.

Each writer (transfer, receive, lifecycle events, rotate, revoke) applies the
replay's own step to its draft and refuses on any violation; the refusal carries
the findings.  The same event forced into the ledger past the writer is reported
by ``verify`` with the same kind (library-level, fast)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tampering import append_unchecked

from custody.collect import collect
from custody.errors import CustodyRuleError
from custody.findings import Kind, Step, steps
from custody.keys import Signer
from custody.ledger import Ledger
from custody.verify import verify_ledger
from custody.writers import lifecycle_event, receive, revoke_key, rotate_key, transfer


def _signer(name: str, role: str) -> Signer:
    return Signer(Ed25519PrivateKey.generate(), name, role)


@pytest.fixture
def case(tmp_path: Path) -> tuple[Ledger, Signer, Signer]:
    led = Ledger.create(tmp_path / "case", "R-11", "rules once")
    dana, lee = _signer("Dana Reyes", "collector"), _signer("Lee Okafor", "counsel")
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(f"bytes of {name}\n")
    collect(
        led,
        dana,
        [str(tmp_path / n) for n in ("a.txt", "b.txt")],
        reason="r",
        algorithms=["sha256"],
    )
    led.register_identity(dana, lee.identity)
    return led, dana, lee


def _kinds(led: Ledger) -> list[tuple[str, int | None]]:
    return [(f.kind, f.seq) for f in verify_ledger(led, quick=True).findings]


def test_transfer_to_a_rotated_key_by_full_fingerprint_is_refused(
    case: tuple[Ledger, Signer, Signer],
) -> None:
    """Defect: the writer resolved a full fingerprint without asking whether the
    key was retired; verify then failed the case for good."""
    led, dana, lee = case
    lee2 = _signer("Lee Okafor", "counsel")
    rotate_key(led, lee, lee2)
    assert _kinds(led) == []
    with pytest.raises(CustodyRuleError) as e:
        transfer(led, dana, ["ITEM-1"], lee.fingerprint, "hand-over")
    assert [f.kind for f in e.value.findings] == [Kind.TRANSFER]
    assert e.value.exit_code == 2
    assert _kinds(led) == []  # nothing was written
    # By name, the live key is the one named, and verify agrees.
    ev = transfer(led, dana, ["ITEM-1"], "Lee Okafor", "hand-over")
    assert ev.data["to"] == lee2.fingerprint
    assert _kinds(led) == []


def test_refused_transfer_is_what_verify_reports_when_forced(
    case: tuple[Ledger, Signer, Signer],
) -> None:
    led, dana, lee = case
    lee2 = _signer("Lee Okafor", "counsel")
    rotate_key(led, lee, lee2)
    data = {
        "items": ["ITEM-1"],
        "to": lee.fingerprint,
        "to_name": "Lee Okafor",
        "reason": "x",
        "location": "",
        "digests": {},
    }
    with pytest.raises(CustodyRuleError) as e:
        transfer(led, dana, ["ITEM-1"], lee.fingerprint, "x")
    seq = append_unchecked(led, dana, "transfer", data)
    assert _kinds(led) == [(f.kind, seq) for f in e.value.findings]


@pytest.mark.parametrize("action", ["seal", "access", "dispose", "release"])
def test_lifecycle_by_a_non_holder_refused_and_reported_alike(
    case: tuple[Ledger, Signer, Signer], action: str
) -> None:
    led, _dana, lee = case
    with pytest.raises(CustodyRuleError) as e:
        lifecycle_event(led, lee, action, ["ITEM-2"], "not mine")
    assert [f.kind for f in e.value.findings] == [Kind.LIFECYCLE]
    assert [f.item for f in e.value.findings] == ["ITEM-2"]
    data: dict[str, Any] = {"items": ["ITEM-2"], "reason": "not mine", "location": ""}
    if action == "dispose":
        data["purge"] = False
    seq = append_unchecked(led, lee, action, data)
    assert _kinds(led) == [(Kind.LIFECYCLE, seq)]


def test_receive_by_someone_else_and_twice_refused_alike(
    case: tuple[Ledger, Signer, Signer],
) -> None:
    led, dana, lee = case
    t = transfer(led, dana, ["ITEM-1"], "Lee Okafor", "hand-over")
    with pytest.raises(CustodyRuleError) as e:
        receive(led, dana, f"TRANSFER-{t.seq}")
    assert [f.kind for f in e.value.findings] == [Kind.RECEIPT]
    receive(led, lee, f"TRANSFER-{t.seq}")
    with pytest.raises(CustodyRuleError) as e:
        receive(led, lee, f"TRANSFER-{t.seq}")
    assert [f.kind for f in e.value.findings] == [Kind.RECEIPT]
    assert _kinds(led) == []


def test_rotate_twice_and_revoke_twice_refused_alike(
    case: tuple[Ledger, Signer, Signer],
) -> None:
    led, dana, lee = case
    revoke_key(led, dana, lee.fingerprint, "lost laptop")
    with pytest.raises(CustodyRuleError) as e:
        revoke_key(led, dana, lee.fingerprint, "again")
    assert [f.kind for f in e.value.findings] == [Kind.REVOCATION]
    seq = append_unchecked(
        led, dana, "key.revoke", {"fingerprint": lee.fingerprint, "reason": "again"}
    )
    assert _kinds(led) == [(Kind.REVOCATION, seq)]


def test_every_kind_has_one_documented_step() -> None:
    listed = [k for _, kinds in steps() for k in kinds]
    assert sorted(listed) == sorted(Kind)  # each kind in exactly one step
    assert len(Kind) == 51  # 45 in issue 11, authority and name in 12, object-unrecorded in 13,
    # vault-missing, vault-content and vault-retention in 18
    assert [s.value for s, _ in steps()] == [s.value for s in Step]
    # the four kinds the report's step table once missed
    for k in ("event", "event-duplicate", "event-extra", "event-withheld"):
        assert Kind(k).step is Step.CHAIN


def test_schemas_list_exactly_the_finding_kinds_and_steps() -> None:
    """The JSON Schemas name the kinds and steps custody.findings defines, no more."""
    import json

    root = Path(__file__).resolve().parents[1] / "schemas"
    kinds = sorted(k.kind for k in Kind)
    found: list[list[str]] = []
    steps_found: list[list[str]] = []

    def walk(o: Any) -> None:
        if isinstance(o, dict):
            props = o.get("properties")
            if isinstance(props, dict) and {"kind", "subject", "detail"} <= props.keys():
                found.append(sorted(props["kind"]["enum"]))
            if isinstance(props, dict) and "step" in props:
                steps_found.append(props["step"]["enum"])
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    for name in ("verify-report.schema.json", "report.schema.json"):
        walk(json.loads((root / name).read_text(encoding="utf-8")))
    assert found == [kinds, kinds]
    assert steps_found == [[s.value for s in Step]]


def test_finding_kinds_table_in_docs_is_generated_from_the_code() -> None:
    """Equivalent to ``cog --check docs/exit-codes.md`` (run from the project root)."""
    import os

    cogapp = pytest.importorskip("cogapp", reason="cogapp is in the test extra")
    root = Path(__file__).resolve().parents[1]
    cwd = Path.cwd()
    os.chdir(root)
    try:
        assert cogapp.Cog().main(["cog", "--check", "docs/exit-codes.md"]) == 0
    finally:
        os.chdir(cwd)
