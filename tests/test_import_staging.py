"""bundle import's staging (issue 14 §3 and its benchmark): a folder bundle is copied
file by file into a private folder, each payload file hashed once as it is copied,
the staged bytes verified, and those very files moved into the store.  Three
attackers: one with write access to the lab's files but no key (a staged copy
changed after its check, an object planted under the payload's name), one swapping
the bundle while it is staged, and hostile entries in the bundle folder."""

# ruff: noqa: F811 - the fixtures template and w come from test_import_trust
from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import one_error_line
from test_import_trust import World, template, w  # noqa: F401 - the shared fixtures

from custody.display import shown

GENUINE = b"the genuine evidence\n"
SECOND = b"second file\n"


def obj(content: bytes) -> str:
    h = hashlib.sha256(content).hexdigest()
    return f"sha256/{h[:2]}/{h}"


def trust(w: World) -> tuple[str, Path]:
    return ("--trust", w.pub("dana"))


def staged_payload(staged: Path) -> dict[bytes, os.stat_result]:
    """The staged copies of the payload files (the tag files are held in memory)."""
    return {p.read_bytes(): p.lstat() for p in staged.iterdir() if p.name.startswith("p")}


def test_the_staged_copies_become_the_store_objects(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One copy: the files staged (0400, hashed as written) are the store's objects,
    same inode, nothing else left behind."""
    from custody.bundle import importer

    seen: dict[bytes, os.stat_result] = {}
    monkeypatch.setattr(importer, "_after_staging", lambda _o, s: seen.update(staged_payload(s)))
    out = w.lab_json("bundle", "import", w.root / "b1", *trust(w))
    assert sorted(seen) == [SECOND, GENUINE]
    assert {stat.S_IMODE(st.st_mode) for st in seen.values()} == {0o400}
    store = w.root / "lab" / "store"
    for content in (GENUINE, SECOND):
        st = (store / obj(content)).lstat()
        assert (st.st_ino, st.st_nlink, stat.S_IMODE(st.st_mode)) == (
            seen[content].st_ino,
            1,
            0o400,
        )
    assert w.store() == {obj(GENUINE): GENUINE, obj(SECOND): SECOND}
    assert sorted(i["store"] for i in out[0]["items"]) == sorted([obj(GENUINE), obj(SECOND)])
    assert not list((w.root / "lab").glob(".import-*"))
    assert w.lab("verify").returncode == 0


def test_a_staged_copy_changed_after_its_check_is_not_imported(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone with the lab's files rewrites a staged copy between the check and the
    move into the store: refused (exit 1), nothing recorded, nothing stored."""
    from custody.bundle import importer

    def rewrite(_original: Path, staged: Path) -> None:
        for p in staged.iterdir():
            if p.name.startswith("p") and p.read_bytes() == GENUINE:
                p.chmod(0o600)
                p.write_bytes(b"the attacker's evidence\n")
                p.chmod(0o400)

    monkeypatch.setattr(importer, "_after_staging", rewrite)
    before = (w.rows(), w.store())
    proc = w.lab("bundle", "import", w.root / "b1", *trust(w))
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert line.startswith("custody: error: data/ITEM-")
    assert line.endswith(" changed while it was imported")
    assert w.rows() == before[0]
    assert b"the attacker's evidence\n" not in w.store().values()
    assert not list((w.root / "lab").glob(".import-*"))


def test_an_object_planted_under_the_payloads_name_is_never_replaced(w: World) -> None:
    """Other bytes planted at the store path of the genuine payload's digest: the
    import refuses to name them (exit 3, one line) and leaves them where they are
    (nothing custody does deletes a stored object); verify reports the object."""
    planted = w.root / "lab" / "store" / obj(GENUINE)
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"planted\n")
    planted.chmod(0o400)
    before = w.rows()
    proc = w.lab("bundle", "import", w.root / "b1", *trust(w))
    assert proc.returncode == 3
    line = one_error_line(proc)
    assert f"read-back verification failed for {planted}: expected sha256" in line
    assert planted.read_bytes() == b"planted\n"
    assert w.rows() == before
    assert not list((w.root / "lab").glob(".import-*"))


def test_an_object_already_stored_with_the_same_bytes_is_kept_as_it_is(w: World) -> None:
    """The lab collected the same file before: that object is re-hashed and named by
    the import too, never replaced (same inode)."""
    ev = w.root / "lab-own.txt"
    ev.write_bytes(GENUINE)
    assert w.lab("collect", ev, "--reason", "own copy").returncode == 0
    existing = w.root / "lab" / "store" / obj(GENUINE)
    ino = existing.lstat().st_ino
    out = w.lab_json("bundle", "import", w.root / "b1", *trust(w))
    assert existing.lstat().st_ino == ino
    assert sorted(i["store"] for i in out[0]["items"]) == sorted([obj(GENUINE), obj(SECOND)])
    assert w.store() == {obj(GENUINE): GENUINE, obj(SECOND): SECOND}
    assert w.lab("verify").returncode == 0


def test_a_store_on_another_file_system_gets_copies(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the staging folder and the store cannot share a file (EXDEV), each
    staged file is copied into the store, hashed again."""
    import custody.store

    real_link = os.link

    def no_cross_link(src: Any, dst: Any, *a: Any, **k: Any) -> None:
        if ".import-" in str(src):
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        real_link(src, dst, *a, **k)

    monkeypatch.setattr(custody.store.os, "link", no_cross_link)
    w.lab_json("bundle", "import", w.root / "b1", *trust(w))
    monkeypatch.undo()
    assert w.store() == {obj(GENUINE): GENUINE, obj(SECOND): SECOND}
    assert not list((w.root / "lab").glob(".import-*"))
    assert w.lab("verify").returncode == 0


def test_a_payload_file_that_grows_while_it_is_staged_is_refused(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bundle's owner appends to a payload file while the import copies it."""
    from custody.bundle import archive

    b1 = w.root / "b1"
    target = next(p for p in (b1 / "data").rglob("*") if p.is_file())
    real = archive.hash_fd

    def grow_first(fd: int, *a: Any, **k: Any) -> Any:
        if os.fstat(fd).st_ino == target.stat().st_ino:
            target.chmod(0o600)
            with target.open("ab") as f:
                f.write(b"more\n")
        return real(fd, *a, **k)

    monkeypatch.setattr(archive, "hash_fd", grow_first)
    before = (w.rows(), w.store())
    proc = w.lab("bundle", "import", b1, *trust(w))
    assert proc.returncode == 1
    rel = target.relative_to(b1).as_posix()
    assert one_error_line(proc) == f"custody: error: {rel} changed while it was staged"
    assert (w.rows(), w.store()) == before
    assert not list((w.root / "lab").glob(".import-*"))


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo", "backslash", "late-symlink"])
def test_hostile_entries_in_a_bundle_folder_are_refused_before_anything_is_written(
    w: World, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Links, special files and unsafe names in the folder: exit 2, one line, no
    hang on the FIFO, nothing written, the staging folder removed.  ``late-symlink``:
    a payload file replaced by a link after the folder was listed."""
    from custody.bundle import archive

    b1 = w.root / "b1"
    item = next(p for p in (b1 / "data").iterdir() if p.is_dir())
    name = f"data/{item.name}/x"
    if kind == "symlink":
        (item / "x").symlink_to("/etc/passwd")
        why = f"unsafe entry {name!r}: symbolic link"
    elif kind == "hardlink":
        (w.root / "outside").write_bytes(b"outside\n")
        os.link(w.root / "outside", item / "x")
        why = f"unsafe entry {name!r}: hard link"
    elif kind == "fifo":
        os.mkfifo(item / "x")
        why = f"unsafe entry {name!r}: not a regular file"
    elif kind == "backslash":
        name = f"data/{item.name}/a\\b"
        (item / "a\\b").write_bytes(b"x\n")
        why = f"unsafe entry {name!r}: backslash in name"
    else:
        victim = next(p for p in item.iterdir() if p.is_file())
        name = f"data/{item.name}/{victim.name}"
        real_open = archive.os.open

        def swap_then_open(path: Any, flags: int, *a: Any, **k: Any) -> int:
            if str(path) == str(victim):
                victim.unlink()
                victim.symlink_to("/etc/passwd")
            return real_open(path, flags, *a, **k)

        monkeypatch.setattr(archive.os, "open", swap_then_open)
        why = f"unsafe entry {name!r}: symbolic link"
    before = (w.rows(), w.store())
    proc = w.lab("bundle", "import", b1, *trust(w))
    assert proc.returncode == 2
    assert one_error_line(proc) == f"custody: error: {shown(why)}"  # the display rule
    assert (w.rows(), w.store()) == before
    assert not list((w.root / "lab").glob(".import-*"))
