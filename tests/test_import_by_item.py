"""Issue 14 leftovers: an import is recorded one event per item (ledger-format §7.6),
grouped by an import id, so a re-export of one imported item discloses nothing of
the items imported with it (bundle-format §6.1, §13.2).  Old ledgers, whose import
events list the whole bundle, still verify and re-export (disclosed whole, with a
warning)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, Case, new_key, ok_json, template_case
from tampering import append_unchecked, read_events, retag

from custody.bundle import importer
from custody.keys import load_signer
from custody.ledger import EventDraft, Ledger

FILES = {  # one bundle of three items; only the exhibit is re-exported
    "exhibit-auth.log": b"Jan 12 03:14:07 sshd: accepted password\n" * 5,
    "sibling-payroll.csv": b"id,name,iban\n7,J. Doe,DE00\n",
    "sibling-hr-memo.txt": b"the memo nobody may see\n",
}
EXHIBIT = "exhibit-auth.log"


def _world(root: Path, *, whole: bool = False) -> dict[str, Any]:
    """Dana collects FILES in NC-001 and exports all three in one bundle; the lab
    (Lara) imports it and re-exports the exhibit alone.  ``whole``: the import is
    recorded as custody did before issue 14's leftovers, one event listing every
    item (an old ledger)."""
    c = template_case(root)
    src_dir = root / "src"
    src_dir.mkdir()
    for name, data in FILES.items():
        (src_dir / name).write_bytes(data)
    src = root / "src-case"
    c.run("init", src, "--case-id", "NC-001", "--title", "host1", check=True)
    c.run("collect", *sorted(src_dir.iterdir()), "--reason", "r", cwd=src, check=True)
    c.run("bundle", "export", "--all", "--out", root / "all.tar", cwd=src, check=True)
    lara = root / "lara.pem"
    new_key(c.run, lara, "Lara Lab", "analyst", default=False)
    env = {"CUSTODY_KEY": str(lara)}
    lab = root / "lab"
    c.run("init", lab, "--case-id", "LAB-1", "--title", "lab", env=env, check=True)
    with pytest.MonkeyPatch.context() as mp:
        if whole:
            mp.setattr(importer, "import_drafts", _whole_bundle_drafts)
        c.run(
            "bundle", "import", root / "all.tar", "--trust", root / "dana.pub",
            cwd=lab, env=env, check=True,
        )  # fmt: skip
    items = ok_json(c.run, "list", "--json", cwd=lab, env=env)
    item = next(i["id"] for i in items if EXHIBIT in i["path"])
    c.run("event", "note", item, "--reason", "photographed", cwd=lab, env=env, check=True)
    out = root / "re"
    proc = c.run("bundle", "export", item, "--out", out, cwd=lab, env=env, check=True)
    return {
        "root": root,
        "run": c.run,
        "bag": out,
        "item": item,
        "others": [i["id"] for i in items if i["id"] != item],
        "export": proc,
        "lab": Case(dir=lab, key=lara, run=c.run),
        "env": env,
        "trust": ["--trust", root / "dana.pub", "--trust", root / "lara.pub"],
    }


def _whole_bundle_drafts(r: Any, first: int, groups: Any, heads: list[int]) -> list[EventDraft]:
    """The import events custody wrote before imports were split by item."""
    out = []
    for head, entries in groups:
        heads.append(first + len(out))
        out.append(EventDraft("import", {**head, "items": list(entries)}))
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _world(tmp_path_factory.mktemp("byitem"))


@pytest.fixture(scope="module")
def old_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _world(tmp_path_factory.mktemp("whole"), whole=True)


def _blob(bag: Path) -> bytes:
    return b"".join(p.read_bytes() for p in bag.rglob("*") if p.is_file())


def _import_bodies(case: Case) -> list[tuple[int, dict[str, Any]]]:
    log = ok_json(case, "log", "--json")
    return [(e["seq"], json.loads(e["body"])["data"]) for e in log if e["type"] == "import"]


def test_import_is_one_event_per_item_grouped(world: dict[str, Any]) -> None:
    (head_seq, head), *members = _import_bodies(world["lab"])
    gid = f"IMPORT-{head_seq}"
    assert head["import"] == gid
    assert "items" not in head and "item" not in head
    assert head["source_case"] == "NC-001" and head["events"] > 0
    assert [seq for seq, _ in members] == [head_seq + 1, head_seq + 2, head_seq + 3]
    assert {d["import"] for _, d in members} == {gid}
    assert sorted(d["item"] for _, d in members) == sorted([world["item"], *world["others"]])
    for _, d in members:
        assert set(d) <= {"import", "item", "source_item", "path", "sha256", "store"}
        assert d["item"].endswith("/" + d["source_item"])
    assert world["lab"]("verify").returncode == 0


def test_a_one_item_reexport_names_no_sibling(world: dict[str, Any]) -> None:
    """The grep of issue 14 §5: no other item's id, path, digest or source id."""
    blob = _blob(world["bag"])
    for name, data in FILES.items():
        if name == EXHIBIT:
            assert name.encode() in blob  # the test can fail: the exhibit is there
            continue
        assert name.encode() not in blob
        for alg in ("sha256", "sha512", "md5", "sha1"):
            assert hashlib.new(alg, data).hexdigest().encode() not in blob
    for other in world["others"]:
        assert other.encode() not in blob
        assert other.rpartition("/")[2].encode() + b'"' not in blob  # ITEM-n as a value
    assert world["export"].stderr == ""  # nothing disclosed beyond: no warning
    proc = world["run"]("bundle", "verify", world["bag"], *world["trust"], "--json")
    doc = json.loads(proc.stdout)
    assert (proc.returncode, doc["findings"], doc["items"]) == (0, [], [world["item"]])
    types = [json.loads(e["body"])["type"] for e in read_events(world["bag"])]
    assert types.count("import") == 2  # the bundle-level event and the exhibit's own


def test_a_third_case_imports_the_one_item_reexport(world: dict[str, Any], tmp_path: Path) -> None:
    third = tmp_path / "third"
    run, env = world["run"], world["env"]
    run("init", third, "--case-id", "C-3", "--title", "t", env=env, check=True)
    run("bundle", "import", world["bag"], *world["trust"], cwd=third, env=env, check=True)
    assert [i["id"] for i in ok_json(run, "list", "--json", cwd=third, env=env)] == [world["item"]]
    assert run("verify", cwd=third, env=env).returncode == 0


def test_old_whole_bundle_import_events_still_verify_and_reexport(
    old_world: dict[str, Any],
) -> None:
    w = old_world
    ((seq, data),) = _import_bodies(w["lab"])
    assert "import" not in data and len(data["items"]) == 3
    assert w["lab"]("verify").returncode == 0
    others = ", ".join(sorted(w["others"]))
    assert (
        f"event {seq} (import) also names {others}: it was signed for several items at"
        " once, so it is disclosed whole" in w["export"].stderr
    )
    proc = w["run"]("bundle", "verify", w["bag"], *w["trust"], "--json")
    assert (proc.returncode, json.loads(proc.stdout)["findings"]) == (0, [])
    assert w["others"][0].rpartition("/")[2].encode() in _blob(w["bag"])


# -- attacks ------------------------------------------------------------------------


@pytest.fixture
def lab(world: dict[str, Any], tmp_path: Path) -> Case:
    d = tmp_path / "lab"
    shutil.copytree(world["lab"].dir, d)
    return Case(dir=d, key=world["lab"].key, run=world["run"])


def _forge(lab: Case, data: dict[str, Any]) -> dict[str, Any]:
    """Someone holding the lab's key writes an import event past the writers' gate."""
    with Ledger.open(lab.dir) as ledger:
        append_unchecked(ledger, load_signer(lab.key, PASSPHRASE.encode()), "import", data)
    proc = lab("verify", "--json")
    assert proc.returncode == 1
    return {f["detail"] for f in json.loads(proc.stdout)["findings"] if f["kind"] == "import"}


def test_a_member_out_of_its_group_is_a_finding(lab: Case, world: dict[str, Any]) -> None:
    (head_seq, _), (_, member), *_ = _import_bodies(world["lab"])
    found = _forge(lab, {**member, "source_item": "ITEM-9", "item": member["item"][:-1] + "9"})
    assert f"import IMPORT-{head_seq}'s events must be consecutive" in found


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"item": "../../etc/passwd"}, "import event names item '../../etc/passwd', its source"),
        ({"import": "IMPORT-x"}, "import 'IMPORT-x' is not an earlier import id"),
        ({"import": "IMPORT-0"}, "import IMPORT-0 has no first event"),
        ({"import": "IMPORT-99999"}, "import 'IMPORT-99999' is not an earlier import id"),
    ],
)
def test_a_hostile_member_is_a_finding(
    lab: Case, world: dict[str, Any], change: dict[str, str], detail: str
) -> None:
    (_, _), (_, member), *_ = _import_bodies(world["lab"])
    found = _forge(lab, {**member, **change})
    assert any(f.startswith(detail) for f in found), found
    names = [i["id"] for i in ok_json(lab, "list", "--json")]
    assert "../../etc/passwd" not in names and len(names) == 3


def test_the_gate_refuses_a_member_with_a_wrong_id(lab: Case, world: dict[str, Any]) -> None:
    """The writers apply the replay's own rule: a hand-written group with a wrong
    item id is refused before anything is committed."""
    from custody.errors import CustodyRuleError

    (_, head), (_, member), *_ = _import_bodies(world["lab"])
    with Ledger.open(lab.dir) as ledger:
        before = ledger.event_count()
        signer = load_signer(lab.key, PASSPHRASE.encode())
        first = before
        gid = f"IMPORT-{first}"
        fresh = {**head, "import": gid, "bundle": "sha256:" + "1" * 64}
        with pytest.raises(CustodyRuleError, match="its source item is"):
            ledger.append(
                signer,
                [
                    EventDraft("import", fresh),
                    EventDraft("import", {**member, "import": gid, "item": "NC-001@000000/ITEM-1"}),
                ],
            )
        assert ledger.event_count() == before


def test_a_reexport_without_the_bundle_level_event_is_caught(
    world: dict[str, Any], tmp_path: Path
) -> None:
    """Someone forging the bundle drops the import's first event (and re-tags):
    the signed export event lists it, and the item's import event has no group."""
    bag = tmp_path / "re"
    shutil.copytree(world["bag"], bag)
    lines = (bag / "custody" / "events.jsonl").read_text().splitlines()
    heads = [
        n
        for n, ln in enumerate(lines)
        if json.loads(json.loads(ln)["body"])["type"] == "import"
        and "source_case" in json.loads(json.loads(ln)["body"])["data"]
    ]
    (n,) = heads
    seq = json.loads(lines[n])["seq"]
    del lines[n]
    (bag / "custody" / "events.jsonl").write_text("".join(x + "\n" for x in lines))
    retag(bag)
    proc = world["run"]("bundle", "verify", bag, *world["trust"], "--json")
    kinds = {(f["kind"], f["subject"]) for f in json.loads(proc.stdout)["findings"]}
    assert proc.returncode == 1
    assert ("event-withheld", f"event {seq}") in kinds


def test_import_events_match_the_event_body_schema(
    world: dict[str, Any], old_world: dict[str, Any]
) -> None:
    from jsonschema import Draft202012Validator

    root = Path(__file__).resolve().parent.parent / "schemas"
    v = Draft202012Validator(json.loads((root / "event-body.schema.json").read_text()))
    bodies = [
        json.loads(e["body"])
        for w in (world, old_world)
        for e in ok_json(w["lab"], "log", "--json")
        if e["type"] == "import"
    ]
    assert len(bodies) == 5  # the bundle-level event and three items; one old event
    for body in bodies:
        assert [e.message for e in v.iter_errors(body)] == []
    head = next(b for b in bodies if "source_case" in b["data"] and "import" in b["data"])
    member = next(b for b in bodies if "item" in b["data"])
    for bad in (
        {**head, "data": {**head["data"], "items": []}},  # a bundle-level event lists none
        {**member, "data": {**member["data"], "note": "x"}},  # an item's event: no more
        {**member, "data": {**member["data"], "import": "IMPORT-01"}},
    ):
        assert list(v.iter_errors(bad))


def test_a_stale_staging_folder_is_reported_and_kept(world: dict[str, Any], lab: Case) -> None:
    """A crash mid-import leaves its private staging folder: the next import names
    it on stderr and deletes nothing."""
    stale = lab.dir / ".import-crashed"
    stale.mkdir(mode=0o700)
    (stale / "bundle.tar").write_bytes(b"half a bundle")
    proc = lab("bundle", "import", world["bag"], *world["trust"], env=world["env"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (
        f"Warning: {stale} is a staging folder left by an interrupted import (or one running"
        " now); custody does not delete it: look at it and remove it yourself\n"
    )
    assert (stale / "bundle.tar").read_bytes() == b"half a bundle"
    assert [p.name for p in lab.dir.glob(".import-*")] == [stale.name]


def test_a_reexport_section_of_a_pinned_source_is_placed_like_a_direct_import(
    world: dict[str, Any], tmp_path: Path
) -> None:
    """A third case pinned the collector's source at a newer bundle than the one the
    lab imported; the lab's re-export carries the older checkpoint in its section:
    the newer bundle's recorded proof places it, as for a direct import."""
    run, env = world["run"], world["env"]
    newer = tmp_path / "newer.tar"
    src = world["root"] / "src-case"
    run("event", "note", "ITEM-1", "--reason", "later", cwd=src, check=True)
    run("bundle", "export", "--all", "--out", newer, cwd=src, check=True)
    third = tmp_path / "third"
    run("init", third, "--case-id", "C-3", "--title", "t", env=env, check=True)
    run("bundle", "import", newer, *world["trust"], cwd=third, env=env, check=True)
    proc = run("bundle", "import", world["bag"], *world["trust"], cwd=third, env=env)
    assert proc.returncode == 0, proc.stderr
    log = ok_json(run, "log", "--json", cwd=third, env=env)
    heads = [
        json.loads(e["body"])["data"]
        for e in log
        if e["type"] == "import" and "trust" in json.loads(e["body"])["data"]
    ]
    section = next(h for h in heads if "via" in h)
    assert section["consistency"]["size"] > int(section["checkpoint"].split("\n")[1])
    assert run("verify", cwd=third, env=env).returncode == 0
