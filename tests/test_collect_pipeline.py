"""The collector's pipeline (issue 16 §4): the store's syncfs runs while a batch's
events are signed, and nothing naming an object commits before it is durable; a
reader answers with the stats taken after the read only when the file changed, and
a file that changes under a reader is still recorded ``unstable`` with both."""

from __future__ import annotations

import errno
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Case, cli, one_error_line, sha256sum
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import custody.collect
import custody.store
from custody.collect import POOL_AFTER, Collector, _changed, read_file
from custody.keys import Signer
from custody.ledger import Ledger
from custody.store import Store, object_relpath

N = POOL_AFTER + 40  # past the pool's start


def tree(root: Path) -> Path:
    ev = root / "ev"
    ev.mkdir()
    for i in range(N):
        (ev / f"f{i:04}").write_bytes(f"evidence {i}\n".encode() * 50)
    return ev


def collect_events(case: Case) -> dict[str, dict[str, Any]]:
    with Ledger.open(case.dir, write=False) as ledger:
        return {e.data["path"]["display"]: e.data for e in ledger.events() if e.type == "collect"}


def test_a_store_that_cannot_be_flushed_names_no_object(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """syncfs fails (an I/O error on the store's disk) while the batch is signed:
    the batch is not committed, the run stops with one line and exit 3, and the
    copies made are kept, recorded by the next collection as kept, not deleted."""
    ev = tree(tmp_path)
    monkeypatch.setenv("CUSTODY_READERS", "0")
    real = custody.store._syncfs

    def broken(path: Path) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(custody.store, "_syncfs", broken)
    proc = cli(case, "collect", "--reason", "r", "--no-describe", ev)
    assert proc.returncode == 3
    assert (
        one_error_line(proc) == "custody: error: cannot flush the store to disk: Input/output error"
    )
    assert collect_events(case) == {}  # no event names an object that may not be on disk
    stored = sorted(p.name for p in (case.dir / "store" / "sha256").glob("*/*"))
    expected = sorted({sha256sum(ev / f"f{i:04}") for i in range(N)})
    assert stored == expected  # every copy made is still there
    monkeypatch.setattr(custody.store, "_syncfs", real)
    assert cli(case, "collect", "--reason", "again", "--no-describe", ev).returncode == 0
    with Ledger.open(case.dir, write=False) as ledger:
        (cleanup,) = [e.data for e in ledger.events() if e.type == "store.cleanup"]
    assert sorted(k["sha256"] for k in cleanup["kept"]) == expected
    assert cli(case, "verify").returncode == 0


def test_a_file_that_grows_under_a_reader_is_unstable_with_both_stats(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file appended to while a reader process copies it: recorded ``unstable``
    with the stat after the read, its digests those of the bytes read."""
    ev = tree(tmp_path)
    victim = ev / f"f{N - 3:04}"
    before = victim.read_bytes()
    real_ingest = Store.ingest

    def growing(self: Store, src_fd: int, *a: Any, **k: Any) -> Any:
        got = real_ingest(self, src_fd, *a, **k)
        if os.readlink(f"/proc/self/fd/{src_fd}") == str(victim):
            with open(victim, "ab") as f:  # in the reader process: after the bytes were read
                f.write(b"appended while read\n")
        return got

    monkeypatch.setattr(Store, "ingest", growing)
    monkeypatch.setenv("CUSTODY_READERS", "2")
    assert cli(case, "collect", "--reason", "r", "--no-describe", ev).returncode == 0
    events = collect_events(case)
    d = events[str(victim)]
    assert d["outcome"] == "unstable"
    assert d["note"] == "changed while being read: digests describe the bytes read"
    assert d["size"] == d["source"]["size"] == len(before)
    assert d["after"]["size"] == len(before) + len(b"appended while read\n")
    assert d["after_path"]["inode"] == d["source"]["inode"]
    assert d["digests"]["sha256"] == hashlib.sha256(before).hexdigest()  # the bytes read
    assert (case.dir / "store" / object_relpath(d["digests"]["sha256"])).read_bytes() == before
    steady = events[str(ev / "f0000")]
    assert steady["outcome"] == "collected" and "after" not in steady
    assert cli(case, "verify").returncode == 0


def test_a_path_replaced_after_a_reader_read_it_is_unstable(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile rename over the path once a reader has copied the file: the
    path's stat afterwards names another inode, so it is not recorded as a
    plain ``collected`` item."""
    ev = tree(tmp_path)
    victim = ev / f"f{N - 5:04}"
    decoy = tmp_path / "decoy"
    decoy.write_bytes(b"planted\n")
    real_ingest = Store.ingest

    def swapping(self: Store, src_fd: int, *a: Any, **k: Any) -> Any:
        got = real_ingest(self, src_fd, *a, **k)
        if os.readlink(f"/proc/self/fd/{src_fd}") == str(victim):
            os.rename(decoy, victim)
        return got

    monkeypatch.setattr(Store, "ingest", swapping)
    monkeypatch.setenv("CUSTODY_READERS", "2")
    assert cli(case, "collect", "--reason", "r", "--no-describe", ev).returncode == 0
    d = collect_events(case)[str(victim)]
    assert d["outcome"] == "unstable"
    assert d["after_path"]["inode"] != d["source"]["inode"]
    assert d["after"]["inode"] == d["source"]["inode"]
    assert d["digests"]["sha256"] != sha256sum(victim)  # the bytes read, not the decoy's
    assert cli(case, "verify").returncode == 0


def test_changed_is_the_one_rule_for_both_paths(tmp_path: Path) -> None:
    """read_file decides ``changed`` (in the collector or a reader); a file that
    stays put answers without the stats after the read."""
    src = tmp_path / "f"
    src.write_bytes(b"x" * 100)
    st = os.lstat(src)
    store = Store(tmp_path / "store", deferred_sync=True)
    got = read_file(store, ["sha256"], None, os.fsencode(src), (st.st_ino, st.st_dev))
    assert got.stored is not None and not got.changed
    assert got.after is None and got.post is None
    assert not _changed(st, st, st, 100)
    assert _changed(st, st, st, 99)  # fewer bytes read than its size
    assert _changed(st, st, None, 100)  # the path is gone
    other = os.lstat(tmp_path)
    assert _changed(st, st, other, 100)  # another inode at the path


def test_ctrl_c_while_waiting_for_the_flush_commits_nothing_before_it_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C lands while the commit waits for the store's syncfs: the events the
    run then records on its way out wait for that same flush to end (it cleared
    the store's dirty mark when it started)."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"f{i}").write_bytes(os.urandom(100))
    led = Ledger.create(tmp_path / "case", "S-1", "store")
    signer = Signer(Ed25519PrivateKey.generate(), "S", "s")
    calls: list[str] = []
    real_syncfs, real_append = custody.store._syncfs, Ledger.append

    def slow_syncfs(path: Path) -> None:
        time.sleep(0.5)
        real_syncfs(path)
        calls.append("syncfs done")

    def append(self: Ledger, *a: Any, **k: Any) -> Any:
        if k.get("after") is not None and "interrupted" not in calls:
            calls.append("interrupted")

            def ctrl_c(_last: object) -> None:  # before the flush has ended
                raise KeyboardInterrupt

            k["after"] = ctrl_c
        return real_append(self, *a, **k)

    monkeypatch.setattr(custody.store, "_syncfs", slow_syncfs)
    monkeypatch.setattr(Ledger, "append", append)
    monkeypatch.setattr(custody.collect, "FLUSH_ITEMS", 2)  # a flush inside the walk
    monkeypatch.setenv("CUSTODY_READERS", "0")
    led.conn.set_trace_callback(lambda sql: calls.append(sql) if sql == "COMMIT" else None)
    with pytest.raises(custody.collect.CollectionInterruptedError):
        Collector(
            led, signer, reason="r", algorithms=["sha256"], selftest=False, describe=False
        ).collect([str(src)])
    # the run's start; the interrupted batch (rolled back); then its items, committed
    # only once the flush that was in flight has ended
    assert calls == ["COMMIT", "interrupted", "syncfs done", "COMMIT"]
    assert [e.type for e in led.events()].count("collect") == 2
    led.close()
