"""Attacks on imports recorded by item (r17): someone who can write the case's
files but holds no key edits rows of custody.db with sqlite3 (re-points an item's
import event to another group, drops the bundle-level event, gives fields hostile
types, changes an imported source event), swaps a store object; an insider with
another registered key forges a member of a group.  Each attack: the exit code
and finding kind a user sees, never a traceback, and no item the attack names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, Case, new_key, ok_json
from tampering import append_unchecked, bypass, q, sqlite_ok
from test_import_by_item import _import_bodies, _world

from custody.canonical import content_hash
from custody.keys import load_signer
from custody.ledger import Ledger


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _world(tmp_path_factory.mktemp("attack_import"))


@pytest.fixture
def lab(world: dict[str, Any], tmp_path: Path) -> Case:
    d = tmp_path / "lab"
    shutil.copytree(world["lab"].dir, d)
    return Case(dir=d, key=world["lab"].key, run=world["run"])


def _db(lab: Case) -> Path:
    return lab.dir / "custody.db"


def _verify(lab: Case) -> tuple[int, list[tuple[str, str]], str]:
    proc = lab("verify", "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout, (proc.returncode, proc.stderr)
    doc = json.loads(proc.stdout)
    return proc.returncode, [(f["kind"], f["subject"]) for f in doc["findings"]], proc.stdout


def _body(lab: Case, seq: int) -> str:
    return sqlite_ok(_db(lab), f"SELECT body FROM events WHERE seq = {seq};").rstrip("\n")


def _edit(lab: Case, seq: int, new_body: str, *, rehash: bool = False) -> None:
    """Rewrite event ``seq``'s body without the key (and, with ``rehash``, its hash
    column too, as a careful forger would)."""
    sets = f"body = {q(new_body)}"
    if rehash:
        sets += f", hash = {q(content_hash(new_body.encode()))}"
    bypass(_db(lab), "events", f"UPDATE events SET {sets} WHERE seq = {seq};")


# how a member's body is rewritten (GID: its group's id "IMPORT-<h>"; SEQ: its own seq)
MEMBER_EDITS = {
    "re-pointed to a non-import event": ('"import":"GID"', '"import":"IMPORT-0"'),
    "re-pointed to itself": ('"import":"GID"', '"import":"IMPORT-SEQ"'),
    "re-pointed to a later event": ('"import":"GID"', '"import":"IMPORT-99"'),
    "import id with Arabic-Indic digits": ('"import":"GID"', '"import":"IMPORT-\u0661"'),
    "import id a list": ('"import":"GID"', '"import":["GID"]'),
    "import id an integer": ('"import":"GID"', '"import":1'),
    "item an integer": ('"item":"', '"item":5,"x":"'),
    "item a list": ('"item":"', '"item":["a"],"x":"'),
    "item an object": ('"item":"', '"item":{"a":1},"x":"'),
    "source item null": ('"source_item":"', '"source_item":null,"x":"'),
    "store a path out of the store": ('"store":"', '"store":"../../../../../etc/passwd","x":"'),
    "sha256 an object": ('"sha256":"', '"sha256":{"a":1},"x":"'),
}


@pytest.mark.parametrize(("old", "new"), MEMBER_EDITS.values(), ids=MEMBER_EDITS.keys())
@pytest.mark.parametrize("rehash", [False, True], ids=["hash kept", "hash recomputed"])
def test_an_item_import_event_edited_without_the_key(
    lab: Case, world: dict[str, Any], old: str, new: str, rehash: bool
) -> None:
    (head_seq, _), (seq, _), *_ = _import_bodies(lab)
    gid = f"IMPORT-{head_seq}"
    body = _body(lab, seq)
    old, new = (x.replace("GID", gid).replace("SEQ", str(seq)) for x in (old, new))
    assert old in body
    _edit(lab, seq, body.replace(old, new, 1), rehash=rehash)
    code, kinds, _ = _verify(lab)  # no traceback, no internal error (exit 3)
    assert code == 1
    assert ("signature", f"event {seq}") in kinds
    assert rehash or ("event-hash", f"event {seq}") in kinds, kinds
    assert all(isinstance(s, str) for _, s in kinds)  # verify-report.schema: a string
    assert not [k for k in kinds if k[1] == "None"]  # no bundle 'None' the event never named
    names = {i["id"] for i in ok_json(lab, "list", "--json")}
    assert names <= {world["item"], *world["others"]} and len(names) >= 2  # no new name


ROOT = "A" * 43 + "="  # base64 of 32 bytes
HEAD_EDITS = {
    "checkpoint size in superscript digits": ("checkpoint", f"custody/NC-001\n\u00b2\n{ROOT}\n"),
    "checkpoint size in Arabic-Indic digits": ("checkpoint", f"custody/NC-001\n\u0663\n{ROOT}\n"),
    "checkpoint size of 5000 digits": ("checkpoint", f"custody/NC-001\n{'9' * 5000}\n{ROOT}\n"),
    "checkpoint an integer": ("checkpoint", 5),
    "trust a list": ("trust", []),
    "trust signers a list": ("trust", {"anchors": [], "signers": ["x"]}),
    "consistency_from garbage": ("consistency_from", [{"size": "x", "proof": 5}]),
    "consistency garbage": ("consistency", {"size": 10**30, "proof": ["zz"]}),
    "keys an integer": ("keys", 5),
    "events a string": ("events", "3"),
    "source_case a list": ("source_case", ["NC-001"]),
    "items added": ("items", [{"source_item": "ITEM-9", "sha256": "0" * 64}]),
}


@pytest.mark.parametrize(("field", "value"), HEAD_EDITS.values(), ids=HEAD_EDITS.keys())
def test_the_bundle_level_import_event_edited_without_the_key(
    lab: Case, world: dict[str, Any], field: str, value: Any
) -> None:
    ((head_seq, _), *_) = _import_bodies(lab)
    body = json.loads(_body(lab, head_seq))
    body["data"][field] = value
    _edit(lab, head_seq, json.dumps(body, separators=(",", ":"), sort_keys=True), rehash=True)
    code, kinds, _ = _verify(lab)
    assert code == 1
    assert ("signature", f"event {head_seq}") in kinds
    assert all(isinstance(s, str) for _, s in kinds)
    names = {i["id"] for i in ok_json(lab, "list", "--json")}
    assert names <= {world["item"], *world["others"]}


def test_the_bundle_level_event_dropped_without_the_key(lab: Case, world: dict[str, Any]) -> None:
    """The row goes: the chain breaks there, and the items' events have no group
    (each one a finding), so no imported item is shown."""
    ((head_seq, _), *members) = _import_bodies(lab)
    bypass(_db(lab), "events", f"DELETE FROM events WHERE seq = {head_seq};")
    code, kinds, _ = _verify(lab)
    assert code == 1
    assert ("chain-gap", f"event {head_seq + 1}") in kinds
    assert {("import", f"event {seq}") for seq, _ in members} <= set(kinds)
    assert ok_json(lab, "list", "--json") == []


def test_an_imported_object_swapped_in_the_store(lab: Case, world: dict[str, Any]) -> None:
    item = next(i for i in ok_json(lab, "list", "--json") if i["id"] == world["item"])
    obj = lab.dir / "store" / item["store"]
    obj.chmod(0o600)
    obj.write_bytes(b"Jan 12 03:14:07 sshd: nothing happened\n")
    code, kinds, _ = _verify(lab)
    assert (code, kinds) == (1, [("object-digest", f"imported {world['item']} ({item['store']})")])


def test_an_imported_source_event_edited_without_the_key(lab: Case, world: dict[str, Any]) -> None:
    """The source's collect event as kept in imported_events, its path changed."""
    rows = sqlite_ok(
        _db(lab),
        "SELECT seq, body FROM imported_events WHERE body LIKE '%exhibit-auth%'"
        ' AND body LIKE \'%"type":"collect"%\';',
    )
    seq, _, body = rows.strip().partition("|")
    new = body.replace("exhibit-auth.log", "exhibit-auth.lob")
    bypass(
        _db(lab),
        "imported_events",
        f"UPDATE imported_events SET body = {q(new)} WHERE seq = {seq};",
    )
    code, kinds, _ = _verify(lab)
    assert code == 1
    assert kinds and all(
        k == "import" and s.startswith(f"imported event {seq} of ") for k, s in kinds
    )


def test_a_member_forged_by_another_key(lab: Case, world: dict[str, Any], tmp_path: Path) -> None:
    """Someone with a key of their own (unknown to the case) appends an item's
    event to the import's group, consecutive, naming a fourth item."""
    (_, *members) = _import_bodies(lab)
    mallory = tmp_path / "mallory.pem"
    new_key(lab.run, mallory, "Mallory", "collector", default=False)
    member = members[-1][1]
    label = member["item"].rpartition("/")[0]
    forged = {**member, "source_item": "ITEM-4", "item": label + "/ITEM-4"}
    with Ledger.open(lab.dir) as ledger:
        seq = append_unchecked(ledger, load_signer(mallory, PASSPHRASE.encode()), "import", forged)
    code, kinds, _ = _verify(lab)
    assert code == 1
    assert ("unknown-signer", f"event {seq}") in kinds
    # the group's first event, signed by the lab's key, is not said to import ITEM-4
    assert [k for k in kinds if k[0] == "import"] == []
    assert len(ok_json(lab, "list", "--json")) == 3
