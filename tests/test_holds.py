"""Legal holds (issue 18 §5) in the one rules function: the writer refuses what
verify reports, for an event forced past the gate."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_authority_ledger import Case

from custody.errors import CustodyRuleError, UsageError
from custody.findings import Kind
from custody.writers import lifecycle_event, set_hold


@pytest.fixture
def c(tmp_path: Path) -> Case:
    return Case(tmp_path)


def _refused(kind: Kind, fn: object, *args: object, **kw: object) -> str:
    with pytest.raises(CustodyRuleError) as e:
        fn(*args, **kw)  # type: ignore[operator]
    assert [f.kind for f in e.value.findings] == [kind]
    return e.value.message


def test_a_held_item_may_not_be_purged_until_released(c: Case) -> None:
    evs = set_hold(c.led, c.dana, ["ITEM-1"], "litigation hold")
    assert [(e.type, e.data["items"]) for e in evs] == [("hold.set", ["ITEM-1"])]
    msg = _refused(
        Kind.LIFECYCLE, lifecycle_event, c.led, c.dana, "dispose", ["ITEM-1"], "x", "", True
    )
    assert f"ITEM-1 is under a legal hold since event {evs[0].seq}" in msg
    assert (c.led.store_dir).exists()
    # a purge forced past the gate is a finding of verify at that event
    seq = c.force(
        c.dana, "dispose", {"items": ["ITEM-1"], "reason": "x", "location": "", "purge": True}
    )
    assert (Kind.LIFECYCLE.kind, seq) in c.findings()


def test_one_event_per_item_grouped_by_a_hold_id(c: Case) -> None:
    evs = set_hold(c.led, c.dana, ["ITEM-1", "ITEM-2"], "hold")
    assert [e.data["items"] for e in evs] == [["ITEM-1"], ["ITEM-2"]]
    assert evs[0].data["hold"] == evs[1].data["hold"]
    assert evs[0].data["hold"].startswith("HOLD-")


def test_only_the_setter_or_the_owner_releases(c: Case) -> None:
    ev = set_hold(c.led, c.kim, ["ITEM-2"], "hold")[0]
    msg = _refused(Kind.AUTHORITY, set_hold, c.led, c.lee, ["ITEM-2"], "r", release=True)
    assert f"may not release the hold of event {ev.seq}" in msg
    seq = c.force(c.lee, "hold.release", {"items": ["ITEM-2"], "hold": "HOLD-x", "reason": "r"})
    assert (Kind.AUTHORITY.kind, seq) in c.findings()
    # the forced release had no effect: the hold still stands against a purge
    _refused(Kind.LIFECYCLE, lifecycle_event, c.led, c.dana, "dispose", ["ITEM-2"], "x", "", True)
    set_hold(c.led, c.dana, ["ITEM-2"], "owner ends it", release=True)  # the owner may
    lifecycle_event(c.led, c.dana, "dispose", ["ITEM-2"], "x", "", True)


def test_double_holds_unknown_items_and_empty_reasons(c: Case) -> None:
    set_hold(c.led, c.dana, ["ITEM-1"], "hold")
    _refused(Kind.LIFECYCLE, set_hold, c.led, c.dana, ["ITEM-1"], "again")
    with pytest.raises(UsageError, match="no such item: ITEM-99"):
        set_hold(c.led, c.dana, ["ITEM-99"], "hold")
    with pytest.raises(UsageError, match="--reason is required"):
        set_hold(c.led, c.dana, ["ITEM-1"], "  ")
    _refused(Kind.LIFECYCLE, set_hold, c.led, c.dana, ["ITEM-2"], "r", release=True)
    seq = c.force(c.dana, "hold.set", {"items": ["ITEM-1", "ITEM-2"], "hold": "H", "reason": "r"})
    assert (Kind.LIFECYCLE.kind, seq) in c.findings()
