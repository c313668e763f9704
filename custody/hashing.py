"""One read of the source feeds every digest and the copy.

The copy is verified as it is made: each chunk written is read back from the
copy's file and compared byte for byte with the bytes it was written from (a
mismatch raises :class:`CopyMismatchError`).

Small inputs are hashed in the calling thread, their copy written through the
page cache.  Large inputs use one thread per digest (grouped to the number of
CPUs, MD5 on its own), a thread that writes the copy and one that reads each
written chunk back, all fed from a small ring of reused, page-aligned buffers
(1 MiB; 4 MiB when copying) filled by a single reader, so memory stays constant
whatever the file size and MD5 (serial by nature) is the only bound.  hashlib releases the GIL for
updates of 2 KiB and more, so the digests really run in parallel.  The large copy
goes to the file with direct I/O where the file system allows it: the kernel
neither copies it into the page cache nor writes it back later (that cost as
much CPU as the three digests together), and the read-back comes from the
medium.  Where direct I/O cannot be used, the kernel is asked to start writing
the copy out as it grows, so a later ``syncfs`` has little left to wait for."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import mmap
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
# when copying: the same 16 MiB in 4 MiB chunks absorb the copy thread's waits on the
# file system; a direct write of 4 MiB costs the device far less per byte than 1 MiB
# (dd oflag=direct here: 898 MB/s at 1 MiB, 1.4 GB/s at 4 MiB; collect of 2 GiB with
# three digests 4.31 -> 3.81 s, mean of 5 alternated runs)
COPY_CHUNK = 4 * CHUNK
COPY_RING = 4
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


def _read(fd: int, buf: bytearray | memoryview) -> int:
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


def _read_back(fd: int, buf: memoryview, offset: int) -> int:
    """Fill ``buf`` from ``fd`` at ``offset``; the number of bytes read."""
    got = 0
    while got < len(buf):
        n = os.preadv(fd, [buf[got:]], offset + got)
        if n == 0:
            break
        got += n
    return got


WRITEBACK_EVERY = 32 * CHUNK
# Direct I/O (O_DIRECT) needs buffers, offsets and lengths that are multiples of the
# device's logical block size: 4096 covers every common one.
ALIGN = 4096
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)

_SYNC_FILE_RANGE = _libc.function(
    "sync_file_range", ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint
)
_MEMCMP = _libc.function("memcmp", ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
if _MEMCMP is not None:
    _MEMCMP.restype = ctypes.c_int


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range out (SYNC_FILE_RANGE_WRITE: does not
    wait, makes nothing durable by itself); a no-op where unsupported."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, 2)


def _address(mv: memoryview) -> int | None:
    """Where a writable buffer's bytes start in memory (None for a read-only or an
    empty one)."""
    if mv.readonly or not mv.nbytes:
        return None
    return ctypes.addressof(ctypes.c_char.from_buffer(mv))


def _same(a: memoryview, b: memoryview) -> bool:
    """Whether two buffers hold the same bytes: one memcmp outside the GIL, no copy."""
    if a.nbytes != b.nbytes:
        return False
    pa, pb = _address(a), _address(b)
    if _MEMCMP is None or pa is None or pb is None:
        return a.tobytes() == b.tobytes()
    return bool(_MEMCMP(pa, pb, a.nbytes) == 0)


def aligned_buffer(size: int) -> memoryview:
    """A writable buffer of ``size`` bytes starting on a page boundary (what direct
    I/O needs), freed when the last view of it goes."""
    return memoryview(mmap.mmap(-1, max(size, 1)))[:size]


def _set_direct(fd: int, on: bool) -> bool:
    """Turn direct I/O on ``fd`` on or off; whether it is now on (never where the
    platform or the file system has none)."""
    if not _O_DIRECT:
        return False
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | _O_DIRECT) if on else (flags & ~_O_DIRECT))
    except OSError:
        return not on
    return on


class _Copy:
    """The copy sink: write each chunk at the end of ``fd``, read it back and
    compare it with what was written.

    With ``direct`` (the threaded path), the chunks go to the file with direct I/O
    (``O_DIRECT``): the copy is not copied into the page cache first and the
    read-back comes from the medium, not from the cache.  It falls back to the page
    cache for good at the first chunk direct I/O cannot take (a short last chunk, a
    file system without it); there, the writeback of every ``WRITEBACK_EVERY``
    bytes is started as the copy grows."""

    def __init__(self, fd: int, *, direct: bool = False) -> None:
        self.fd = fd
        self.written = 0  # how far the copy is written (write) ...
        self.offset = 0  # ... and read back (verify): the read-back may follow on a thread
        self.started = 0
        self.scratch: memoryview | None = None
        self.direct = direct and _set_direct(fd, True)

    def _buffered(self) -> None:
        if self.direct:
            self.direct = _set_direct(self.fd, False)
            self.started = self.written  # what came before went straight to the medium

    def write(self, mv: memoryview) -> None:
        n = mv.nbytes
        if self.direct and (n % ALIGN or (_address(mv) or 1) % ALIGN):
            self._buffered()
        try:
            _write_all(self.fd, mv)
        except OSError as e:
            if not (self.direct and e.errno == errno.EINVAL):
                raise
            self._buffered()  # refused by the file system: again, through the cache
            os.lseek(self.fd, self.written, os.SEEK_SET)
            _write_all(self.fd, mv)
        self.written += n

    def verify(self, mv: memoryview) -> None:
        n = mv.nbytes
        if self.scratch is None or n > len(self.scratch):
            self.scratch = aligned_buffer(n) if self.direct else memoryview(bytearray(n))
        back = self.scratch[:n]
        got = _read_back(self.fd, back, self.offset)
        if got != n or not _same(back, mv):
            raise CopyMismatchError(self.offset, n)
        self.offset += n
        if not self.direct and self.offset - self.started >= WRITEBACK_EVERY:
            _start_writeback(self.fd, self.started, self.offset - self.started)
            self.started = self.offset

    def __call__(self, mv: memoryview) -> None:
        self.write(mv)
        self.verify(mv)


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

    def __init__(self, consumers: int, size: int = RING, chunk: int = CHUNK) -> None:
        self.views = [aligned_buffer(chunk) for _ in range(size)]  # direct I/O takes them
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
    copy = None if out_fd is None else _Copy(out_fd, direct=True)
    # the copy is one more consumer of each buffer: a thread that writes it and hands
    # it to a thread that reads it back (both mostly wait on the file system, so the
    # read-back of one chunk overlaps the write of the next)
    if copy is None:
        ring = _Ring(len(sinks))
    else:
        ring = _Ring(len(sinks) + 1, COPY_RING, COPY_CHUNK)
    Msg = tuple[int, int] | None
    queues: list[queue.SimpleQueue[Msg]] = [queue.SimpleQueue() for _ in sinks]
    errors: list[BaseException] = []
    failed = threading.Event()

    def consume(
        q: queue.SimpleQueue[Msg], step: Callable[[int, int], bool], done: Callable[[], None]
    ) -> None:
        """Run ``step`` on each buffer sent; it says whether it passed the buffer on
        (else it is released here)."""
        while True:
            msg = q.get()
            if msg is None:
                done()
                return
            i, n = msg
            passed = False
            try:
                if not failed.is_set():
                    passed = step(i, n)
            except BaseException as e:  # reported to the reader below
                errors.append(e)
                failed.set()
            finally:
                if not passed:
                    ring.release(i)

    def digest(sink: ByteSink) -> Callable[[int, int], bool]:
        def step(i: int, n: int) -> bool:
            sink(ring.views[i][:n])
            return False

        return step

    args: list[tuple[queue.SimpleQueue[Msg], Callable[[int, int], bool], Callable[[], None]]]
    args = [(q, digest(s), _nothing) for s, q in zip(sinks, queues, strict=True)]
    if copy is not None:
        to_write: queue.SimpleQueue[Msg] = queue.SimpleQueue()
        to_verify: queue.SimpleQueue[Msg] = queue.SimpleQueue()

        def write(i: int, n: int) -> bool:
            copy.write(ring.views[i][:n])
            to_verify.put((i, n))
            return True

        def verify(i: int, n: int) -> bool:
            copy.verify(ring.views[i][:n])
            return False

        queues.append(to_write)
        args += [(to_write, write, lambda: to_verify.put(None)), (to_verify, verify, _nothing)]
    threads = [threading.Thread(target=consume, args=a, daemon=True) for a in args]
    for t in threads:
        t.start()
    total = 0
    try:
        while not failed.is_set():
            i = ring.free.get()
            n = _read(fd, ring.views[i])
            if n == 0:
                ring.free.put(i)
                break
            ring.pending[i] = ring.consumers
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


def _nothing() -> None:
    pass


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
