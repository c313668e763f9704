"""The large copy's direct I/O: written past the page cache and read back from the
medium, every chunk compared with the bytes written; the page cache takes over
where direct I/O cannot (a short chunk, a file system refusing it)."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from custody import hashing
from custody.errors import StoreError
from custody.hashing import ALIGN, COPY_CHUNK, THREADED_MIN, CopyMismatchError, hash_fd
from custody.store import Store

CHUNK = COPY_CHUNK  # the copy's chunk (the reader's when copying)
SIZE = THREADED_MIN + 2 * CHUNK + 1234  # threaded, three whole chunks, an unaligned tail


def _direct_supported(d: Path) -> bool:
    if not hashing._O_DIRECT:
        return False
    try:
        fd = os.open(d / "probe", os.O_RDWR | os.O_CREAT | os.O_EXCL | hashing._O_DIRECT, 0o600)
    except OSError:
        return False
    try:
        buf = hashing.aligned_buffer(ALIGN)
        return os.write(fd, buf) == ALIGN
    except OSError:
        return False
    finally:
        os.close(fd)
        os.unlink(d / "probe")


@pytest.fixture
def direct_dir(tmp_path: Path) -> Path:
    if not _direct_supported(tmp_path):
        pytest.skip("this file system refuses direct I/O")
    return tmp_path


def _ingest(store: Store, src: Path) -> str:
    fd = os.open(src, os.O_RDONLY)
    try:
        return store.ingest(fd, ["sha256"], size_hint=src.stat().st_size).relpath
    finally:
        os.close(fd)


def test_same() -> None:
    a = bytearray(os.urandom(3 * ALIGN))
    b = bytearray(a)
    assert hashing._same(memoryview(a), memoryview(b))
    for i in (0, ALIGN, len(a) - 1):
        c = bytearray(a)
        c[i] ^= 1
        assert not hashing._same(memoryview(a), memoryview(c))
        assert not hashing._same(memoryview(bytes(c)), memoryview(a))  # read-only: no memcmp
    assert not hashing._same(memoryview(a), memoryview(a)[:-1])
    assert hashing._same(memoryview(b""), memoryview(bytearray()))


def test_large_copy_goes_direct(direct_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a file system with direct I/O, every whole chunk is written with O_DIRECT
    and only the unaligned tail goes through the page cache."""
    data = os.urandom(SIZE)
    src, dst = direct_dir / "src", direct_dir / "dst"
    src.write_bytes(data)
    modes: list[tuple[str, int, bool]] = []
    real_write, real_back = hashing._write_all, hashing._read_back

    def write(fd: int, mv: memoryview) -> None:
        modes.append(("w", len(mv), _direct(fd)))
        real_write(fd, mv)

    def back(fd: int, buf: memoryview, offset: int) -> int:
        modes.append(("r", len(buf), _direct(fd)))
        return real_back(fd, buf, offset)

    monkeypatch.setattr(hashing, "_write_all", write)
    monkeypatch.setattr(hashing, "_read_back", back)
    in_fd = os.open(src, os.O_RDONLY)
    out_fd = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        result = hash_fd(in_fd, ["sha256"], out_fd=out_fd, size_hint=SIZE)
    finally:
        os.close(in_fd)
        os.close(out_fd)
    assert result.digests["sha256"] == hashlib.sha256(data).hexdigest()
    assert dst.read_bytes() == data
    whole = SIZE // CHUNK
    assert [m for m in modes if m[0] == "w"] == [("w", CHUNK, True)] * whole + [
        ("w", SIZE % CHUNK, False)
    ]
    # each read back once, in order (a whole chunk's read-back may already find the
    # tail's writer gone back to the page cache: it then reads the medium through it)
    assert [m[:2] for m in modes if m[0] == "r"] == [("r", CHUNK)] * whole + [("r", SIZE % CHUNK)]
    assert modes[-1] == ("r", SIZE % CHUNK, False)


def _direct(fd: int) -> bool:
    import fcntl

    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & hashing._O_DIRECT)


@pytest.mark.parametrize(
    "where",
    [0, CHUNK + 7, 3 * CHUNK - 1, SIZE - 1],  # first byte, mid-chunk, a chunk's last, the tail
)
def test_a_byte_changed_on_the_medium_is_caught(
    direct_dir: Path, monkeypatch: pytest.MonkeyPatch, where: int
) -> None:
    """Someone (or something) changes one byte of the copy on the medium between its
    write and its read-back: the read-back, which comes from the medium, catches it
    and the item fails; nothing is named in the store."""
    store = Store(direct_dir / "store")
    src = direct_dir / "f"
    data = os.urandom(SIZE)
    src.write_bytes(data)
    real = hashing._write_all
    done = 0

    def tampering(fd: int, mv: memoryview) -> None:
        nonlocal done
        real(fd, mv)
        start, done = done, done + len(mv)
        if start <= where < done:  # the bytes written are right; the file then differs
            other = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY)
            try:
                os.pwrite(other, bytes([data[where] ^ 0x40]), where)
                os.fsync(other)
            finally:
                os.close(other)

    monkeypatch.setattr(hashing, "_write_all", tampering)
    with pytest.raises(StoreError, match="read-back verification failed") as e:
        _ingest(store, src)
    chunk_at = where // CHUNK * CHUNK
    assert f"at offset {chunk_at}" in e.value.message
    assert [p for p in (direct_dir / "store").rglob("*") if p.is_file()] == []


def _copy(d: Path, data: bytes, algorithms: list[str]) -> hashing.HashResult:
    src, dst = d / "src", d / "dst"
    src.write_bytes(data)
    in_fd = os.open(src, os.O_RDONLY)
    out_fd = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        return hash_fd(in_fd, algorithms, out_fd=out_fd, size_hint=len(data))
    finally:
        os.close(in_fd)
        os.close(out_fd)


def test_refused_direct_write_is_redone_through_the_cache(
    direct_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system that takes O_DIRECT but refuses a direct write (EINVAL) after
    part of it went out: the chunk is written again from its start through the page
    cache, the copy is whole and verified, and direct I/O stays off."""
    data = os.urandom(SIZE)
    real = hashing._write_all
    calls: list[bool] = []

    def refusing(fd: int, mv: memoryview) -> None:
        calls.append(_direct(fd))
        if calls[-1] and len(calls) == 2:
            os.write(fd, mv[:ALIGN])  # part of it went out first
            raise OSError(errno.EINVAL, "Invalid argument")
        real(fd, mv)

    monkeypatch.setattr(hashing, "_write_all", refusing)
    result = _copy(direct_dir, data, ["md5", "sha256"])
    assert (direct_dir / "dst").read_bytes() == data
    assert result.size == SIZE
    assert result.digests == {
        "md5": hashlib.md5(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    # the refused chunk twice, then the page cache for good
    assert calls == [True, True] + [False] * (SIZE // CHUNK)


def test_read_back_compares_with_the_bytes_read(
    direct_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read-back is compared with the bytes read from the source, not with what
    reached the file: a writer that put the first chunk's bytes (aligned, direct)
    where the second belongs fails at the second chunk's offset."""
    data = os.urandom(SIZE)
    real = hashing._write_all
    first = hashing.aligned_buffer(CHUNK)
    n = 0

    def wrong_buffer(fd: int, mv: memoryview) -> None:
        nonlocal n
        n += 1
        if n == 1:
            first[:] = mv
        real(fd, first if n == 2 else mv)

    monkeypatch.setattr(hashing, "_write_all", wrong_buffer)
    with pytest.raises(CopyMismatchError) as e:
        _copy(direct_dir, data, ["sha256"])
    assert (e.value.offset, e.value.length) == (CHUNK, CHUNK)
