"""Small files read, hashed and copied by worker processes (issue 16 §4): the
same records as reading them in the collector's own process, a file swapped
under a worker is not taken for the one the walk met, and the store's publish
step never replaces an object."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import Case, cli, ok_json, sha256sum
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import custody.collect
import custody.store
from custody.collect import POOL_AFTER, Collector
from custody.hashing import hash_file
from custody.keys import Signer
from custody.ledger import Ledger

N = POOL_AFTER + 90  # past the pool's start, several batches


def small_tree(root: Path) -> Path:
    ev = root / "ev"
    for d in range(3):
        (ev / f"d{d}").mkdir(parents=True)
    for i in range(N):
        (ev / f"d{i % 3}" / f"f{i:04}").write_bytes(f"file {i}\n".encode() * (i % 7))
    (ev / "big.bin").write_bytes(os.urandom((1 << 20) + 5))  # read by the collector itself
    os.link(ev / "d0" / "f0003", ev / "hard")
    os.symlink("d0/f0003", ev / "link")
    return ev


def records(case: Case) -> dict[str, tuple[Any, ...]]:
    with Ledger.open(case.dir, write=False) as ledger:
        out = {}
        for ev in ledger.events():
            if ev.type == "collect":
                d = ev.data
                out[d["path"]["display"]] = (
                    d["outcome"],
                    d.get("size"),
                    json.dumps(d.get("digests"), sort_keys=True),
                    d.get("store"),
                    d.get("source", {}).get("inode"),
                    "hard_link_of" in d,
                )
        return out


def test_readers_record_what_the_collector_itself_records(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ev = small_tree(tmp_path)
    started = []
    real_pool = custody.collect._ReaderPool

    def pool(*a: Any) -> Any:
        started.append(a[2])
        return real_pool(*a)

    monkeypatch.setattr(custody.collect, "_ReaderPool", pool)
    monkeypatch.setenv("CUSTODY_READERS", "2")
    summary = ok_json(case, "collect", "--reason", "r", "--json", "--no-describe", ev)
    assert started == [2]  # the pool ran, with two readers
    assert summary["counts"] == {"collected": N + 2, "directory": 4, "symlink": 1}
    pooled = records(case)
    sub = tmp_path / "alone"
    sub.mkdir()
    case.run("init", sub / "case", "--case-id", "R-0", "--title", "t", check=True)
    alone = Case(dir=sub / "case", key=case.key, run=case.run)
    monkeypatch.setenv("CUSTODY_READERS", "0")
    ok_json(alone, "collect", "--reason", "r", "--json", "--no-describe", ev)
    assert started == [2]  # no pool this time
    assert records(alone) == pooled
    for name in ("d0/f0000", "d1/f0100", "big.bin"):
        outcome, size, digests, store, _, _ = pooled[str(ev / name)]
        assert outcome == "collected" and size == (ev / name).stat().st_size
        assert json.loads(digests)["sha256"] == sha256sum(ev / name)
        assert store.endswith(sha256sum(ev / name))
        assert (case.dir / "store" / store).stat().st_mode & 0o777 == 0o400
    assert cli(case, "verify").returncode == 0
    assert list((case.dir / "store" / "tmp").glob("ingest-*")) == []


def test_a_file_swapped_before_a_reader_opens_it_is_not_read(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile rename between the walk's stat and the reader's open: the reader
    opens by path, so it checks the inode and device the walk saw."""
    ev = small_tree(tmp_path)
    decoy = tmp_path / "decoy"
    decoy.write_bytes(b"not the evidence\n")
    target = os.fsencode(ev / "d2" / "f0101")
    real_open = custody.collect._open_source

    def swapping_open(dir_fd: int | None, name: bytes) -> int:
        if name == target:  # in the reader process: the walk is long past it
            os.rename(decoy, name)
        return real_open(dir_fd, name)

    monkeypatch.setattr(custody.collect, "_open_source", swapping_open)
    ok_json(case, "collect", "--reason", "r", "--json", "--no-describe", ev)
    with Ledger.open(case.dir, write=False) as ledger:
        (d,) = [
            e.data for e in ledger.events() if e.data.get("path", {}).get("hex") == target.hex()
        ]
    assert d["outcome"] == "unstable" and "store" not in d
    assert d["note"] == "path was replaced between listing and opening; not read"
    assert d["after"]["inode"] != d["source"]["inode"]
    assert cli(case, "verify").returncode == 0


SIGNER = Signer(Ed25519PrivateKey.generate(), "S", "s")


def _collect(led: Ledger, src: Path) -> Any:
    return Collector(
        led, SIGNER, reason="r", algorithms=["sha256"], selftest=False, describe=False
    ).collect([str(src)])


def _store_one(tmp_path: Path, data: bytes) -> tuple[Ledger, Any]:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "f").write_bytes(data)
    led = Ledger.create(tmp_path / "case", "S-1", "store")
    return led, _collect(led, src)


def test_an_object_of_that_name_is_never_replaced(tmp_path: Path) -> None:
    led, first = _store_one(tmp_path, b"the same bytes\n")
    sha = first.items[-1]["sha256"]
    obj = led.store_dir / custody.store.object_relpath(sha)
    inode = obj.stat().st_ino
    summary = _collect(led, tmp_path / "src")
    assert summary.deduplicated == 1 and summary.new_objects == 0
    assert obj.stat().st_ino == inode  # the stored object itself, not a new copy
    assert hash_file(obj, ["sha256"]).digests["sha256"] == sha
    led.close()


def test_store_without_hard_links_still_publishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store on FAT or exFAT (a USB drive): link(2) fails with EPERM; the store
    falls back to rename, after checking the name is free."""
    calls = []

    def no_link(a: Any, b: Any) -> None:
        calls.append(b)
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(custody.store.os, "link", no_link)
    monkeypatch.setenv("CUSTODY_READERS", "0")
    led, summary = _store_one(tmp_path, b"fat\n")
    assert len(calls) == 1 and summary.new_objects == 1
    obj = led.store_dir / custody.store.object_relpath(summary.items[-1]["sha256"])
    assert obj.read_bytes() == b"fat\n" and obj.stat().st_mode & 0o777 == 0o400
    assert list((led.store_dir / "tmp").glob("ingest-*")) == []
    led.close()
