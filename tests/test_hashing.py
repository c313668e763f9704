"""hash_fd: one read feeds every digest and the copy, on both the serial and the
threaded path; parse_algorithms validates --hash lists."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custody import hashing
from custody.errors import EXIT_USAGE, UsageError
from custody.hashing import (
    ALGORITHMS,
    CHUNK,
    COPY_CHUNK,
    COPY_RING,
    DEFAULT_ALGORITHMS,
    RING,
    THREADED_MIN,
    HashResult,
    SourceReadError,
    hash_fd,
    hash_file,
    parse_algorithms,
)

ALL = list(ALGORITHMS)


def expected_digests(data: bytes, algorithms: Sequence[str]) -> dict[str, str]:
    return {a: hashlib.new(a, data).hexdigest() for a in algorithms}


@contextmanager
def source_and_sink(data: bytes) -> Iterator[tuple[int, int, Path]]:
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "src"
        dst = Path(d) / "dst"
        src.write_bytes(data)
        in_fd = os.open(src, os.O_RDONLY)
        out_fd = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            yield in_fd, out_fd, dst
        finally:
            os.close(in_fd)
            os.close(out_fd)


def run_hash(
    data: bytes, algorithms: Sequence[str], size_hint: int | None
) -> tuple[HashResult, bytes, int]:
    progressed = 0

    def progress(n: int) -> None:
        nonlocal progressed
        progressed += n

    with source_and_sink(data) as (in_fd, out_fd, dst):
        result = hash_fd(in_fd, algorithms, out_fd=out_fd, size_hint=size_hint, progress=progress)
        copy = dst.read_bytes()
    return result, copy, progressed


def check(data: bytes, algorithms: Sequence[str], size_hint: int | None) -> None:
    result, copy, progressed = run_hash(data, algorithms, size_hint)
    assert result.digests == expected_digests(data, algorithms)
    assert list(result.digests) == list(algorithms)
    assert result.size == len(data)
    assert copy == data
    assert progressed == len(data)


# -- property: arbitrary bytes, any algorithms, either path ----------------------------------

algorithm_lists = st.lists(st.sampled_from(ALL), unique=True)
# the hint only picks the path (serial below THREADED_MIN, threaded otherwise or None);
# a wrong hint must not change the result
hints = st.sampled_from(["exact", None, 0, 10**12])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=20_000), algorithms=algorithm_lists, hint=hints)
def test_hash_fd_matches_hashlib(data: bytes, algorithms: list[str], hint: object) -> None:
    check(data, algorithms, len(data) if hint == "exact" else hint)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pattern=st.binary(min_size=1, max_size=97),
    size=st.integers(min_value=CHUNK - 300, max_value=CHUNK + 300)
    | st.integers(min_value=THREADED_MIN - 300, max_value=THREADED_MIN + 300),
    threaded=st.booleans(),
)
def test_hash_fd_near_boundaries(pattern: bytes, size: int, threaded: bool) -> None:
    data = (pattern * (size // len(pattern) + 1))[:size]
    check(data, ALL, None if threaded else size)


# -- fixed large sizes around the chunk, ring and threaded thresholds -------------------------

SIZES = [
    0,
    1,
    CHUNK - 1,
    CHUNK,
    COPY_CHUNK,
    CHUNK + 1,
    THREADED_MIN - 1,
    THREADED_MIN,
    THREADED_MIN + 1,
    RING * CHUNK + CHUNK // 2 + 1,  # the buffer ring wraps around
    9 * CHUNK + 12345,
    COPY_RING * COPY_CHUNK + CHUNK // 2 + 1,  # the larger ring used when copying wraps around
]


@pytest.fixture(scope="module")
def big_random() -> bytes:
    return os.urandom(max(SIZES))


@pytest.mark.parametrize("hint", ["exact", None])
@pytest.mark.parametrize("size", SIZES)
def test_hash_fd_fixed_sizes(big_random: bytes, size: int, hint: str | None) -> None:
    data = big_random[:size]
    check(data, ALL, size if hint == "exact" else None)


@pytest.mark.parametrize("size_hint", [0, None])
def test_hash_fd_short_reads_from_a_pipe(big_random: bytes, size_hint: int | None) -> None:
    data = big_random[: THREADED_MIN + 3 * CHUNK + 5]
    r, w = os.pipe()

    def feed() -> None:
        try:
            for i in range(0, len(data), 7777):
                os.write(w, data[i : i + 7777])
        finally:
            os.close(w)

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        result = hash_fd(r, ["md5", "sha256", "blake2b"], size_hint=size_hint)
    finally:
        t.join(timeout=30)
        os.close(r)
    assert result.digests == expected_digests(data, ["md5", "sha256", "blake2b"])
    assert result.size == len(data)


def test_hash_file(tmp_path: Path, big_random: bytes) -> None:
    p = tmp_path / "f"
    data = big_random[: THREADED_MIN + 1]
    p.write_bytes(data)
    r = hash_file(p, DEFAULT_ALGORITHMS)
    assert r.digests == expected_digests(data, DEFAULT_ALGORITHMS)
    assert r.size == len(data)


# -- errors are raised, not swallowed, and never hang -------------------------------------------


def _in_thread(fn):  # type: ignore[no-untyped-def]
    box: dict[str, BaseException | object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout=30)
    assert not t.is_alive(), "hash_fd hung"
    return box


@pytest.mark.parametrize("size_hint", [0, None])
def test_read_error_is_source_read_error(tmp_path: Path, size_hint: int | None) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        box = _in_thread(lambda: hash_fd(fd, ALL, size_hint=size_hint))
    finally:
        os.close(fd)
    err = box.get("error")
    assert isinstance(err, SourceReadError)
    assert err.err.errno == errno.EISDIR


@pytest.mark.parametrize("size_hint", [0, None])
def test_write_error_propagates(tmp_path: Path, big_random: bytes, size_hint: int | None) -> None:
    src = tmp_path / "src"
    src.write_bytes(big_random[: THREADED_MIN + 2 * CHUNK])
    (tmp_path / "ro").write_bytes(b"")
    in_fd = os.open(src, os.O_RDONLY)
    bad_out = os.open(tmp_path / "ro", os.O_RDONLY)  # writing to it fails with EBADF
    try:
        box = _in_thread(lambda: hash_fd(in_fd, ALL, out_fd=bad_out, size_hint=size_hint))
    finally:
        os.close(in_fd)
        os.close(bad_out)
    err = box.get("error")
    assert isinstance(err, OSError) and not isinstance(err, SourceReadError)
    assert err.errno == errno.EBADF


# -- parse_algorithms -------------------------------------------------------------------------


def test_parse_algorithms_default() -> None:
    assert parse_algorithms(None) == DEFAULT_ALGORITHMS == ("md5", "sha1", "sha256")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("md5,sha1,sha256", ("md5", "sha1", "sha256")),
        ("sha512,blake2b", ("sha256", "sha512", "blake2b")),
        ("md5", ("md5", "sha256")),
        ("", ("sha256",)),
        (" SHA1 , Md5 ", ("md5", "sha1", "sha256")),
        (["blake2b", "blake2b"], ("sha256", "blake2b")),
    ],
)
def test_parse_algorithms_known(spec: str | list[str], expected: tuple[str, ...]) -> None:
    assert parse_algorithms(spec) == expected


@given(names=st.lists(st.sampled_from(ALL)), as_string=st.booleans())
def test_parse_algorithms_always_includes_sha256(names: list[str], as_string: bool) -> None:
    result = parse_algorithms(",".join(names) if as_string else names)
    assert "sha256" in result
    assert set(result) == set(names) | {"sha256"}
    assert result == tuple(a for a in ALGORITHMS if a in result)  # stable order, no duplicates


@pytest.mark.parametrize(
    "spec", ["md4", "sha-256", "sha3_256", "crc32", "md5,sha1,bogus", ["sha256", "whirlpool"]]
)
def test_parse_algorithms_rejects_unknown(spec: str | list[str]) -> None:
    with pytest.raises(UsageError) as ei:
        parse_algorithms(spec)
    assert ei.value.exit_code == EXIT_USAGE == 2


@given(
    known=st.lists(st.sampled_from(ALL)),
    bad=st.text(alphabet=st.characters(blacklist_characters=","), min_size=1).filter(
        lambda t: bool(t.strip()) and t.strip().lower() not in ALGORITHMS
    ),
    pos=st.integers(min_value=0),
)
def test_parse_algorithms_rejects_any_unknown_name(known: list[str], bad: str, pos: int) -> None:
    names = list(known)
    names.insert(pos % (len(names) + 1), bad)
    with pytest.raises(UsageError):
        parse_algorithms(",".join(names))
    with pytest.raises(UsageError):
        parse_algorithms(names)


def test_large_copy_is_written_out_as_it_grows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the page cache (no direct I/O: the platform or file system has none),
    the kernel is asked to start the writeback of every WRITEBACK_EVERY bytes of a
    copy as it is made (so the syncfs before the ledger names the object has little
    left to wait for): the ranges asked for are contiguous from offset 0."""
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(hashing, "_O_DIRECT", 0)
    monkeypatch.setattr(hashing, "_start_writeback", lambda fd, off, n: calls.append((off, n)))
    every = 2 * COPY_CHUNK  # 32 MiB in use; smaller here to keep the test light
    monkeypatch.setattr(hashing, "WRITEBACK_EVERY", every)
    size = 2 * every + CHUNK + 5
    result, copy, _ = run_hash(b"\x5a" * size, ["sha256"], None)
    assert copy == b"\x5a" * size and result.size == size
    assert calls == [(0, every), (every, every)]
