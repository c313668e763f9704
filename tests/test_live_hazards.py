"""Live-system hazards met while collecting (issue 6, sections 2-3): a store that
fills up mid-copy, a read-only case, files that grow, are rewritten, replaced or
deleted while the walk is under way, sparse files, paths longer than PATH_MAX and
trees deeper than Python's recursion limit, hostile names through the JSON listing
and the CSV report, hard links, directories that cannot be listed, and atime.

tests/test_collect.py already covers the basics (a file appended to synchronously
while read, a mode-000 file and directory with root's DAC capabilities dropped,
atime of one walked file through the CLI, one non-UTF-8 name); these tests extend
them.  The library is driven in-process where only that makes the timing
deterministic; the CLI where the point is what a user sees.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
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
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import custody.collect
import custody.hashing
import custody.store
from custody.collect import Collector, display_path
from custody.display import shown_bytes
from custody.errors import DiskFullError
from custody.hashing import DEFAULT_ALGORITHMS
from custody.keys import Signer
from custody.ledger import Ledger
from custody.render.csv_form import COLUMNS as CSV_COLUMNS
from custody.verify import verify_ledger

MiB = 1 << 20
PATH_MAX = 4096
HANG_LIMIT = 120  # seconds: these cases read bigger, stranger trees than test_collect's


# -- helpers ------------------------------------------------------------------------


def items_by_raw(case: Case) -> dict[bytes, dict[str, Any]]:
    out: dict[bytes, dict[str, Any]] = {}
    for it in ok_json(case, "list", "--json", timeout=HANG_LIMIT):
        raw = bytes.fromhex(it["path_hex"])
        assert raw not in out, f"two items for one path {raw!r}"
        out[raw] = it
    return out


def cli_collect_events(case: Case) -> dict[bytes, dict[str, Any]]:
    """Raw path -> data of its collect event, from `custody log --json`."""
    out: dict[bytes, dict[str, Any]] = {}
    for e in ok_json(case, "log", "--json", timeout=HANG_LIMIT):
        body = json.loads(e["body"])
        if body["type"] == "collect":
            out[bytes.fromhex(body["data"]["path"]["hex"])] = body["data"]
    return out


def new_signer() -> Signer:
    return Signer(Ed25519PrivateKey.generate(), "Dana Reyes", "collector")


def collector(ledger: Ledger, **kw: Any) -> Collector:
    return Collector(
        ledger,
        new_signer(),
        reason="live hazards",
        algorithms=DEFAULT_ALGORITHMS,
        selftest=False,
        **kw,
    )


def collect_events(ledger: Ledger) -> dict[bytes, dict[str, Any]]:
    """Raw path -> data of its collect event."""
    out: dict[bytes, dict[str, Any]] = {}
    for ev in ledger.events():
        if ev.type == "collect":
            raw = bytes.fromhex(ev.data["path"]["hex"])
            assert raw not in out, f"two collect events for {raw!r}"
            out[raw] = ev.data
    return out


def digests_of(data: bytes) -> dict[str, str]:
    return {a: hashlib.new(a, data).hexdigest() for a in DEFAULT_ALGORITHMS}


def store_objects(store_dir: Path) -> list[Path]:
    base = store_dir / "sha256"
    return sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else []


def temp_leftovers(store_dir: Path) -> list[str]:
    tmp = store_dir / "tmp"
    return (
        sorted(p.name for p in tmp.iterdir() if p.name.startswith("ingest")) if tmp.is_dir() else []
    )


def remove_tree_fd(path: Path) -> None:
    """Remove a tree of any depth and path length: iterative, relative to open
    directory descriptors (shutil.rmtree recurses, and absolute paths past
    PATH_MAX cannot be used)."""
    top = os.fsencode(path)
    if not os.path.lexists(top):
        return
    stack: list[tuple[int, bytes]] = [(os.open(top, os.O_RDONLY | os.O_DIRECTORY), b"")]
    while stack:
        fd, name = stack[-1]
        sub = None
        with os.scandir(fd) as it:
            for entry in it:
                entry_name = os.fsencode(entry.name)
                if entry.is_dir(follow_symlinks=False):
                    sub = entry_name
                    break
                os.unlink(entry_name, dir_fd=fd)
        if sub is not None:
            stack.append((os.open(sub, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), sub))
            continue
        os.close(fd)
        stack.pop()
        if stack:
            os.rmdir(name, dir_fd=stack[-1][0])
    os.rmdir(top)


def _as_unprivileged_preexec(probe_dir: Path) -> Callable[[], None] | None:
    """None when we are not root; the capability drop when it makes a mode-0555
    directory unwritable to root; skip otherwise."""
    if os.geteuid() != 0:
        return None
    if sys.platform != "linux":
        pytest.skip("capability drop is Linux-only")
    probe_dir.mkdir()
    probe_dir.chmod(0o555)
    try:
        proc = python_without_dac(f"import os; print(os.access({str(probe_dir)!r}, os.W_OK))")
    finally:
        probe_dir.chmod(0o755)
    if proc is None:
        pytest.skip("cannot drop root's DAC capabilities here")
    if proc.returncode != 0 or proc.stdout.strip() != "False":
        pytest.skip("cannot make a directory read-only to root (capability drop unavailable)")
    return drop_dac_capabilities


# -- 1. the store fills up mid-copy ------------------------------------------------------

# Fail the copy of the source whose inode is TARGET_INO with ENOSPC once AFTER
# bytes of it have been written to the store (a partial temp file exists by then).
_INJECT = """
import errno, os
import custody.hashing, custody.store

def install(target_ino, after, hits):
    real_hash_fd = custody.hashing.hash_fd
    real_write_all = custody.hashing._write_all
    state = {"fd": None, "written": 0}

    def write_all(fd, mv):
        if fd == state["fd"]:
            room = after - state["written"]
            if len(mv) > room:
                if room > 0:
                    real_write_all(fd, mv[:room])
                    state["written"] += room
                hits.append(state["written"])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            state["written"] += len(mv)
        real_write_all(fd, mv)

    def hash_fd(fd, algorithms, *, out_fd=None, **kw):
        if out_fd is not None and os.fstat(fd).st_ino == target_ino:
            state["fd"], state["written"] = out_fd, 0
        try:
            return real_hash_fd(fd, algorithms, out_fd=out_fd, **kw)
        finally:
            state["fd"] = None

    custody.hashing._write_all = write_all
    custody.store.hash_fd = hash_fd
"""

NEED_FREE = re.compile(r"needed (\d+) bytes for this item, (\d+) bytes free")


def _full_store_tree(tmp_path: Path, third_size: int) -> tuple[Path, dict[str, bytes]]:
    ev = tmp_path / "evidence"
    ev.mkdir()
    contents = {
        "a.bin": os.urandom(200_000),
        "b.bin": os.urandom(5 * MiB),  # threaded path
        "c.bin": os.urandom(third_size),  # the one the store has no room for
        "d.bin": os.urandom(1000),  # never reached: the run stops at c
    }
    for name, data in contents.items():
        (ev / name).write_bytes(data)
    return ev, contents


def _check_after_disk_full(
    store_dir: Path, events: dict[bytes, dict[str, Any]], ev: Path, contents: dict[str, bytes]
) -> None:
    root = os.fsencode(ev)
    assert events[root]["outcome"] == "directory"
    for name in ("a.bin", "b.bin"):  # every earlier item kept, bytes and all
        d = events[root + b"/" + name.encode()]
        assert d["outcome"] == "collected"
        assert d["digests"] == digests_of(contents[name])
        assert (store_dir / d["store"]).read_bytes() == contents[name]
    failed = events[root + b"/c.bin"]
    assert failed["outcome"] == "failed"
    assert "digests" not in failed and "store" not in failed
    assert failed["source"]["size"] == len(contents["c.bin"])
    assert NEED_FREE.search(failed["failure"]), failed["failure"]
    assert root + b"/d.bin" not in events  # the run stopped at the failing item
    # nothing half-written is left behind: no temp file, no partial object
    assert temp_leftovers(store_dir) == []
    assert sorted(p.read_bytes() for p in store_objects(store_dir)) == sorted(
        [contents["a.bin"], contents["b.bin"]]
    )


@pytest.mark.parametrize("third_size", [300_000, 6 * MiB], ids=["serial", "threaded"])
def test_store_full_mid_copy_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, third_size: int
) -> None:
    ev, contents = _full_store_tree(tmp_path, third_size)
    ns: dict[str, Any] = {}
    exec(_INJECT, ns)
    hits: list[int] = []
    monkeypatch.setattr(custody.hashing, "_write_all", custody.hashing._write_all)
    monkeypatch.setattr(custody.store, "hash_fd", custody.store.hash_fd)
    ns["install"](os.stat(ev / "c.bin").st_ino, third_size // 2, hits)
    with Ledger.create(tmp_path / "case", "T-1", "disk full") as ledger:
        c = collector(ledger)
        with pytest.raises(DiskFullError) as info:
            c.collect([str(ev)])
        assert hits, "the injected ENOSPC never fired"
        m = NEED_FREE.search(info.value.message)
        assert m, info.value.message
        assert int(m.group(1)) == third_size
        assert c.summary.status == "failed"
        events = collect_events(ledger)
        _check_after_disk_full(ledger.store_dir, events, ev, contents)
        (end,) = [e.data for e in ledger.events() if e.type == "collection.end"]
        assert end["status"] == "failed"
        assert NEED_FREE.search(end["error"])
        assert end["counts"] == {"collected": 2, "directory": 1, "failed": 1}
        report = verify_ledger(ledger)
        assert report.ok, report.findings


def test_store_full_mid_copy_cli(case: Case, tmp_path: Path) -> None:
    """Injected ENOSPC in the real CLI process: exit 3, one line saying how much
    space the item needed and how much is free, earlier items intact, verify ok."""
    third = 6 * MiB
    ev, contents = _full_store_tree(tmp_path, third)
    script = tmp_path / "custody_enospc.py"
    script.write_text(
        _INJECT
        + textwrap.dedent(
            """
            import sys
            hits = []
            install(int(os.environ["INJECT_INO"]), int(os.environ["INJECT_AFTER"]), hits)
            from custody_cli.main import main
            sys.argv[0] = "custody"
            main()
            """
        )
    )
    env = {"INJECT_INO": str(os.stat(ev / "c.bin").st_ino), "INJECT_AFTER": str(third // 2)}
    proc = cli(
        case,
        "collect",
        "--reason",
        "test",
        ev,
        "--no-selftest",
        argv0=[sys.executable, str(script)],
        env=env,
        timeout=HANG_LIMIT,
    )
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    line = one_error_line(proc)
    m = NEED_FREE.search(line)
    assert m, line
    assert int(m.group(1)) == third
    events = cli_collect_events(case)
    _check_after_disk_full(case.dir / "store", events, ev, contents)
    assert ok_json(case, "verify", "--json", timeout=HANG_LIMIT)["ok"] is True


@pytest.fixture
def tiny_store(case: Case) -> Iterator[Path]:
    """The case's store on a 3 MiB tmpfs."""
    store = case.dir / "store"
    assert store.is_dir() and not any(store.iterdir())
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(store)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode(errors='replace').strip()}")
    try:
        yield store
    finally:
        subprocess.run(["umount", str(store)], capture_output=True)


def test_store_full_on_a_real_small_filesystem(
    case: Case, tmp_path: Path, tiny_store: Path
) -> None:
    ev = tmp_path / "evidence"
    ev.mkdir()
    contents = {
        "a.bin": os.urandom(700_000),
        "b.bin": os.urandom(700_000),
        "c.bin": os.urandom(4 * MiB),
        "d.bin": os.urandom(1000),
    }
    for name, data in contents.items():
        (ev / name).write_bytes(data)
    proc = cli(case, "collect", "--reason", "test", ev, "--no-selftest", timeout=HANG_LIMIT)
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    line = one_error_line(proc)
    m = NEED_FREE.search(line)
    assert m, line
    needed, free = int(m.group(1)), int(m.group(2))
    assert needed == 4 * MiB
    assert 0 < free < needed
    st = os.statvfs(tiny_store)
    assert free == st.f_bavail * st.f_frsize  # what is free now the temp file is gone
    events = cli_collect_events(case)
    _check_after_disk_full(tiny_store, events, ev, contents)
    assert ok_json(case, "verify", "--json", timeout=HANG_LIMIT)["ok"] is True


# -- 2. a read-only case is refused before any work starts ---------------------------------


def _tree_snapshot(root: Path) -> dict[str, tuple[int, int, int, str]]:
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
            snap[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return snap


@pytest.mark.parametrize("how", ["chmod-case-dir", "bind-mount-ro"])
def test_fresh_read_only_case_refused_before_any_work(case: Case, tmp_path: Path, how: str) -> None:
    """test_readonly.py covers a case that already holds a collection, on a read-only
    bind mount.  Here: a *fresh* case (its first collection would run and record the
    self-test), made read-only by permissions or by a read-only mount: exit 2,
    nothing at all written, no store lock or temp directory created."""
    src = tmp_path / "ev.txt"
    src.write_text("evidence\n")
    preexec = None
    target = case.dir
    mounted: Path | None = None
    mode = stat.S_IMODE(case.dir.stat().st_mode)
    if how == "chmod-case-dir":
        preexec = _as_unprivileged_preexec(tmp_path / "probe")
    else:
        target = tmp_path / "ro"
        target.mkdir()
        if subprocess.run(
            ["mount", "--bind", str(case.dir), str(target)], capture_output=True
        ).returncode:
            pytest.skip("bind mounts are not available here")
        mounted = target
    try:
        if mounted is not None:
            subprocess.run(
                ["mount", "-o", "remount,bind,ro", str(mounted)], check=True, capture_output=True
            )
        before = _tree_snapshot(case.dir)
        if how == "chmod-case-dir":
            case.dir.chmod(0o555)
        proc = cli(
            case,
            "collect",
            "--reason",
            "test",
            src,
            "--case",
            target,
            preexec_fn=preexec,
            timeout=HANG_LIMIT,
        )
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert one_error_line(proc) == (
            f"custody: error: case {target} is on read-only media: nothing can be recorded there"
        )
        assert proc.stdout == ""
    finally:
        if mounted is not None:
            subprocess.run(["umount", str(mounted)], capture_output=True)
        case.dir.chmod(mode)
    assert _tree_snapshot(case.dir) == before
    assert not (case.dir / "store" / ".writers.lock").exists()
    assert not (case.dir / "store" / "tmp").exists()
    with Ledger.open(case.dir) as ledger:
        # the case's opening event (written by init) alone: not even the self-test
        assert [ev.type for ev in ledger.events()] == ["case.open"]


def test_read_only_store_refused_before_any_work(case: Case, tmp_path: Path) -> None:
    preexec = _as_unprivileged_preexec(tmp_path / "probe")
    src = tmp_path / "ev.txt"
    src.write_text("evidence\n")
    store = case.dir / "store"
    store.chmod(0o555)
    try:
        proc = cli(case, "collect", "--reason", "test", src, preexec_fn=preexec, timeout=HANG_LIMIT)
    finally:
        store.chmod(0o755)
    assert not (store / ".writers.lock").exists()
    with Ledger.open(case.dir) as ledger:
        recorded = [ev.type for ev in ledger.events()]
    # no work started: the case's opening event (written by init), not even the self-test
    assert recorded == ["case.open"]
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "read-only" in one_error_line(proc)


# -- 3. a file that grows, is rewritten or replaced while read ------------------------------


@pytest.mark.parametrize("how", ["append", "rewrite", "replace"])
def test_file_changing_under_a_concurrent_writer(tmp_path: Path, how: str) -> None:
    """A writer thread starts once reading has begun (the reader waits for its first
    change, so the change always lands mid-read; the appender keeps going while the
    64 MiB file is read): the item is "unstable" with both stat snapshots, and its digests
    describe exactly the bytes stored."""
    size = 64 * MiB if how == "append" else 16 * MiB
    src = tmp_path / "busy.db"
    original = os.urandom(size)
    src.write_bytes(original)
    old = 1_600_000_000_000_000_000
    os.utime(src, ns=(old, old))  # any later write gives a different mtime
    first_change = threading.Event()
    stop = threading.Event()
    errors: list[BaseException] = []
    replacement = os.urandom(size)

    def writer() -> None:
        try:
            if how == "append":
                with open(src, "ab") as f:
                    while True:
                        f.write(b"log line appended while custody reads\n" * 100)
                        f.flush()
                        first_change.set()
                        if stop.wait(0.002):
                            return
            elif how == "rewrite":  # same size, bytes in the middle rewritten in place
                fd = os.open(src, os.O_WRONLY)
                try:
                    os.pwrite(fd, b"\0" * MiB, size // 2)
                finally:
                    os.close(fd)
                first_change.set()
            else:  # a new file renamed over the name (the open file is the old one)
                new = tmp_path / "busy.db.new"
                new.write_bytes(replacement)
                os.replace(new, src)
                first_change.set()
        except BaseException as e:  # reported below
            errors.append(e)
            first_change.set()

    thread = threading.Thread(target=writer, daemon=True)

    def progress(nbytes: int, nfiles: int) -> None:
        if nbytes and not thread.is_alive() and not first_change.is_set():
            thread.start()
            assert first_change.wait(30)

    with Ledger.create(tmp_path / "case", "T-1", "unstable") as ledger:
        try:
            summary = collector(ledger, progress=progress).collect([str(src)])
        finally:
            stop.set()
            if thread.ident is not None:
                thread.join(30)
        assert not errors, errors
        assert first_change.is_set(), "the writer never ran"
        assert summary.counts == {"unstable": 1}
        (data,) = collect_events(ledger).values()
        stored = (ledger.store_dir / data["store"]).read_bytes()
        assert data["size"] == len(stored)
        assert data["digests"] == digests_of(stored)
        assert "changed while being read" in data["note"]
        before, after = data["source"], data["after"]
        assert before["size"] == size
        assert before["mtime_ns"] == str(old)
        if how == "append":
            final = src.read_bytes()
            assert after["size"] > size and after["mtime_ns"] != before["mtime_ns"]
            assert data["size"] > size  # at least the first appended block was read
            assert data["size"] <= after["size"]
            assert stored == final[: len(stored)]
            assert stored[:size] == original
        elif how == "rewrite":
            assert after["size"] == size and after["mtime_ns"] != before["mtime_ns"]
            assert stored == src.read_bytes()  # the rewrite happened before the reader got there
            assert stored != original
        else:
            # the open file was the old inode, unchanged; the name now points elsewhere
            assert after["inode"] == before["inode"]
            path_now = data["after_path"]
            assert path_now["inode"] != before["inode"]
            assert path_now["inode"] == str(os.stat(src).st_ino)
            assert stored == original


# -- 4. files and directories deleted mid-walk ------------------------------------------------


def _walk_tree(tmp_path: Path) -> Path:
    root = tmp_path / "walk"
    root.mkdir()
    (root / "a.txt").write_bytes(b"first\n" * 1000)
    (root / "b.txt").write_bytes(b"second\n")
    (root / "c.txt").write_bytes(b"third\n")
    (root / "m_sub").mkdir()
    (root / "m_sub" / "inner.txt").write_bytes(b"inner\n")
    (root / "z.txt").write_bytes(b"last\n")
    return root


def test_files_deleted_mid_walk_are_vanished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a.txt is read, b.txt and the directory m_sub are deleted (gone before the
    walk reaches them); c.txt is deleted after the walk stat'ed it but before it was
    opened.  Each is "vanished" with ENOENT, and the walk carries on with z.txt."""
    root = _walk_tree(tmp_path)
    rb = os.fsencode(root)
    deleted = False

    def progress(nbytes: int, nfiles: int) -> None:
        nonlocal deleted
        if nbytes and not deleted:  # reading a.txt, the first file
            deleted = True
            (root / "b.txt").unlink()
            (root / "m_sub" / "inner.txt").unlink()
            (root / "m_sub").rmdir()

    real_open = custody.collect._open_source

    def open_after_delete(dir_fd: int | None, name: bytes) -> int:
        if name == b"c.txt":
            os.unlink(name, dir_fd=dir_fd)
        return real_open(dir_fd, name)

    monkeypatch.setattr(custody.collect, "_open_source", open_after_delete)
    with Ledger.create(tmp_path / "case", "T-1", "vanished") as ledger:
        summary = collector(ledger, progress=progress).collect([str(root)])
        assert deleted
        ev = collect_events(ledger)
        assert {p: d["outcome"] for p, d in ev.items()} == {
            rb: "directory",
            rb + b"/a.txt": "collected",
            rb + b"/b.txt": "vanished",
            rb + b"/c.txt": "vanished",
            rb + b"/m_sub": "vanished",
            rb + b"/z.txt": "collected",
        }
        assert summary.status == "complete"
        for name in (b"/b.txt", b"/c.txt", b"/m_sub"):
            d = ev[rb + name]
            assert d["error"]["errno"] == errno.ENOENT and d["error"]["name"] == "ENOENT"
            assert "digests" not in d and "store" not in d
        assert "source" not in ev[rb + b"/b.txt"]  # never stat'ed
        # stat'ed, then gone before it could be opened: what was seen is kept
        assert ev[rb + b"/c.txt"]["source"]["size"] == len(b"third\n")
        assert ev[rb + b"/z.txt"]["digests"] == digests_of(b"last\n")
        assert verify_ledger(ledger).ok


def test_directory_vanishing_before_it_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _walk_tree(tmp_path)
    rb = os.fsencode(root)
    real = custody.collect._open_dir

    def open_dir(dir_fd: int | None, name: bytes) -> Any:
        if name == b"m_sub":
            os.unlink(b"m_sub/inner.txt", dir_fd=dir_fd)
            os.rmdir(name, dir_fd=dir_fd)
        return real(dir_fd, name)

    monkeypatch.setattr(custody.collect, "_open_dir", open_dir)
    with Ledger.create(tmp_path / "case", "T-1", "vanished dir") as ledger:
        collector(ledger).collect([str(root)])
        ev = collect_events(ledger)
        assert ev[rb + b"/z.txt"]["outcome"] == "collected"  # the walk went on
        d = ev[rb + b"/m_sub"]
        assert d["error"]["errno"] == errno.ENOENT
        assert d["outcome"] == "vanished"


# -- 5. directories the walk cannot list --------------------------------------------------------


@pytest.mark.parametrize("when", ["listing", "midway"])
def test_unlistable_directory_is_unreadable_and_walk_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """os.scandir fails for one directory (EACCES at once, or EIO after one entry):
    that directory is "unreadable" with the error and its stat, none of its entries
    are recorded, and the walk continues with its siblings."""
    root = _walk_tree(tmp_path)
    locked = root / "locked"
    locked.mkdir()
    (locked / "inside.txt").write_bytes(b"x")
    (locked / "other.txt").write_bytes(b"y")
    rb = os.fsencode(root)
    locked_ino = locked.stat().st_ino
    real = os.scandir
    fired: list[int] = []

    class Failing:
        def __init__(self, it: Any) -> None:
            self.it = it
            self.n = 0

        def __enter__(self) -> Failing:
            return self

        def __exit__(self, *exc: object) -> None:
            self.it.close()

        def __iter__(self) -> Failing:
            return self

        def __next__(self) -> Any:
            if self.n == 1:
                raise OSError(errno.EIO, "Input/output error (injected)")
            self.n += 1
            return next(self.it)

    def scandir(path: Any = ".") -> Any:
        if isinstance(path, int) and os.fstat(path).st_ino == locked_ino:
            fired.append(path)
            if when == "listing":
                raise PermissionError(errno.EACCES, "Permission denied (injected)")
            return Failing(real(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with Ledger.create(tmp_path / "case", "T-1", "unlistable") as ledger:
        summary = collector(ledger).collect([str(root)])
        monkeypatch.undo()
        assert fired
        ev = collect_events(ledger)
        assert {p: d["outcome"] for p, d in ev.items()} == {
            rb: "directory",
            rb + b"/a.txt": "collected",
            rb + b"/b.txt": "collected",
            rb + b"/c.txt": "collected",
            rb + b"/locked": "unreadable",
            rb + b"/m_sub": "directory",
            rb + b"/m_sub/inner.txt": "collected",
            rb + b"/z.txt": "collected",
        }
        d = ev[rb + b"/locked"]
        code = errno.EACCES if when == "listing" else errno.EIO
        assert d["error"]["errno"] == code
        assert d["error"]["name"] == errno.errorcode[code]
        assert d["source"]["kind"] == "directory"
        assert d["source"]["inode"] == str(locked_ino)
        assert summary.status == "complete"
        assert verify_ledger(ledger).ok


# -- 6. sparse files ----------------------------------------------------------------------------


def test_sparse_file_hashes_logical_bytes(tmp_path: Path) -> None:
    """64 MiB apparent, two 4 KiB blocks written: the digests are those of every
    logical byte (holes read as zeros), and the record shows the apparent size and
    the far smaller allocation."""
    apparent = 64 * MiB
    src = tmp_path / "disk.img"
    fd = os.open(src, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, apparent)
        os.pwrite(fd, b"\xeb\x3c\x90MSDOS5.0" + os.urandom(4096 - 11), 0)
        os.pwrite(fd, os.urandom(4096), 40 * MiB)
    finally:
        os.close(fd)
    st = os.stat(src)
    if st.st_blocks * 512 > 1 * MiB:
        pytest.skip("this filesystem does not keep files sparse")
    with Ledger.create(tmp_path / "case", "T-1", "sparse") as ledger:
        summary = collector(ledger).collect([str(src)])
        assert summary.counts == {"collected": 1}
        (data,) = collect_events(ledger).values()
    sha = subprocess.run(["sha256sum", str(src)], capture_output=True, text=True, check=True)
    assert data["digests"]["sha256"] == sha.stdout.split()[0]
    assert data["size"] == apparent
    assert data["source"]["size"] == apparent
    assert data["source"]["blocks"] == st.st_blocks
    allocated = data["source"]["blocks"] * 512
    assert 0 < allocated <= 1 * MiB  # two 4 KiB blocks (plus file system overhead)
    assert allocated * 64 < apparent
    assert os.stat(src).st_blocks == st.st_blocks  # the source was not filled in


# -- 7. long paths and deep trees ----------------------------------------------------------------


def test_path_longer_than_path_max(tmp_path: Path) -> None:
    top = tmp_path / "long"
    top.mkdir()
    content = b"at the bottom of a very long path\n"
    expected_dirs = [os.fsencode(top)]
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    full = os.fsencode(top)
    try:
        i = 0
        while len(full) <= PATH_MAX + 200:
            name = (f"{i:03d}" + "d" * 197).encode()
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            full += b"/" + name
            expected_dirs.append(full)
            i += 1
        leaf_fd = os.open(b"leaf.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf_fd, content)
        os.close(leaf_fd)
    finally:
        os.close(fd)
    leaf = full + b"/leaf.txt"
    assert len(leaf) > PATH_MAX
    with pytest.raises(OSError) as info:
        os.lstat(leaf)
    assert info.value.errno == errno.ENAMETOOLONG  # absolute paths really can't be used
    try:
        with Ledger.create(tmp_path / "case", "T-1", "long") as ledger:
            summary = collector(ledger).collect([str(top)])
            assert summary.status == "complete"
            ev = collect_events(ledger)
            assert set(ev) == {*expected_dirs, leaf}
            for d in expected_dirs:
                assert ev[d]["outcome"] == "directory"
            it = ev[leaf]
            assert it["outcome"] == "collected"
            assert bytes.fromhex(it["path"]["hex"]) == leaf
            assert it["path"]["display"] == leaf.decode()
            assert it["digests"] == digests_of(content)
            assert (ledger.store_dir / it["store"]).read_bytes() == content
            (row,) = [r for r in ledger.artifacts() if r["outcome"] == "collected"]
            assert bytes.fromhex(row["path_hex"]) == leaf
            assert verify_ledger(ledger).ok
    finally:
        remove_tree_fd(top)


def test_tree_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    depth = max(1100, sys.getrecursionlimit() + 100)
    top = tmp_path / "deep"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(b"d", dir_fd=fd)
            nfd = os.open(b"d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        leaf_fd = os.open(b"leaf.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf_fd, b"deep\n")
        os.close(leaf_fd)
    finally:
        os.close(fd)
    base = os.fsencode(top)
    try:
        with Ledger.create(tmp_path / "case", "T-1", "deep") as ledger:
            summary = collector(ledger).collect([str(top)])
            assert summary.status == "complete"
            ev = collect_events(ledger)
            assert summary.counts == {"directory": depth + 1, "collected": 1}
            for level in range(depth + 1):
                assert ev[base + b"/d" * level]["outcome"] == "directory", level
            leaf = ev[base + b"/d" * depth + b"/leaf.txt"]
            assert leaf["outcome"] == "collected"
            assert leaf["digests"] == digests_of(b"deep\n")
            assert len(ev) == depth + 2
    finally:
        remove_tree_fd(top)


# -- 8. hostile names: the JSON listing and the CSV report ----------------------------------------

HOSTILE = {
    b"bad\xff\xfename": b"invalid UTF-8\n",
    b"line\nbreak": b"newline in the name\n",
    b"tab\there": b"tab in the name\n",
    b"back\\slash": b"backslash in the name\n",
    b"\xff": b"the single byte 0xff\n",
    b"\\xff": b"the four characters backslash x f f\n",
    b'quote"comma,semi;': b"csv metacharacters\n",
}


def test_hostile_names_survive_listing_and_csv_report(case: Case, tmp_path: Path) -> None:
    """Each name comes back byte for byte from `custody list --json` (path_hex) and
    from the CSV report read with csv.reader (its path_hex column; the path and
    description cells show the name by the display rule, from its exact bytes, so
    byte 0xff and the text \\xff are told apart there too; description_exact holds
    the recorded display form, newline and tab included)."""
    d = tmp_path / "names"
    d.mkdir()
    rb = os.fsencode(d)
    for name, data in HOSTILE.items():
        with open(rb + b"/" + name, "wb") as f:
            f.write(data)
    ok_json(case, "collect", "--reason", "test", d, "--json", "--no-selftest", timeout=HANG_LIMIT)

    # the JSON listing
    items = items_by_raw(case)
    assert set(items) == {rb} | {rb + b"/" + n for n in HOSTILE}
    for name, data in HOSTILE.items():
        it = items[rb + b"/" + name]
        assert it["outcome"] == "collected"
        assert it["sha256"] == hashlib.sha256(data).hexdigest()
        assert it["path"] == display_path(rb + b"/" + name)
    byte, text = items[rb + b"/\xff"], items[rb + b"/\\xff"]
    # the display forms collide: only path_hex tells the two names apart
    assert byte["path"] == text["path"] == display_path(rb) + "/\\xff"
    assert byte["path_hex"] != text["path_hex"]

    # the CSV report
    out = tmp_path / "report.csv"
    proc = cli(case, "report", "--format", "csv", "--out", out, timeout=HANG_LIMIT)
    assert proc.returncode == 0, proc.stderr
    raw = out.read_bytes()
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    header, body = rows[0], rows[1:]
    assert tuple(header) == CSV_COLUMNS
    assert all(len(r) == len(header) for r in body)
    # csv.reader gives back exactly the cells written: writing them again reproduces the file
    again = io.StringIO(newline="")
    csv.writer(again, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n").writerows(rows)
    assert again.getvalue().encode("utf-8-sig") == raw
    col = {name: i for i, name in enumerate(header)}
    assert "path_hex" in col, "the CSV report has no path_hex column"
    by_hex: dict[bytes, list[list[str]]] = {}
    for r in body:
        by_hex.setdefault(bytes.fromhex(r[col["path_hex"]]), []).append(r)
    assert set(by_hex) == set(items)  # every name, exactly, byte 0xff and text \xff apart
    for name, data in HOSTILE.items():
        it = items[rb + b"/" + name]
        for r in by_hex[rb + b"/" + name]:
            assert r[col["item"]] == it["id"]
            shown_path = shown_bytes(rb + b"/" + name)
            assert r[col["path"]] == shown_path
            desc = r[col["description"]]
            assert desc == shown_path or desc.startswith(shown_path + " ("), (name, desc)
            exact = r[col["description_exact"]]
            assert exact == it["path"] or exact.startswith(it["path"] + " ("), (name, exact)
            assert r[col["sha256"]] == hashlib.sha256(data).hexdigest()
    assert by_hex[rb + b"/\xff"][0][col["item"]] != by_hex[rb + b"/\\xff"][0][col["item"]]
    assert by_hex[rb + b"/\xff"][0][col["path"]].endswith("/\\xff")
    assert by_hex[rb + b"/\\xff"][0][col["path"]].endswith("/\\\\xff")
    assert any(r[col["path"]].endswith("/line\\nbreak") for r in body)
    assert any("\n" in r[col["description_exact"]] for r in body)
    assert any("\t" in r[col["description_exact"]] for r in body)
    assert not any("\n" in r[col["path"]] or "\t" in r[col["path"]] for r in body)


# -- 9. hard links ----------------------------------------------------------------------------------


def test_hard_links_stored_once_and_named(tmp_path: Path) -> None:
    d = tmp_path / "links"
    d.mkdir()
    data = os.urandom(50_000)
    (d / "a.dat").write_bytes(data)
    os.link(d / "a.dat", d / "b.dat")
    (d / "c.dat").write_bytes(b"unrelated\n")
    rb = os.fsencode(d)
    with Ledger.create(tmp_path / "case", "T-1", "links") as ledger:
        summary = collector(ledger).collect([str(d)])
        ev = collect_events(ledger)
        a, b = ev[rb + b"/a.dat"], ev[rb + b"/b.dat"]
        assert a["outcome"] == b["outcome"] == "collected"
        # one inode: same device and inode recorded for both names
        assert (a["source"]["device"], a["source"]["inode"]) == (
            b["source"]["device"],
            b["source"]["inode"],
        )
        assert a["source"]["nlink"] == b["source"]["nlink"] == 2
        assert a["digests"] == b["digests"] == digests_of(data)
        assert a["store"] == b["store"]
        assert summary.new_objects == 2 and summary.deduplicated == 1
        assert len(store_objects(ledger.store_dir)) == 2  # a/b once, c
        assert "hard_link_of" not in a
        assert bytes.fromhex(b["hard_link_of"]["hex"]) == rb + b"/a.dat"
        assert "hard_link_of" not in ev[rb + b"/c.dat"]
        assert verify_ledger(ledger).ok


def test_hard_link_changed_after_first_name_is_read_again(tmp_path: Path) -> None:
    """The inode is rewritten (same size) after its first name was read: the second
    name must be read on its own, not claimed to hold the first name's bytes."""
    d = tmp_path / "links"
    d.mkdir()
    first, second = os.urandom(50_000), os.urandom(50_000)
    (d / "a.dat").write_bytes(first)
    os.link(d / "a.dat", d / "b.dat")
    old = 1_600_000_000_000_000_000
    os.utime(d / "a.dat", ns=(old, old))
    rb = os.fsencode(d)
    done = 0

    def progress(nbytes: int, nfiles: int) -> None:
        nonlocal done
        if not nfiles:
            return
        done += nfiles
        if done == 2:  # the directory, then a.dat, have been processed
            fd = os.open(d / "a.dat", os.O_WRONLY)
            try:
                os.pwrite(fd, second, 0)
            finally:
                os.close(fd)

    with Ledger.create(tmp_path / "case", "T-1", "links") as ledger:
        collector(ledger, progress=progress).collect([str(d)])
        ev = collect_events(ledger)
        a, b = ev[rb + b"/a.dat"], ev[rb + b"/b.dat"]
        assert a["outcome"] == b["outcome"] == "collected"
        assert a["digests"] == digests_of(first)
        assert b["digests"] == digests_of(second)
        assert "hard_link_of" not in b
        assert len(store_objects(ledger.store_dir)) == 2


# -- 10. atime ---------------------------------------------------------------------------------------

OLD_ATIME = 978_307_200_123_456_789  # 2001-01-01: far older than mtime, so relatime updates


def _old_atime(p: Path) -> None:
    os.utime(p, ns=(OLD_ATIME, OLD_ATIME + 10**9))


def _atime_control(tmp_path: Path, directory: bool = False) -> None:
    """Show that a plain read (or listing) does update atime here; skip if not."""
    if directory:
        ctl = tmp_path / "control-dir"
        ctl.mkdir()
        (ctl / "x").write_bytes(b"x")
        _old_atime(ctl)
        os.listdir(ctl)
    else:
        ctl = tmp_path / "control.bin"
        ctl.write_bytes(b"control\n" * 100)
        _old_atime(ctl)
        ctl.read_bytes()
    if os.stat(ctl).st_atime_ns == OLD_ATIME:
        pytest.skip("this filesystem does not update atime on access; the test would prove nothing")


def test_atime_unchanged_for_named_and_large_files(tmp_path: Path) -> None:
    """Beyond test_collect's walked small file: an explicitly named file (opened by
    absolute path, no dir_fd), a large file (threaded copy) and a nested file."""
    _atime_control(tmp_path)
    ev = tmp_path / "ev"
    (ev / "sub").mkdir(parents=True)
    named = tmp_path / "named.txt"
    named.write_bytes(b"named on the command line\n" * 50)
    big = ev / "big.bin"
    big.write_bytes(os.urandom(9 * MiB))
    nested = ev / "sub" / "nested.txt"
    nested.write_bytes(b"nested\n" * 50)
    files = (named, big, nested)
    for p in files:
        _old_atime(p)
    with Ledger.create(tmp_path / "case", "T-1", "atime") as ledger:
        summary = collector(ledger).collect([str(named), str(ev)])
        assert summary.counts == {"collected": 3, "directory": 2}
    for p in files:
        st = os.stat(p)
        assert st.st_atime_ns == OLD_ATIME, p
        assert st.st_mtime_ns == OLD_ATIME + 10**9, p


def test_atime_unchanged_for_walked_directories(tmp_path: Path) -> None:
    _atime_control(tmp_path, directory=True)
    ev = tmp_path / "ev"
    (ev / "sub").mkdir(parents=True)
    (ev / "sub" / "f.txt").write_bytes(b"f\n")
    for p in (ev / "sub", ev):
        _old_atime(p)
    with Ledger.create(tmp_path / "case", "T-1", "atime") as ledger:
        collector(ledger).collect([str(ev)])
    assert os.stat(ev / "sub").st_atime_ns == OLD_ATIME
    assert os.stat(ev).st_atime_ns == OLD_ATIME
