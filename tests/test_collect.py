"""Collection through the real CLI: digests against coreutils, MIME against file(1),
the read-only content-addressed store, walks over hostile trees, bad input, files
changing while read, and atime preservation."""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    Case,
    cli,
    drop_dac_capabilities,
    ok_json,
    one_error_line,
    python_without_dac,
    tool_digest,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import custody.store
from custody.collect import Collector
from custody.hashing import CHUNK, DEFAULT_ALGORITHMS, THREADED_MIN
from custody.keys import Signer
from custody.ledger import Ledger

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
BIG = 9 * CHUNK + 12345  # > THREADED_MIN: exercises the threaded hashing path
assert BIG > THREADED_MIN


# -- helpers ------------------------------------------------------------------------


def list_items(case: Case) -> list[dict[str, Any]]:
    return ok_json(case, "list", "--json")


def log_events(case: Case) -> list[dict[str, Any]]:
    return ok_json(case, "log", "--json")


def by_raw_path(items: list[dict[str, Any]]) -> dict[bytes, dict[str, Any]]:
    out: dict[bytes, dict[str, Any]] = {}
    for it in items:
        raw = bytes.fromhex(it["path_hex"])
        assert raw not in out, f"two items for one path {raw!r}"
        out[raw] = it
    return out


def file_mime(path: Path) -> str:
    proc = subprocess.run(
        ["file", "--brief", "--mime-type", str(path)], capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def png_bytes() -> bytes:
    """A valid 1x1 RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def store_objects(case: Case) -> list[Path]:
    return sorted(p for p in (case.dir / "store" / "sha256").rglob("*") if p.is_file())


# -- digests and types ----------------------------------------------------------------


@pytest.fixture
def sample_files(tmp_path: Path) -> dict[str, Path]:
    ev = tmp_path / "evidence"
    ev.mkdir()
    files = {
        "empty": b"",
        "one": b"\x00",
        "kib": os.urandom(3 * 1024 + 7),
        "big": os.urandom(BIG),
    }
    out = {}
    for name, data in files.items():
        p = ev / f"{name}.bin"
        p.write_bytes(data)
        out[name] = p
    return out


def test_default_digests_match_coreutils(case: Case, sample_files: dict[str, Path]) -> None:
    paths = list(sample_files.values())
    summary = ok_json(case, "collect", "--reason", "test", *paths, "--json")
    assert summary["status"] == "complete"
    assert summary["counts"] == {"collected": len(paths)}
    assert summary["bytes"] == sum(p.stat().st_size for p in paths)

    summary_items = by_raw_path(summary["items"])
    items = by_raw_path(list_items(case))
    assert set(items) == {os.fsencode(p) for p in paths}
    assert set(summary_items) == set(items)
    for p in paths:
        it = items[os.fsencode(p)]
        expected = {
            "md5": tool_digest("md5sum", p),
            "sha1": tool_digest("sha1sum", p),
            "sha256": tool_digest("sha256sum", p),
        }
        assert it["outcome"] == "collected", p
        assert it["digests"] == expected, p
        assert it["sha256"] == expected["sha256"]
        assert it["size"] == p.stat().st_size
        assert it["path"] == str(p)
        s = summary_items[os.fsencode(p)]
        assert (s["outcome"], s["sha256"], s["size"], s["id"]) == (
            "collected",
            expected["sha256"],
            p.stat().st_size,
            it["id"],
        )
    assert items[os.fsencode(sample_files["empty"])]["sha256"] == EMPTY_SHA256


def test_sha512_and_blake2b_match_coreutils(case: Case, sample_files: dict[str, Path]) -> None:
    paths = [sample_files["kib"], sample_files["big"], sample_files["empty"]]
    ok_json(case, "collect", "--reason", "test", *paths, "--hash", "sha512,blake2b", "--json")
    items = by_raw_path(list_items(case))
    for p in paths:
        it = items[os.fsencode(p)]
        assert it["digests"] == {
            "sha256": tool_digest("sha256sum", p),
            "sha512": tool_digest("sha512sum", p),
            "blake2b": tool_digest("b2sum", p),
        }, p


def test_mime_matches_file_command(case: Case, tmp_path: Path) -> None:
    ev = tmp_path / "types"
    ev.mkdir()
    (ev / "notes.txt").write_text("Payroll export: do not distribute.\n" * 20)
    (ev / "pixel.png").write_bytes(png_bytes())
    (ev / "logs.gz").write_bytes(gzip.compress(b"Jan 1 sshd[1]: Accepted password\n" * 50))
    shutil.copyfile("/bin/true", ev / "true.elf")
    (ev / "empty").write_bytes(b"")
    ok_json(case, "collect", "--reason", "test", ev, "--json")
    items = by_raw_path(list_items(case))
    names = ["notes.txt", "pixel.png", "logs.gz", "true.elf", "empty"]
    expected = {n: file_mime(ev / n) for n in names}
    got = {n: items[os.fsencode(ev / n)]["mime"] for n in names}
    # sanity: file(1) says what we think these are
    assert expected["notes.txt"] == "text/plain"
    assert expected["pixel.png"] == "image/png"
    assert expected["logs.gz"] == "application/gzip"
    assert expected["empty"] == "inode/x-empty"
    assert got == expected
    assert items[os.fsencode(ev / "empty")]["sha256"] == EMPTY_SHA256


# -- the store -----------------------------------------------------------------------


def test_store_object_is_read_only_copy(case: Case, tmp_path: Path) -> None:
    data = os.urandom(5000)
    src = tmp_path / "disk.bin"
    src.write_bytes(data)
    ok_json(case, "collect", "--reason", "test", src, "--json")
    (it,) = list_items(case)
    hexd = hashlib.sha256(data).hexdigest()
    assert it["sha256"] == hexd
    assert it["store"] == f"sha256/{hexd[:2]}/{hexd}"
    obj = case.dir / "store" / "sha256" / hexd[:2] / hexd
    assert obj.is_file()
    assert stat.S_IMODE(obj.stat().st_mode) == 0o400
    assert obj.read_bytes() == data
    assert store_objects(case) == [obj]
    tmp = case.dir / "store" / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


def test_identical_content_is_stored_once(case: Case, tmp_path: Path) -> None:
    data = b"same bytes on two hosts\n" * 100
    a = tmp_path / "host1" / "passwd"
    b = tmp_path / "host2" / "passwd.bak"
    for p in (a, b):
        p.parent.mkdir()
        p.write_bytes(data)
    summary = ok_json(case, "collect", "--reason", "test", a, b, "--json")
    assert summary["new_objects"] == 1
    assert summary["deduplicated"] == 1
    items = by_raw_path(list_items(case))
    assert set(items) == {os.fsencode(a), os.fsencode(b)}
    ia, ib = items[os.fsencode(a)], items[os.fsencode(b)]
    assert ia["id"] != ib["id"]
    assert ia["outcome"] == ib["outcome"] == "collected"
    assert ia["sha256"] == ib["sha256"] == hashlib.sha256(data).hexdigest()
    assert ia["store"] == ib["store"]
    (obj,) = store_objects(case)
    assert obj.read_bytes() == data
    # collecting it again later still adds no object but records a new item
    summary2 = ok_json(case, "collect", "--reason", "test", a, "--json")
    assert (summary2["new_objects"], summary2["deduplicated"]) == (0, 1)
    assert len(list_items(case)) == 3
    assert len(store_objects(case)) == 1


# -- walks over hostile trees ----------------------------------------------------------


@pytest.fixture
def hostile_tree(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A directory with a FIFO, a bound unix socket, a symlink loop, a symlink to a
    file, a non-UTF-8 name, an empty file and a subdirectory.  Yields (root, expected
    outcome by raw path)."""
    root = tmp_path / "walk"
    root.mkdir()
    rb = os.fsencode(root)
    os.mkfifo(root / "fifo")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(root / "sock"))
    sock.listen(1)
    os.symlink("loop_b", root / "loop_a")
    os.symlink("loop_a", root / "loop_b")
    (root / "empty").write_bytes(b"")
    (root / "sub").mkdir()
    (root / "sub" / "report.txt").write_bytes(b"quarterly numbers\n")
    os.symlink("sub/report.txt", root / "link_to_report")
    bad = rb + b"/bad-\xff.txt"
    with open(bad, "wb") as f:
        f.write(b"latin-1 named file\n")
    expected = {
        rb: "directory",
        rb + b"/fifo": "special",
        rb + b"/sock": "special",
        rb + b"/loop_a": "symlink",
        rb + b"/loop_b": "symlink",
        rb + b"/link_to_report": "symlink",
        rb + b"/empty": "collected",
        rb + b"/sub": "directory",
        rb + b"/sub/report.txt": "collected",
        bad: "collected",
    }
    try:
        yield root, expected
    finally:
        sock.close()


def _check_hostile_walk(
    case: Case, root: Path, expected: dict[bytes, str], summary: dict[str, Any]
) -> dict[bytes, dict[str, Any]]:
    assert summary["status"] == "complete"
    items = by_raw_path(list_items(case))  # asserts exactly one outcome per path
    assert {p: it["outcome"] for p, it in items.items()} == expected
    assert by_raw_path(summary["items"]).keys() == expected.keys()

    rb = os.fsencode(root)
    # the non-UTF-8 name round-trips exactly
    bad = rb + b"/bad-\xff.txt"
    it = items[bad]
    assert bytes.fromhex(it["path_hex"]) == bad
    assert it["path"] == bad.decode("utf-8", errors="backslashreplace")
    assert it["sha256"] == hashlib.sha256(b"latin-1 named file\n").hexdigest()
    assert items[rb + b"/empty"]["sha256"] == EMPTY_SHA256

    # symlinks are recorded with their target, never followed
    events = {e["item"]: json.loads(e["body"])["data"] for e in log_events(case) if e["item"]}
    for name, target in (
        (b"/loop_a", b"loop_b"),
        (b"/loop_b", b"loop_a"),
        (b"/link_to_report", b"sub/report.txt"),
    ):
        link = items[rb + name]
        assert link["sha256"] is None and link["digests"] == {}
        assert bytes.fromhex(events[link["id"]]["target"]["hex"]) == target
    for name in (b"/fifo", b"/sock"):
        assert items[rb + name]["sha256"] is None
    return items


def test_walk_of_special_files_completes(case: Case, hostile_tree: Any) -> None:
    root, expected = hostile_tree
    summary = ok_json(case, "collect", "--reason", "test", root, "--json", timeout=60)
    _check_hostile_walk(case, root, expected, summary)


def _denied_after_drop(probe: Path) -> bool:
    proc = python_without_dac(f"open({str(probe)!r}, 'rb').read()")
    return proc is not None and proc.returncode != 0 and "PermissionError" in proc.stderr


def test_walk_with_unreadable_entries(case: Case, hostile_tree: Any, tmp_path: Path) -> None:
    root, expected = hostile_tree
    rb = os.fsencode(root)
    secret = root / "shadow"
    secret.write_bytes(b"root:$6$...\n")
    secret.chmod(0o000)
    locked = root / "locked"
    locked.mkdir()
    (locked / "inside").write_bytes(b"x")
    locked.chmod(0o000)
    expected = {**expected, rb + b"/shadow": "unreadable", rb + b"/locked": "unreadable"}

    if os.geteuid() == 0:
        if sys.platform != "linux" or not _denied_after_drop(secret):
            locked.chmod(0o700)
            pytest.skip("cannot make a file unreadable to root (capability drop unavailable)")
        preexec: Callable[[], None] | None = drop_dac_capabilities
    else:
        preexec = None
    try:
        summary = ok_json(
            case, "collect", "--reason", "test", root, "--json", timeout=60, preexec_fn=preexec
        )
        items = _check_hostile_walk(case, root, expected, summary)
        events = {e["item"]: json.loads(e["body"])["data"] for e in log_events(case) if e["item"]}
        for name in (b"/shadow", b"/locked"):
            it = items[rb + name]
            assert it["sha256"] is None
            err = events[it["id"]]["error"]
            assert err["errno"] == errno.EACCES == 13
            assert err["name"] == "EACCES"
        assert summary["counts"]["unreadable"] == 2
    finally:
        locked.chmod(0o700)


# -- bad input --------------------------------------------------------------------------


def test_bad_input_is_usage_error_and_records_nothing(case: Case, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "file"
    # in a fresh case: nothing beyond the case's opening event (written by init)
    opened = log_events(case)
    assert [e["type"] for e in opened] == ["case.open"]
    proc = cli(case, "collect", "--reason", "test", missing, "--json")
    assert proc.returncode == 2, proc.stderr
    assert str(missing) in one_error_line(proc)
    assert proc.stdout == ""
    assert log_events(case) == opened

    present = tmp_path / "present.txt"
    present.write_text("here\n")
    ok_json(case, "collect", "--reason", "test", present, "--json")
    log_before = log_events(case)
    for args in ([missing], [present, missing], [present, "--hash", "md4"]):
        proc = cli(case, "collect", "--reason", "test", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        line = one_error_line(proc)
        if missing in args:
            assert str(missing) in line
        assert proc.stdout == ""
    assert log_events(case) == log_before
    assert len(list_items(case)) == 1


# -- a file changing while it is read ------------------------------------------------------


@pytest.mark.parametrize("size", [1000, THREADED_MIN + CHUNK + 5])
@pytest.mark.parametrize("how", ["progress", "patched_hash_fd"])
def test_file_changing_while_read_is_unstable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, size: int
) -> None:
    src = tmp_path / "growing.log"
    original = os.urandom(size)
    extra = b"appended while custody was reading\n" * 10
    src.write_bytes(original)
    appended = False

    def append() -> None:
        nonlocal appended
        if not appended:
            appended = True
            with open(src, "ab") as f:
                f.write(extra)

    progress = None
    if how == "progress":

        def progress(nbytes: int, nfiles: int) -> None:
            if nbytes:
                append()

    else:
        real = custody.store.hash_fd

        def patched(fd: int, *a: Any, **kw: Any) -> Any:
            append()
            return real(fd, *a, **kw)

        monkeypatch.setattr(custody.store, "hash_fd", patched)

    signer = Signer(Ed25519PrivateKey.generate(), "Dana Reyes", "collector")
    with Ledger.create(tmp_path / "case", "T-1", "unstable test") as ledger:
        # no self-test: it runs the store through the patched hash_fd first
        summary = Collector(
            ledger,
            signer,
            reason="test",
            algorithms=DEFAULT_ALGORITHMS,
            progress=progress,
            selftest=False,
        ).collect([str(src)])
        assert appended
        assert summary.counts == {"unstable": 1}
        (item,) = summary.items
        assert item["outcome"] == "unstable"
        (ev,) = [e for e in ledger.events() if e.type == "collect"]
        data = ev.data
        assert data["outcome"] == "unstable"
        assert data["source"]["size"] == size
        assert data["after"]["size"] == size + len(extra)
        final = src.read_bytes()
        assert final == original + extra
        # the digests describe exactly the bytes that were read (and stored)
        assert data["size"] == len(final)
        assert data["digests"] == {
            "md5": hashlib.md5(final).hexdigest(),
            "sha1": hashlib.sha1(final).hexdigest(),
            "sha256": hashlib.sha256(final).hexdigest(),
        }
        assert (ledger.store_dir / data["store"]).read_bytes() == final
        (row,) = ledger.artifacts()
        assert row["outcome"] == "unstable"


# -- never alter the source -----------------------------------------------------------------


def test_atime_is_preserved(case: Case, tmp_path: Path) -> None:
    old = 978_307_200_123_456_789  # 2001-01-01, far older than mtime: relatime would update
    ev = tmp_path / "atime"
    ev.mkdir()
    target = ev / "mail.mbox"
    control = tmp_path / "control.txt"
    for p in (target, control):
        p.write_bytes(b"From: attacker@example.com\n" * 100)
        os.utime(p, ns=(old, old + 10**9))
    control.read_bytes()
    if os.stat(control).st_atime_ns == old:
        pytest.skip("this filesystem does not update atime on read; the test would prove nothing")
    mtime_before = os.stat(target).st_mtime_ns
    ok_json(case, "collect", "--reason", "test", ev, "--json")
    (it,) = [i for i in list_items(case) if bytes.fromhex(i["path_hex"]) == os.fsencode(target)]
    assert it["outcome"] == "collected"
    st = os.stat(target)
    assert st.st_atime_ns == old
    assert st.st_mtime_ns == mtime_before
