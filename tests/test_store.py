"""Store durability: objects are made durable (syncfs) before the ledger names
them, and identical content is stored once (read back either way)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody import hashing
from custody import store as store_mod
from custody.collect import collect
from custody.errors import StoreError
from custody.hashing import COPY_CHUNK
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
    real_syncfs = store_mod._syncfs

    def slow_syncfs(path: Path) -> None:  # runs on its own thread while events are signed
        time.sleep(0.3)
        real_syncfs(path)
        calls.append("syncfs done")

    monkeypatch.setattr(store_mod, "_syncfs", slow_syncfs)
    led.conn.set_trace_callback(lambda sql: calls.append(sql) if sql == "COMMIT" else None)
    collect(led, signer, [str(src)], reason="r", algorithms=["sha256"], selftest=False)
    # start, then the batch of 6 items (committed only once their objects are
    # synced), then end, then the objects' types
    assert calls[:4] == ["COMMIT", "syncfs done", "COMMIT", "COMMIT"]
    assert calls.count("syncfs done") == 1


@pytest.mark.parametrize("size", [8, 5 * (1 << 20) + 3])  # the serial and threaded paths
def test_read_back_mismatch_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """A copy that does not hold the bytes written (one bit flipped on its way to
    the file) is caught by the read-back, before it is named in the store."""
    store = Store(tmp_path / "store")
    src = tmp_path / "f"
    src.write_bytes(os.urandom(size))
    real = hashing._write_all
    writes: list[int] = []

    def flipping(fd: int, mv: memoryview) -> None:
        writes.append(len(mv))
        # the second chunk (or the only one), however often it is written: direct I/O
        # refuses this unaligned buffer and the chunk is written again through the cache
        if os.lseek(fd, 0, os.SEEK_CUR) == COPY_CHUNK or size < 100:
            data = bytearray(mv)
            data[len(data) // 2] ^= 0x10
            mv = memoryview(data)
        real(fd, mv)

    monkeypatch.setattr(hashing, "_write_all", flipping)
    fd = os.open(src, os.O_RDONLY)
    try:
        with pytest.raises(StoreError, match="read-back verification failed") as e:
            store.ingest(fd, ["sha256"], size_hint=size)
    finally:
        os.close(fd)
    offset = 0 if size < 100 else COPY_CHUNK
    assert f"at offset {offset}" in e.value.message
    # the bad copy is not left in the store, nor its temp file
    assert [p for p in (tmp_path / "store").rglob("*") if p.is_file()] == []
