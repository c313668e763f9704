"""The store's two layouts (issue 16 §4): new stores are flat, ``sha256/ab/<hex>``;
stores made before 0.16 keep ``sha256/ab/cd/<hex>``.  One rule,
:func:`custody.store.names_object`, says which recorded paths name an object, for
the writer and for verify; and attacks on it: edited paths, planted objects, a
linked folder, both layouts in one store, hostile recorded paths."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, Case, cli, ok_json, one_error_line, template_case
from tampering import append_unchecked, bypass, q

import custody.store
from custody.keys import load_signer
from custody.ledger import Ledger
from custody.store import (
    FLAT,
    NESTED,
    Store,
    names_object,
    object_relpath,
    object_relpaths,
    object_sha256,
    store_layout,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def flat(data: bytes) -> str:
    h = sha(data)
    return f"sha256/{h[:2]}/{h}"


def nested(data: bytes) -> str:
    h = sha(data)
    return f"sha256/{h[:2]}/{h[2:4]}/{h}"


def verify(case: Case) -> tuple[int, dict[str, Any]]:
    proc = cli(case, "verify", "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def kinds(report: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((f["kind"], f["subject"]) for f in report["findings"])


def collect(case: Case, *paths: Path, **kw: Any) -> dict[str, Any]:
    out = ok_json(case, "collect", "--reason", "r", "--no-describe", "--json", *paths, **kw)
    assert isinstance(out, dict)
    return out


def stores(case: Case) -> dict[str, str]:
    """Each collected item's recorded store path."""
    with Ledger.open(case.dir) as led:
        rows = led.conn.execute("SELECT body FROM events WHERE type = 'collect'").fetchall()
    out = {}
    for (body,) in rows:
        d = json.loads(body)["data"]
        if "store" in d:
            out[d["item"]] = d["store"]
    return out


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


# -- the rule ---------------------------------------------------------------------------

H = sha(b"x")


def test_the_two_paths_of_an_object() -> None:
    assert object_relpaths(H) == (f"sha256/{H[:2]}/{H}", f"sha256/{H[:2]}/{H[2:4]}/{H}")
    assert object_relpath(H) == object_relpath(H, FLAT) == f"sha256/{H[:2]}/{H}"
    assert object_relpath(H, NESTED) == f"sha256/{H[:2]}/{H[2:4]}/{H}"
    for rel in object_relpaths(H):
        assert names_object(rel, H) and object_sha256(rel) == H


@pytest.mark.parametrize(
    "rel",
    [
        f"sha256/{H[:2]}/../{H[:2]}/{H}",  # ..
        f"../sha256/{H[:2]}/{H}",
        f"sha256/{H[:2]}/{H[2:4]}/{H[4:6]}/{H}",  # three folders
        f"sha256/{H}",  # none
        f"sha256/{H[:2].upper()}/{H.upper()}",  # uppercase hex
        f"sha256/{H[:2]}/{H.upper()}",
        f"sha256/00/{H}" if H[:2] != "00" else f"sha256/01/{H}",  # another prefix
        f"sha256/{H[:2]}/ff/{H}" if H[2:4] != "ff" else f"sha256/{H[:2]}/00/{H}",
        f"/sha256/{H[:2]}/{H}",
        f"sha256/{H[:2]}/{H}/",
        f"sha256/{H[:2]}/{H}\n",
        f"md5/{H[:2]}/{H}",
        "",
    ],
)
def test_hostile_paths_name_no_object(rel: str) -> None:
    assert object_sha256(rel) is None
    assert not names_object(rel, H)


def test_a_path_names_only_its_own_digest() -> None:
    other = sha(b"y")
    for rel in object_relpaths(H):
        assert not names_object(rel, other)
        assert not names_object(rel, H.upper())
    assert not names_object(None, H) and not names_object(object_relpath(H), None)


def test_layout_is_read_from_the_content(tmp_path: Path) -> None:
    root = tmp_path / "store"
    assert store_layout(root) == FLAT  # no store yet
    (root / "sha256").mkdir(parents=True)
    assert store_layout(root) == FLAT  # empty
    (root / "sha256" / "00").mkdir()
    assert store_layout(root) == FLAT  # an empty folder tells nothing
    (root / "sha256" / "01").mkdir()
    (root / "sha256" / "01" / ("01" + "0" * 62)).write_bytes(b"")
    assert store_layout(root) == FLAT
    other = tmp_path / "other"
    (other / "sha256" / "ab" / "cd").mkdir(parents=True)
    assert store_layout(other) == NESTED
    assert Store(other).layout == NESTED and Store(root).layout == FLAT
    # a linked first-level folder is not looked into
    (tmp_path / "outside" / "cd").mkdir(parents=True)
    linked = tmp_path / "linked"
    (linked / "sha256").mkdir(parents=True)
    (linked / "sha256" / "00").symlink_to(tmp_path / "outside")
    assert store_layout(linked) == FLAT


# -- a new case is flat -------------------------------------------------------------------


def test_a_new_case_stores_flat_and_verifies(case: Case, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    (tmp_path / "b.txt").write_bytes(b"alpha\n")  # the same bytes: one object
    collect(case, tmp_path / "a.txt", tmp_path / "b.txt")
    assert stores(case) == {"ITEM-1": flat(b"alpha\n"), "ITEM-2": flat(b"alpha\n")}
    assert files_under(case.dir / "store" / "sha256") == [flat(b"alpha\n")[len("sha256/") :]]
    rc, rep = verify(case)
    assert (rc, rep["findings"], rep["objects_checked"]) == (0, [], 1)


# -- a case made by the release before (two-level store) ------------------------------------


@pytest.fixture
def legacy(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Case:
    """A case whose store was written in the two-level layout (as the release before
    0.16 did): two items; then the layout is read from the content again."""
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "one.log").write_bytes(b"legacy one\n")
    (ev / "two.log").write_bytes(b"legacy two\n")
    with monkeypatch.context() as m:
        mine = case.dir / "store"  # the self-test's own store stays flat
        m.setattr(custody.store, "store_layout", lambda root: NESTED if root == mine else FLAT)
        collect(case, ev / "one.log", ev / "two.log")
    assert stores(case) == {"ITEM-1": nested(b"legacy one\n"), "ITEM-2": nested(b"legacy two\n")}
    return case


def test_an_old_case_keeps_its_layout(legacy: Case, tmp_path: Path) -> None:
    (tmp_path / "three.log").write_bytes(b"legacy three\n")
    (tmp_path / "again.log").write_bytes(b"legacy one\n")
    out = collect(legacy, tmp_path / "three.log", tmp_path / "again.log")
    assert (out["new_objects"], out["deduplicated"]) == (1, 1)
    got = stores(legacy)
    assert got["ITEM-3"] == nested(b"legacy three\n")
    assert got["ITEM-4"] == nested(b"legacy one\n")  # dedup found the old object
    assert files_under(legacy.dir / "store" / "sha256") == sorted(
        nested(d)[len("sha256/") :] for d in (b"legacy one\n", b"legacy two\n", b"legacy three\n")
    )
    rc, rep = verify(legacy)
    assert (rc, rep["findings"], rep["objects_checked"]) == (0, [], 3)
    assert not [n for n in rep["notes"] if "both layouts" in n]


def test_an_old_case_exports_describes_reports_and_imports(legacy: Case, tmp_path: Path) -> None:
    described = ok_json(legacy, "describe", "--all", "--json", "--quiet")
    assert (described["described"], described["problems"]) == (2, []), described
    report = tmp_path / "r.json"
    assert cli(legacy, "report", "--format", "json", "--out", report).returncode == 0
    items = {i["id"]: i for i in json.loads(report.read_text())["items"]}
    assert items["ITEM-1"]["verified_digests"]["sha256"] == sha(b"legacy one\n")  # found
    bag = tmp_path / "bag"
    proc = cli(legacy, "bundle", "export", "ITEM-1", "ITEM-2", "--out", bag)
    assert proc.returncode == 0, proc.stderr
    assert (bag / "data" / "ITEM-1" / "one.log").read_bytes() == b"legacy one\n"
    # imported into a new case (flat) and into the old case itself (two-level)
    (tmp_path / "fresh").mkdir()
    fresh = template_case(tmp_path / "fresh")  # its own key and configuration
    for target, path in ((fresh, flat), (legacy, nested)):
        proc = cli(target, "bundle", "import", bag, "--accept-self-asserted", "--json")
        assert proc.returncode == 0, proc.stderr
        with Ledger.open(target.dir) as led:
            assert path(b"legacy one\n") in led.imported_objects()
        assert (target.dir / "store" / path(b"legacy two\n")).read_bytes() == b"legacy two\n"
        rc, rep = verify(target)
        assert (rc, rep["findings"]) == (0, [])


# -- attacks: write access to the case, no key ----------------------------------------------


def _edit_store(case: Case, item: str, new: str) -> int:
    with Ledger.open(case.dir) as led:
        seq, body = led.conn.execute(
            "SELECT seq, body FROM events WHERE type = 'collect' AND item = ?", (item,)
        ).fetchone()
    old = json.loads(body)["data"]["store"]
    assert body.count(f'"store":"{old}"') == 1
    forged = body.replace(f'"store":"{old}"', f'"store":"{new}"')
    bypass(
        case.dir / "custody.db",
        "events",
        f"UPDATE events SET body = {q(forged)} WHERE seq = {seq};",
    )
    return int(seq)


def test_a_store_path_edited_to_the_other_layout(case: Case, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    collect(case, tmp_path / "a.txt")
    obj = case.dir / "store" / flat(b"alpha\n")
    other = case.dir / "store" / nested(b"alpha\n")
    other.parent.mkdir(parents=True)
    os.link(obj, other)  # the same bytes at the other path
    obj.unlink()
    seq = _edit_store(case, "ITEM-1", nested(b"alpha\n"))
    rc, rep = verify(case)
    assert rc == 1
    got = kinds(rep)
    # the signed body no longer hashes nor verifies: the edit is caught
    assert ("event-hash", f"event {seq}") in got and ("signature", f"event {seq}") in got
    assert {k for k, _ in got} == {"event-hash", "signature", "index", "checkpoint"}, got


def test_an_object_planted_at_the_other_path(case: Case, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    collect(case, tmp_path / "a.txt")
    planted = case.dir / "store" / nested(b"alpha\n")
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"forged alpha\n")
    rc, rep = verify(case)
    assert rc == 1
    assert kinds(rep) == [("object-unrecorded", nested(b"alpha\n"))]
    assert rep["objects_checked"] == 1  # the recorded one, at the path its event names
    assert any("both layouts" in n for n in rep["notes"]), rep["notes"]
    # the flat object gone: collecting the same bytes again re-hashes the planted one
    # and refuses it; the planted file is kept
    obj = case.dir / "store" / flat(b"alpha\n")
    obj.chmod(0o600)
    obj.unlink()
    proc = cli(case, "collect", "--reason", "r", "--no-describe", tmp_path / "a.txt")
    assert proc.returncode == 3
    assert "read-back verification failed" in one_error_line(proc)
    assert planted.read_bytes() == b"forged alpha\n"


@pytest.mark.parametrize("shape", [flat, nested])
def test_an_unreferenced_object_at_either_depth_is_kept(
    case: Case, tmp_path: Path, shape: Any
) -> None:
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    collect(case, tmp_path / "a.txt")
    orphan = case.dir / "store" / shape(b"nobody recorded me\n")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"nobody recorded me\n")
    orphan.chmod(0o400)
    rc, rep = verify(case)
    assert (rc, kinds(rep)) == (1, [("object-unrecorded", shape(b"nobody recorded me\n"))])
    (tmp_path / "b.txt").write_bytes(b"beta\n")
    out = collect(case, tmp_path / "b.txt")
    kept = out["cleanup"]["kept"] if "cleanup" in out else None
    with Ledger.open(case.dir) as led:
        (body,) = led.conn.execute(
            "SELECT body FROM events WHERE type = 'store.cleanup'"
        ).fetchone()
    assert json.loads(body)["data"]["kept"] == [
        {
            "store": shape(b"nobody recorded me\n"),
            "sha256": sha(b"nobody recorded me\n"),
            "size": 19,
        }
    ], kept
    assert orphan.read_bytes() == b"nobody recorded me\n"  # never deleted


def test_a_linked_object_folder_is_never_written_through(case: Case, tmp_path: Path) -> None:
    data = b"goes to the store\n"
    outside = tmp_path / "outside"
    outside.mkdir()
    (case.dir / "store" / "sha256").mkdir(parents=True, exist_ok=True)
    (case.dir / "store" / "sha256" / sha(data)[:2]).symlink_to(outside)
    (tmp_path / "a.txt").write_bytes(data)
    proc = cli(case, "collect", "--reason", "r", "--no-describe", tmp_path / "a.txt")
    assert proc.returncode == 3
    line = one_error_line(proc)
    assert line.startswith("custody: error: ") and "is a symbolic link, not a folder" in line
    assert list(outside.iterdir()) == []
    assert stores(case) == {}


# -- a store holding both layouts (made by hand) --------------------------------------------


def test_a_mixed_store_verifies_cleans_up_and_dedups(case: Case, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"alpha\n")
    collect(case, tmp_path / "a.txt")
    store = case.dir / "store"
    # by hand: a nested copy of ITEM-1's object and a nested object of new bytes
    for data in (b"alpha\n", b"gamma\n"):
        p = store / nested(data)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        p.chmod(0o400)
    rc, rep = verify(case)
    assert (rc, kinds(rep)) == (
        1,
        sorted(
            [("object-unrecorded", nested(b"alpha\n")), ("object-unrecorded", nested(b"gamma\n"))]
        ),
    )
    assert any("both layouts" in n for n in rep["notes"]), rep["notes"]
    # the next collect keeps and records both, and finds the gamma object where it is
    (tmp_path / "g.txt").write_bytes(b"gamma\n")
    out = collect(case, tmp_path / "g.txt")
    assert (out["new_objects"], out["deduplicated"]) == (0, 1)
    # (ITEM-2 and ITEM-3 are reserved for what the kept objects may have been)
    assert stores(case) == {"ITEM-1": flat(b"alpha\n"), "ITEM-4": nested(b"gamma\n")}
    assert not (store / flat(b"gamma\n")).exists()  # never copied twice
    with Ledger.open(case.dir) as led:
        (body,) = led.conn.execute(
            "SELECT body FROM events WHERE type = 'store.cleanup'"
        ).fetchone()
    assert sorted(k["store"] for k in json.loads(body)["data"]["kept"]) == sorted(
        [nested(b"alpha\n"), nested(b"gamma\n")]
    )
    assert files_under(store / "sha256") == sorted(
        r[len("sha256/") :] for r in (flat(b"alpha\n"), nested(b"alpha\n"), nested(b"gamma\n"))
    )


# -- hostile recorded store paths (a key holder's record) -----------------------------------


@pytest.mark.parametrize(
    "how",
    ["dotdot", "three-levels", "uppercase"],
)
def test_a_hostile_recorded_path_is_a_finding_never_opened(
    case: Case, tmp_path: Path, how: str
) -> None:
    data = b"planted where a hostile path points\n"
    h = sha(data)
    rel = {
        "dotdot": f"sha256/{h[:2]}/../{h[:2]}/{h}",
        "three-levels": f"sha256/{h[:2]}/{h[2:4]}/{h[4:6]}/{h}",
        "uppercase": f"sha256/{h[:2].upper()}/{h.upper()}",
    }[how]
    target = case.dir / "store" / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)  # what opening it would find: the right bytes
    with Ledger.open(case.dir) as led:
        signer = load_signer(case.key, PASSPHRASE.encode())
        led.ensure_registered(signer)
        seq = append_unchecked(
            led,
            signer,
            "collect",
            {
                "item": "ITEM-1",
                "run": "r",
                "outcome": "collected",
                "path": {"hex": b"/x".hex(), "display": "/x"},
                "size": len(data),
                "digests": {"sha256": h},
                "store": rel,
            },
        )
    rc, rep = verify(case)
    assert rc == 1
    got = kinds(rep)
    assert ("store-path", f"ITEM-1 ({rel})") in got, (seq, got)
    assert rep["objects_checked"] == 0  # never opened as ITEM-1's object
    # the planted file is an unexplained entry of the store, never a verified object
    assert [k for k, _ in got if k.startswith("object-")] == ["object-unrecorded"], got


def test_purge_removes_the_recorded_object_in_either_layout(legacy: Case, tmp_path: Path) -> None:
    store = legacy.dir / "store"
    # by hand: a flat copy of ITEM-1's bytes, which no event names
    copy = store / flat(b"legacy one\n")
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes(b"legacy one\n")
    proc = cli(legacy, "event", "dispose", "ITEM-1", "--reason", "order 7", "--purge", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert not (store / nested(b"legacy one\n")).exists()  # the path its event names
    assert copy.read_bytes() == b"legacy one\n"  # not named by it: kept
    assert (store / nested(b"legacy two\n")).read_bytes() == b"legacy two\n"


def test_purge_never_deletes_through_a_linked_folder(legacy: Case, tmp_path: Path) -> None:
    store = legacy.dir / "store"
    rel = nested(b"legacy one\n")
    folder = store / rel.rsplit("/", 2)[0]  # sha256/ab, holding cd/<hex>
    outside = tmp_path / "outside"
    folder.rename(outside)
    folder.symlink_to(outside)
    proc = cli(legacy, "event", "dispose", "ITEM-1", "--reason", "order 7", "--purge", "--yes")
    assert proc.returncode == 3
    assert "was not purged" in one_error_line(proc)
    assert (outside / rel.split("/", 2)[2]).read_bytes() == b"legacy one\n"


@pytest.mark.parametrize("depth", [1, 2])
def test_a_linked_folder_of_an_old_store_is_never_followed(
    legacy: Case, tmp_path: Path, depth: int
) -> None:
    """``sha256/ab`` or ``sha256/ab/cd`` of a two-level store replaced by a link to a
    folder holding the very same bytes: the object is not a regular file reached
    through no link, whatever the bytes say, and nothing else is reported."""
    rel = nested(b"legacy one\n")
    folder = legacy.dir / "store" / "/".join(rel.split("/")[: depth + 1])
    outside = tmp_path / "outside"
    folder.rename(outside)
    folder.symlink_to(outside)
    rc, rep = verify(legacy)
    assert (rc, kinds(rep)) == (1, [("object-not-regular", f"ITEM-1 ({rel})")])
    assert rep["objects_checked"] == 1  # ITEM-2's object only
    (tmp_path / "again.log").write_bytes(b"legacy one\n")
    proc = cli(legacy, "collect", "--reason", "r", "--no-describe", tmp_path / "again.log")
    assert proc.returncode == 3
    assert "is a symbolic link, not a folder" in one_error_line(proc)
