"""Store durability: objects are made durable (syncfs) before the ledger names
them, and identical content is stored once (read back either way)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.collect import collect
from custody.errors import StoreError
from custody.keys import Signer
from custody.ledger import Ledger
from custody.store import Store


def test_objects_synced_before_the_events_that_name_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    led = Ledger.create(tmp_path / "case", "S-1", "store")
    signer = Signer(Ed25519PrivateKey.generate(), "S", "s")
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}").write_bytes(os.urandom(100))
    calls: list[str] = []
    real_sync, real_append = Store.sync, Ledger.append

    def sync(self: Store) -> None:
        calls.append("sync-dirty" if self._dirty else "sync-clean")
        real_sync(self)

    def append(self: Ledger, *a: object, **k: object) -> object:
        calls.append("append")
        return real_append(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "sync", sync)
    monkeypatch.setattr(Ledger, "append", append)
    collect(led, signer, [str(src)], reason="r", algorithms=["sha256"], selftest=False)
    # start, then the batch of 6 items (synced first), then end
    assert calls == ["append", "sync-dirty", "append", "append"]


def test_read_back_mismatch_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "store")
    src = tmp_path / "f"
    src.write_bytes(b"evidence")
    real = __import__("custody.store", fromlist=["hash_fd"]).hash_fd
    seen: list[int] = []

    def flaky(fd: int, algorithms: list[str], **kw: object) -> object:
        result = real(fd, algorithms, **kw)
        seen.append(1)
        if len(seen) == 2:  # the read-back
            result.digests["sha256"] = "0" * 64
        return result

    monkeypatch.setattr("custody.store.hash_fd", flaky)
    fd = os.open(src, os.O_RDONLY)
    try:
        with pytest.raises(StoreError, match="read-back verification failed"):
            store.ingest(fd, ["sha256"])
    finally:
        os.close(fd)
    # the bad copy is not left in the store, nor its temp file
    assert [p for p in (tmp_path / "store").rglob("*") if p.is_file()] == []
