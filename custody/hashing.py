"""One read of the source feeds every digest and the copy.

The copy is verified as it is made: each chunk written is read back from the
copy's file and compared byte for byte with the bytes it was written from (a
mismatch raises :class:`CopyMismatchError`), and the kernel is asked to start
writing large copies out to the medium as they grow, so a later ``syncfs`` has
little left to wait for.

Small inputs are hashed in the calling thread.  Large inputs use one thread per
digest plus one writer thread, all fed from a small ring of reused 1 MiB buffers
filled by a single reader, so memory stays constant whatever the file size and
MD5 (serial by nature) is the only bound.  hashlib releases the GIL for updates
of 2 KiB and more, so the digests really run in parallel.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from custody import _libc
from custody.errors import UsageError
from custody.safeio import open_regular

ALGORITHMS = ("md5", "sha1", "sha256", "sha512", "blake2b")
DEFAULT_ALGORITHMS = ("md5", "sha1", "sha256")
CHUNK = 1 << 20
RING = 4
COPY_RING = 16  # when copying: 16 MiB absorb the copy thread's waits on the file system
THREADED_MIN = 4 * CHUNK

ByteSink = Callable[[memoryview], None]
Progress = Callable[[int], None]


class CopyMismatchError(Exception):
    """A chunk of the copy, read back, differs from the bytes written."""

    def __init__(self, offset: int, length: int) -> None:
        super().__init__(
            f"the copy differs from the bytes read in {length} bytes at offset {offset}"
        )
        self.offset = offset
        self.length = length


class SourceReadError(Exception):
    """Reading the source failed (as opposed to writing the copy)."""

    def __init__(self, err: OSError) -> None:
        super().__init__(str(err))
        self.err = err


def _read(fd: int, buf: bytearray) -> int:
    try:
        return os.readv(fd, [buf])
    except OSError as e:
        raise SourceReadError(e) from e


def parse_algorithms(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """Validate a ``--hash`` list; sha256 is always included (it names objects)."""
    if spec is None:
        return DEFAULT_ALGORITHMS
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    names = [n for n in names if n]
    for n in names:
        if n not in ALGORITHMS:
            raise UsageError(f"unknown hash algorithm {n!r}; choose from {', '.join(ALGORITHMS)}")
    if "sha256" not in names:
        names.append("sha256")
    # keep a stable order
    return tuple(a for a in ALGORITHMS if a in names)


def new_hash(name: str) -> Any:
    return hashlib.new(name)


@dataclass
class HashResult:
    digests: dict[str, str]
    size: int


def _write_all(fd: int, mv: memoryview) -> None:
    while mv:
        n = os.write(fd, mv)
        mv = mv[n:]


def _read_back(fd: int, buf: bytearray, offset: int) -> int:
    """Fill ``buf`` from ``fd`` at ``offset``; the number of bytes read."""
    got = 0
    view = memoryview(buf)
    while got < len(buf):
        n = os.preadv(fd, [view[got:]], offset + got)
        if n == 0:
            break
        got += n
    return got


WRITEBACK_EVERY = 32 * CHUNK

_SYNC_FILE_RANGE = _libc.function(
    "sync_file_range", ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint
)


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range out (SYNC_FILE_RANGE_WRITE: does not
    wait, makes nothing durable by itself); a no-op where unsupported."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, 2)


class _Copy:
    """The copy sink: write each chunk at the end of ``fd``, read it back and
    compare it with what was written, and start the writeback of every
    ``WRITEBACK_EVERY`` bytes."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.offset = 0
        self.started = 0
        self.scratch = bytearray()

    def __call__(self, mv: memoryview) -> None:
        n = mv.nbytes
        _write_all(self.fd, mv)
        if len(self.scratch) != n:
            self.scratch = bytearray(n)
        got = _read_back(self.fd, self.scratch, self.offset)
        src = mv.obj  # a whole buffer compares as bytearray == bytearray (memcmp)
        whole = isinstance(src, (bytes, bytearray)) and len(src) == n
        if got != n or self.scratch != (src if whole else mv.tobytes()):
            raise CopyMismatchError(self.offset, n)
        self.offset += n
        if self.offset - self.started >= WRITEBACK_EVERY:
            _start_writeback(self.fd, self.started, self.offset - self.started)
            self.started = self.offset


def hash_fd(
    fd: int,
    algorithms: Sequence[str],
    *,
    out_fd: int | None = None,
    size_hint: int | None = None,
    progress: Progress | None = None,
) -> HashResult:
    """Read ``fd`` to EOF once, feeding every digest and (optionally) the copy
    ``out_fd`` (a new, empty file open for reading and writing), verified as it
    is written."""
    if size_hint is not None and size_hint < THREADED_MIN:
        return _hash_serial(fd, algorithms, out_fd, progress, size_hint)
    return _hash_threaded(fd, algorithms, out_fd, progress)


def _hash_serial(
    fd: int,
    algorithms: Sequence[str],
    out_fd: int | None,
    progress: Progress | None,
    size_hint: int | None = None,
) -> HashResult:
    hashes = [new_hash(a) for a in algorithms]
    copy = None if out_fd is None else _Copy(out_fd)
    buf = bytearray(CHUNK if size_hint is None else max(1, min(CHUNK, size_hint + 1)))
    mv = memoryview(buf)
    total = 0
    while True:
        n = _read(fd, buf)
        if n == 0:
            break
        chunk = mv[:n]
        for h in hashes:
            h.update(chunk)
        if copy is not None:
            copy(chunk)
        total += n
        if progress is not None:
            progress(n)
        if n == len(buf) < CHUNK:  # more than its size said (a pipe, /proc, a growing
            buf = bytearray(CHUNK)  # file): read on in whole chunks, not byte by byte
            mv = memoryview(buf)
    return HashResult({a: h.hexdigest() for a, h in zip(algorithms, hashes, strict=True)}, total)


class _Ring:
    """Reused buffers, each released when every consumer has finished with it."""

    def __init__(self, consumers: int, size: int = RING) -> None:
        self.bufs = [bytearray(CHUNK) for _ in range(size)]
        self.views = [memoryview(b) for b in self.bufs]
        self.pending = [0] * size
        self.lock = threading.Lock()
        self.free: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.consumers = consumers
        for i in range(size):
            self.free.put(i)

    def release(self, i: int) -> None:
        with self.lock:
            self.pending[i] -= 1
            last = self.pending[i] == 0
        if last:
            self.free.put(i)


# Relative CPU cost per byte (measured with OpenSSL's hashlib on x86-64 with SHA
# extensions): used only to spread the work over the CPUs, never for results.
COST = {"md5": 1.85, "sha1": 0.75, "sha256": 0.8, "sha512": 1.2, "blake2b": 1.0}


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _group(weighted: list[tuple[float, ByteSink]], n: int) -> list[ByteSink]:
    """Spread the sinks over ``n`` threads, heaviest first onto the lightest thread
    (more threads than CPUs only adds switching: MD5, serial by nature, gets a
    thread of its own and the rest share)."""
    groups: list[tuple[float, list[ByteSink]]] = [(0.0, []) for _ in range(min(n, len(weighted)))]
    for cost, sink in sorted(weighted, key=lambda w: -w[0]):
        i = min(range(len(groups)), key=lambda g: groups[g][0])
        groups[i] = (groups[i][0] + cost, [*groups[i][1], sink])

    def run_all(fns: list[ByteSink]) -> ByteSink:
        def run(mv: memoryview) -> None:
            for fn in fns:
                fn(mv)

        return run

    return [fns[0] if len(fns) == 1 else run_all(fns) for _, fns in groups]


def _hash_threaded(
    fd: int, algorithms: Sequence[str], out_fd: int | None, progress: Progress | None
) -> HashResult:
    hashes = [new_hash(a) for a in algorithms]
    weighted: list[tuple[float, ByteSink]] = [
        (COST.get(a, 1.0), h.update) for a, h in zip(algorithms, hashes, strict=True)
    ]
    sinks = _group(weighted, _cpus())
    if out_fd is not None:  # a thread of its own: it mostly waits on the file system
        sinks.append(_Copy(out_fd))
    ring = _Ring(len(sinks), RING if out_fd is None else COPY_RING)
    queues: list[queue.SimpleQueue[tuple[int, int] | None]] = [queue.SimpleQueue() for _ in sinks]
    errors: list[BaseException] = []
    failed = threading.Event()

    def work(sink: ByteSink, q: queue.SimpleQueue[tuple[int, int] | None]) -> None:
        while True:
            msg = q.get()
            if msg is None:
                return
            i, n = msg
            try:
                if not failed.is_set():
                    sink(ring.views[i][:n])
            except BaseException as e:  # reported to the reader below
                errors.append(e)
                failed.set()
            finally:
                ring.release(i)

    threads = [
        threading.Thread(target=work, args=(s, q), daemon=True)
        for s, q in zip(sinks, queues, strict=True)
    ]
    for t in threads:
        t.start()
    total = 0
    try:
        while not failed.is_set():
            i = ring.free.get()
            n = _read(fd, ring.bufs[i])
            if n == 0:
                ring.free.put(i)
                break
            ring.pending[i] = len(sinks)
            for q in queues:
                q.put((i, n))
            total += n
            if progress is not None:
                progress(n)
    finally:
        for q in queues:
            q.put(None)
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return HashResult({a: h.hexdigest() for a, h in zip(algorithms, hashes, strict=True)}, total)


def hash_file(
    path: str | os.PathLike[str], algorithms: Sequence[str], progress: Progress | None = None
) -> HashResult:
    """Hash a regular file by path (used to re-hash store objects and a folder
    bundle's payload): a link, a FIFO or a device there raises
    :class:`custody.safeio.NotRegularFileError` (an ``OSError``) instead of
    blocking or reading forever."""
    fd, st = open_regular(path)
    try:
        size = st.st_size
        return hash_fd(fd, algorithms, size_hint=size, progress=progress)
    finally:
        os.close(fd)
