"""Collection: walk the named paths, give every path reached exactly one outcome,
copy regular files (and explicitly named block devices or images) into the store
while hashing them, and record each as a signed ``collect`` event.

Outcomes: ``collected``, ``unstable`` (size/mtime/inode changed while read; the
bytes read are kept and both stat snapshots recorded), ``unreadable`` (with the OS
error), ``vanished`` (gone before it could be opened), ``symlink`` (target
recorded, never followed), ``special`` (FIFO, socket or device met in a walk:
recorded, never opened), ``directory``, ``excluded`` (not collected, and not
descended into: the case's own folder, always; a path matched by an ``--exclude``
glob; a mount point with ``--one-file-system``) and ``failed`` (the store could
not take it: the run stops there, with every earlier item kept).
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import grp
import json
import os
import platform
import pwd
import signal
import socket
import stat
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custody import __version__, filetype
from custody.buildcollector import collector_fields
from custody.canonical import rfc3339_ns
from custody.errors import (
    BadPathError,
    CustodyError,
    OperationalError,
    StoreError,
    UsageError,
)
from custody.hashing import SourceReadError
from custody.keys import Signer
from custody.ledger import COLLECT_EVENT, Event, EventDraft, Ledger
from custody.store import Store, Stored, WritersLock, lock_held, object_sha256, open_private


class SelftestFailedError(OperationalError):
    """The self-test before a case's first collection failed (exit 3)."""


class CollectionInterruptedError(CustodyError):
    """Ctrl-C (SIGINT) stopped a collection after its start was recorded: what was
    recorded stays; ``collect --resume`` finishes the run (exit 130, as a shell
    reports a process ended by SIGINT)."""

    exit_code = 130


def check_reason(reason: str) -> str:
    """A collection's reason: required, and not blank."""
    if not reason.strip():
        raise UsageError("--reason is required: say why these items are collected")
    return reason


RUN_START_EVENT = "collection.start"
RUN_END_EVENT = "collection.end"
FLUSH_ITEMS = 1024  # events per transaction (and per syncfs of the store before it)
FLUSH_SECONDS = 1.0

ProgressFn = Callable[[int, int], None]  # (bytes, files) done since last call
ItemFn = Callable[[dict[str, Any]], None]  # an item as recorded (summary.items' form)
#: Called after the run's start is recorded, before the walk, with the roots; returns
#: the roots to walk instead (custody.profiles uses it).
PreWalkFn = Callable[["Collector", list[bytes]], list[bytes]]


def display_path(raw: bytes) -> str:
    """Human-readable path: UTF-8 where valid, ``\\xNN`` escapes elsewhere."""
    return raw.decode("utf-8", errors="backslashreplace")


def kind_of(mode: int) -> str:
    for test, name in (
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "chardev"),
        (stat.S_ISBLK, "blockdev"),
    ):
        if test(mode):
            return name
    return "unknown"


_names: dict[tuple[str, int], str | None] = {}


def _owner(uid: int) -> str | None:
    key = ("u", uid)
    if key not in _names:
        try:
            _names[key] = pwd.getpwuid(uid).pw_name
        except KeyError:
            _names[key] = None
    return _names[key]


def _group(gid: int) -> str | None:
    key = ("g", gid)
    if key not in _names:
        try:
            _names[key] = grp.getgrgid(gid).gr_name
        except KeyError:
            _names[key] = None
    return _names[key]


def stat_record(st: os.stat_result) -> dict[str, Any]:
    """The stat of a path as recorded in a signed body.  Values that may exceed
    2^53 (nanosecond times, inode and device numbers) are decimal strings, since
    RFC 8785 numbers are doubles; times are also given as RFC 3339 strings."""
    rec: dict[str, Any] = {
        "kind": kind_of(st.st_mode),
        "mode": st.st_mode,
        "mode_str": stat.filemode(st.st_mode),
        "size": st.st_size,
        "blocks": st.st_blocks,
        "inode": str(st.st_ino),
        "device": str(st.st_dev),
        "nlink": st.st_nlink,
        "uid": st.st_uid,
        "gid": st.st_gid,
        "owner": _owner(st.st_uid),
        "group": _group(st.st_gid),
    }
    times = [("atime", st.st_atime_ns), ("mtime", st.st_mtime_ns), ("ctime", st.st_ctime_ns)]
    birth = getattr(st, "st_birthtime_ns", None)
    if birth is not None:
        times.append(("birthtime", birth))
    for name, ns in times:
        rec[f"{name}_ns"] = str(ns)
        rec[name] = rfc3339_ns(ns)
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        rec["rdev"] = str(st.st_rdev)
    return rec


def error_record(e: OSError) -> dict[str, Any]:
    code = e.errno or 0
    return {
        "errno": code,
        "name": errno.errorcode.get(code, "UNKNOWN"),
        "message": e.strerror or str(e),
    }


def _unstable(before: os.stat_result, after: os.stat_result, read: int | None) -> bool:
    if (before.st_ino, before.st_dev) != (after.st_ino, after.st_dev):
        return True
    if before.st_size != after.st_size or before.st_mtime_ns != after.st_mtime_ns:
        return True
    return read is not None and stat.S_ISREG(before.st_mode) and read != before.st_size


@dataclass
class CollectSummary:
    run: str
    case_id: str
    items: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    new_objects: int = 0
    deduplicated: int = 0
    status: str = "complete"
    resumed: str | None = None  # the run this one finished
    skipped: int = 0  # paths already recorded by the resumed run
    cleanup: Event | None = None  # orphans of interrupted runs removed first
    selftest: int | None = None  # seq of the self-test this run recorded (first in a case)
    untyped: str | None = None  # why stored objects were not typed (no libmagic)
    described: int = 0  # store objects typed after the copy phase (describe events)
    undescribed: list[str] = field(default_factory=list)  # objects that could not be typed

    def totals(self) -> dict[str, Any]:
        """The summary without its item list (``collect --jsonl``'s last line)."""
        out = self.as_json()
        del out["items"]
        out["items"] = len(self.items)
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "resumed": self.resumed,
            "skipped": self.skipped,
            "cleanup_event": self.cleanup.seq if self.cleanup else None,
            "selftest_event": self.selftest,
            "case": self.case_id,
            "status": self.status,
            "counts": dict(sorted(self.counts.items())),
            "bytes": self.bytes,
            "new_objects": self.new_objects,
            "deduplicated": self.deduplicated,
            "untyped": self.untyped,
            "described": self.described,
            "undescribed": self.undescribed,
            "items": self.items,
        }


@dataclass
class _Link:
    path: bytes
    before: os.stat_result
    extra: dict[str, Any]


@dataclass
class _Pending:
    data: dict[str, Any]


@dataclass
class _Entry:
    """A path reached by the walk, to be opened relative to its parent directory's
    open descriptor (``dir_fd``; None for a named root): no path length limit
    applies, and a parent renamed mid-walk cannot redirect the walk."""

    path: bytes  # the full path, as recorded
    dir_fd: int | None
    name: bytes  # relative to dir_fd (the full path for a root)
    st: os.stat_result | OSError
    explicit: bool
    list_error: OSError | None = None  # a directory that could not be listed
    excluded: dict[str, str] | None = None  # why it was not collected nor descended into


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_dir(dir_fd: int | None, name: bytes) -> tuple[int, list[bytes]] | OSError:
    try:
        try:  # listing a directory must not change its atime either
            fd = os.open(name, _DIR_FLAGS | getattr(os, "O_NOATIME", 0), dir_fd=dir_fd)
        except PermissionError:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)  # O_NOATIME needs ownership
    except OSError as e:
        return e
    try:
        with os.scandir(fd) as it:
            names = sorted(os.fsencode(entry.name) for entry in it)
    except OSError as e:
        os.close(fd)
        return e
    return fd, names


@dataclass(frozen=True)
class WalkRules:
    """What a walk leaves out.  Every path left out is still reached and recorded
    (outcome ``excluded``, with the rule), and a directory left out is not
    descended into.

    * the case's own folder (``case_dir``, resolved): always, whether named or met;
    * ``exclude``: shell globs (``fnmatch``: ``*`` and ``?`` match any characters,
      ``/`` included; ``[...]`` a set; case-sensitive), each tried against a walked
      path's name (its last component) and against its path relative to the
      directory named on the command line (``logs/*.gz``); a path named on the
      command line itself is never excluded by a glob;
    * ``one_file_system``: paths on another file system (device) than the named
      path they were reached from (mount points are recorded, not descended into).
    """

    exclude: tuple[str, ...] = ()
    one_file_system: bool = False
    case_dir: bytes | None = None

    def __post_init__(self) -> None:
        for g in self.exclude:
            if not g or "\x00" in g:
                raise UsageError(f"--exclude needs a non-empty glob, got {g!r}")
        object.__setattr__(self, "_globs", tuple(os.fsencode(g) for g in self.exclude))
        ident: tuple[int, int] | None = None
        if self.case_dir is not None:
            try:
                cst = os.stat(self.case_dir)
                ident = (cst.st_dev, cst.st_ino)
            except OSError:
                ident = None
        object.__setattr__(self, "_case_ident", ident)

    def _in_case(self, st: os.stat_result) -> bool:
        ident: tuple[int, int] | None = getattr(self, "_case_ident", None)
        return ident is not None and stat.S_ISDIR(st.st_mode) and (st.st_dev, st.st_ino) == ident

    def root_excluded(self, root: bytes, st: os.stat_result) -> dict[str, str] | None:
        """A named path inside the case's own folder (or the folder itself)."""
        if self.case_dir is None:
            return None
        parent, name = os.path.split(root.rstrip(b"/") or b"/")
        real = os.path.join(os.path.realpath(parent or b"."), name) if name else root
        case = os.path.realpath(self.case_dir)
        if self._in_case(st) or real == case or real.startswith(case.rstrip(b"/") + b"/"):
            return {"rule": "case-folder"}
        return None

    def excluded(
        self, rel: bytes, name: bytes, st: os.stat_result, root_dev: int
    ) -> dict[str, str] | None:
        """Why a walked path (``rel`` to its named root) is left out, or None."""
        if self._in_case(st):
            return {"rule": "case-folder"}
        globs: tuple[bytes, ...] = getattr(self, "_globs", ())
        for g, text in zip(globs, self.exclude, strict=True):
            if fnmatch.fnmatchcase(name, g) or fnmatch.fnmatchcase(rel, g):
                return {"rule": "exclude", "pattern": text}
        if self.one_file_system and st.st_dev != root_dev:
            return {"rule": "one-file-system"}
        return None


def _walk(roots: Sequence[bytes], rules: WalkRules | None = None) -> Iterator[_Entry]:
    """Every path under ``roots``, depth first, directories before their entries,
    never following symlinks nor descending into what ``rules`` exclude.  An
    entry's ``dir_fd`` stays open until the consumer asks for the next entry.
    Iterative: any depth works."""
    for root in roots:
        yield from _walk_root(root, rules or WalkRules())


def _walk_root(root: bytes, rules: WalkRules) -> Iterator[_Entry]:
    try:
        st = os.lstat(root)
    except OSError as e:
        yield _Entry(root, None, root, e, True)
        return
    top = _Entry(root, None, root, st, True, excluded=rules.root_excluded(root, st))
    if not stat.S_ISDIR(st.st_mode) or top.excluded is not None:
        yield top
        return
    opened = _open_dir(None, root)
    if isinstance(opened, OSError):
        top.list_error = opened
        yield top
        return
    base_len = len(root.rstrip(b"/")) + 1
    root_dev = st.st_dev
    frames: list[tuple[int, bytes, Iterator[bytes]]] = [
        (opened[0], root.rstrip(b"/"), iter(opened[1]))
    ]
    try:
        yield top
        while frames:
            fd, base, names = frames[-1]
            name = next(names, None)
            if name is None:
                os.close(fd)
                frames.pop()
                continue
            path = base + b"/" + name
            try:
                st = os.lstat(name, dir_fd=fd)
            except OSError as e:
                yield _Entry(path, fd, name, e, False)
                continue
            entry = _Entry(path, fd, name, st, False)
            entry.excluded = rules.excluded(path[base_len:], name, st, root_dev)
            if stat.S_ISDIR(st.st_mode) and entry.excluded is None:
                sub = _open_dir(fd, name)
                if isinstance(sub, OSError):
                    entry.list_error = sub
                else:
                    frames.append((sub[0], path, iter(sub[1])))
            yield entry
    finally:
        for fd, _, _ in frames:
            os.close(fd)


def raise_fd_limit() -> None:
    """The walk holds one descriptor per directory level: allow deep trees."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def check_paths(paths: Sequence[str | bytes]) -> list[bytes]:
    """Every path named must exist (as a name: a dangling symlink is fine)."""
    raw = [os.fsencode(p) for p in paths]
    missing = []
    for p in raw:
        try:
            os.lstat(p)
        except FileNotFoundError:
            missing.append(display_path(p))
        except OSError as e:
            raise BadPathError(f"cannot examine {display_path(p)}: {e.strerror}") from e
    if missing:
        raise BadPathError("no such file or directory: " + ", ".join(missing))
    if not raw:
        raise BadPathError("nothing to collect: name at least one path")
    return raw


def estimate(paths: Sequence[str | bytes], rules: WalkRules | None = None) -> tuple[int, int]:
    """(bytes, files) a collection of ``paths`` will read, for progress bars."""
    total_bytes = total_files = 0
    for e in _walk([os.fsencode(p) for p in paths], rules):
        if isinstance(e.st, OSError) or e.excluded is not None:
            continue
        total_files += 1
        if stat.S_ISREG(e.st.st_mode) or (e.explicit and stat.S_ISBLK(e.st.st_mode)):
            total_bytes += e.st.st_size
    return total_bytes, total_files


# -- reading one file: here, or in a worker process ------------------------------

#: regular files up to this size met in a walk are read by worker processes (a
#: larger one is read here, its digests on threads of their own: custody.hashing)
POOL_MAX_SIZE = 1 << 20
POOL_AFTER = 64  # small files the walk meets before the pool starts
POOL_BATCH = 256  # files per task handed to a worker (fewer, bigger messages)
POOL_MAX_PATH = 3072  # a longer path is opened through its directory's descriptor, here


@dataclass
class _Read:
    """What reading one file into the store gave (picklable: a worker's answer)."""

    opened: OSError | None = None  # open failed
    before: os.stat_result | None = None  # fstat of the opened file
    size: int = 0  # bytes to read (a block device: its size)
    replaced: bool = False  # not the file the walk met (or no longer a file)
    read_error: OSError | None = None  # reading the source failed
    failure: StoreError | None = None  # the store could not take it
    stored: Stored | None = None
    #: changed while read (:func:`_changed`); only then are the two stats after the
    #: read kept (they are recorded): a worker's answer stays small
    changed: bool = False
    after: os.stat_result | None = None  # fstat after reading
    post: os.stat_result | None = None  # lstat of the path after reading (None: gone)


def _open_source(dir_fd: int | None, name: bytes) -> int:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    noatime = getattr(os, "O_NOATIME", 0)
    if noatime:
        try:
            return os.open(name, flags | noatime, dir_fd=dir_fd)
        except PermissionError:
            pass  # O_NOATIME needs ownership or CAP_FOWNER; fall back
    return os.open(name, flags, dir_fd=dir_fd)


def read_file(
    store: Store,
    algorithms: Sequence[str],
    dir_fd: int | None,
    name: bytes,
    ident: tuple[int, int],
    progress: Callable[[int], None] | None = None,
) -> _Read:
    """Open ``name`` (relative to ``dir_fd``) without following a symlink or
    blocking, check it is the file the walk met (``ident``: inode, device), and
    copy it into the store while hashing it (one read, the copy read back)."""
    got = _Read()
    try:
        fd = _open_source(dir_fd, name)
    except OSError as err:
        got.opened = err
        return got
    try:
        before = got.before = os.fstat(fd)
        size = before.st_size
        if stat.S_ISBLK(before.st_mode):
            size = os.lseek(fd, 0, os.SEEK_END)
            os.lseek(fd, 0, os.SEEK_SET)
        got.size = size
        if (
            not (stat.S_ISREG(before.st_mode) or stat.S_ISBLK(before.st_mode))
            or (
                before.st_ino,
                before.st_dev,
            )
            != ident
        ):
            got.replaced = True
            return got
        try:
            stored = got.stored = store.ingest(fd, algorithms, size_hint=size, progress=progress)
        except SourceReadError as err:
            got.read_error = err.err
            return got
        except StoreError as err:
            got.failure = err
            return got
        after = os.fstat(fd)
    finally:
        os.close(fd)
    try:
        post: os.stat_result | None = os.lstat(name, dir_fd=dir_fd)
    except OSError:
        post = None
    if _changed(before, after, post, stored.result.size):
        got.changed, got.after, got.post = True, after, post
    return got


def _changed(
    before: os.stat_result, after: os.stat_result, post: os.stat_result | None, read: int
) -> bool:
    """Did the file change while it was read (``before``/``after``: fstat of the
    open file; ``post``: lstat of its path afterwards, None when gone; ``read``:
    bytes read)?  A block device's size is not its stat's."""
    if _unstable(before, after, None if stat.S_ISBLK(before.st_mode) else read):
        return True
    return post is None or (post.st_ino, post.st_dev) != (before.st_ino, before.st_dev)


_worker: tuple[Store, tuple[str, ...]] | None = None


def _die_with_parent() -> None:
    """A worker ends when the collector does, even killed by ``kill -9``: it must
    not hold the writers' lock (inherited) or write objects after its run."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _init_reader(
    root: str, layout: str, algorithms: tuple[str, ...], parent: int, lock_fds: tuple[int, ...]
) -> None:
    global _worker
    for fd in lock_fds:  # the collector's locks end with it, not with its readers
        os.close(fd)
    _die_with_parent()
    if os.getppid() != parent:  # the collector died before the line above
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the collector's to handle
    _worker = (Store(Path(root), deferred_sync=True, layout=layout), algorithms)


def _read_batch(jobs: list[tuple[bytes, tuple[int, int]]]) -> list[_Read]:
    """A worker's task: read each (full path, walk identity) into the store."""
    assert _worker is not None
    store, algorithms = _worker
    return [read_file(store, algorithms, None, path, ident) for path, ident in jobs]


_Queued = tuple[bytes, os.stat_result]  # path, the walk's stat


@dataclass
class _Job:
    batch: list[_Queued]
    future: Future[list[_Read]]

    def done(self) -> bool:
        return self.future.done()

    def results(self) -> list[_Read]:
        try:
            got: list[_Read] = self.future.result()
        except BrokenProcessPool as e:
            raise StoreError(f"a reader process of the collection died: {e}") from e
        return got


class _ReaderPool:
    """Worker processes that open, read, hash and copy small files into the store
    (``fork``ed: they start in milliseconds).  They let go of the collector's
    locks (the writers' and the run's: those end with the collector, whose death
    kills them, ``PR_SET_PDEATHSIG``).  The collector records their answers in
    order and makes their objects durable (``syncfs``) before it names them."""

    def __init__(
        self, store: Store, algorithms: Sequence[str], workers: int, lock_fds: tuple[int, ...]
    ) -> None:
        import multiprocessing

        # enough work queued that the readers go on while the collector records (and
        # syncs) a whole transaction's items
        self.max_inflight = max(2 * workers + 2, 2 * FLUSH_ITEMS // POOL_BATCH)
        self._ex = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_init_reader,
            initargs=(
                os.fspath(store.root),
                store.layout,
                tuple(algorithms),
                os.getpid(),
                lock_fds,
            ),
        )

    def submit(self, batch: list[_Queued]) -> _Job:
        jobs = [(path, (st.st_ino, st.st_dev)) for path, st in batch]
        return _Job(batch, self._ex.submit(_read_batch, jobs))

    def close(self) -> None:
        self._ex.shutdown(wait=True, cancel_futures=True)


def reader_workers() -> int:
    """Worker processes for small files: one per CPU, at least two (they wait on
    the file system as much as they compute); ``CUSTODY_READERS`` overrides (0: read
    every file in the collector's own process)."""
    env = os.environ.get("CUSTODY_READERS", "")
    if env.isascii() and env.isdigit() and len(env) <= 6:  # not "²"
        return int(env)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(2, cpus)


class Collector:
    def __init__(
        self,
        ledger: Ledger,
        signer: Signer,
        *,
        reason: str,
        algorithms: Sequence[str],
        progress: ProgressFn | None = None,
        selftest: bool = True,
        exclude: Sequence[str] = (),
        one_file_system: bool = False,
        on_item: ItemFn | None = None,
        describe: bool = True,
        pre_walk: PreWalkFn | None = None,
    ) -> None:
        self.ledger = ledger
        self.pre_walk = pre_walk  # e.g. a profile run: volatile steps, then its paths
        self.selftest = selftest
        self.signer = signer
        self.reason = reason
        self.rules = WalkRules(
            tuple(exclude), one_file_system, os.fsencode(os.path.abspath(ledger.case_dir))
        )
        self.on_item = on_item
        self.algorithms = tuple(algorithms)
        self.progress = progress
        self.store = Store(ledger.store_dir, deferred_sync=True)
        self.run = str(uuid.uuid4())
        self.context = {
            "host": socket.gethostname(),
            "os": platform.platform(),
            "tool": f"custody {__version__}",
        }
        self.summary = CollectSummary(run=self.run, case_id=ledger.case.case_id)
        self._started = False
        self._pending: list[_Pending] = []
        self._last_flush = time.monotonic()
        self.describe = describe
        if describe:
            self.summary.untyped = filetype.unavailable()
        self._stored: dict[str, None] = {}  # SHA-256 of the objects this run stored
        self._skip: set[str] = set()
        self._links: dict[tuple[int, int], _Link] = {}  # (device, inode) read this run
        self._pool: _ReaderPool | None = None  # started once the walk meets small files
        self._lock_fds: tuple[int, ...] = ()
        self._pool_workers = reader_workers()
        self._small = 0
        self._batch: list[_Queued] = []
        self._inflight: deque[_Job] = deque()
        raise_fd_limit()

    # -- recording ----------------------------------------------------------

    def _flush(self) -> None:
        if not self._pending:
            return
        # every object these events name is durable before they are: the syncfs runs
        # while the events are signed, and the commit waits for it
        synced = self.store.sync_begin()
        drafts = [EventDraft(type=COLLECT_EVENT, data=p.data, new_item=True) for p in self._pending]
        self.noted(self.ledger.append(self.signer, drafts, after=lambda _last: synced()))
        self._pending.clear()
        self._last_flush = time.monotonic()

    def noted(self, events: Sequence[Event]) -> None:
        """The run's items just recorded (by :meth:`_flush`, or a capture inside the
        run) into its summary, and to ``on_item``."""
        for ev in events:
            if ev.type != COLLECT_EVENT:
                continue
            d = ev.data
            item = {
                "id": ev.item,
                "path": d["path"]["display"],
                "path_hex": d["path"]["hex"],
                "outcome": d["outcome"],
                "size": d.get("size"),
                "sha256": d.get("digests", {}).get("sha256"),
                "event": ev.hash,
            }
            if "excluded_by" in d:
                item["excluded_by"] = d["excluded_by"]
            self.summary.items.append(item)
            if self.on_item is not None:
                self.on_item(item)

    def _record(
        self,
        path: bytes,
        outcome: str,
        **extra: Any,
    ) -> None:
        data: dict[str, Any] = {
            "run": self.run,
            "outcome": outcome,
            "path": {"hex": path.hex(), "display": display_path(path)},
            "reason": self.reason,
            **self.context,
            **extra,
        }
        self.summary.counts[outcome] = self.summary.counts.get(outcome, 0) + 1
        self._pending.append(_Pending(data))
        if (
            len(self._pending) >= FLUSH_ITEMS
            or time.monotonic() - self._last_flush >= FLUSH_SECONDS
        ):
            self._flush()

    # -- the run ------------------------------------------------------------

    def collect(self, paths: Sequence[str | bytes], *, resume: Run | None = None) -> CollectSummary:
        """Collect ``paths``; or, with ``resume``, finish that interrupted run: its
        paths again, skipping every path it (or a run it resumed) already recorded."""
        if resume is not None:  # a path gone since is recorded as vanished, not refused
            roots = [os.path.abspath(bytes.fromhex(p["hex"])) for p in resume.paths]
        else:
            # absolute (never symlink-resolved) paths: what was typed is ambiguous later
            roots = [os.path.abspath(p) for p in check_paths(paths)]
            check_reason(self.reason)  # a resumed run keeps the reason it was started with
        self.ledger.require_writable()
        from custody.selftest import case_has_selftest  # here: its vectors cost start-up

        if self.selftest and not case_has_selftest(self.ledger):
            self._selftest()
        writers = WritersLock(self.ledger.store_dir)
        try:
            if writers.acquire():  # no other writer alive: clean what dead ones left
                try:
                    self.summary.cleanup = clean_orphans(self.ledger, self.signer, self.store)
                finally:
                    writers.share()
            with _RunLock(self.store, self.run) as run_lock:
                # the locks are this process's: a reader forked from it lets go of them
                self._lock_fds = tuple(fd for fd in (writers.fd, run_lock.fd) if fd is not None)
                return self._run(roots, resume)
        finally:
            writers.release()

    def _selftest(self) -> None:
        """Once per case: prove, in a signed record, that every algorithm gave the
        known answers on this machine today, before the first item is collected."""
        from custody.selftest import record_selftest, run_selftest

        result = run_selftest()
        ev = record_selftest(self.ledger, self.signer, result, once=True)
        self.summary.selftest = ev.seq if ev else None
        if not result.ok and ev is not None:
            names = ", ".join(c.name for c in result.failed)
            raise SelftestFailedError(
                f"self-test failed ({names}), recorded as event {ev.seq}: this machine does not"
                " compute custody's algorithms correctly; nothing was collected"
            )

    def _run(self, roots: list[bytes], resume: Run | None) -> CollectSummary:
        drafts = []
        start: dict[str, Any] = {
            "run": self.run,
            "reason": self.reason,
            "paths": [{"hex": r.hex(), "display": display_path(r)} for r in roots],
            "algorithms": list(self.algorithms),
            "cwd": {"hex": os.getcwdb().hex(), "display": display_path(os.getcwdb())},
            **self.context,
            **collector_fields(),  # the collector zipapp's own sha256, when run from one
        }
        if self.rules.exclude:
            start["exclude"] = list(self.rules.exclude)
        if self.rules.one_file_system:
            start["one_file_system"] = True
        if resume is not None:
            chain = _resume_chain(self.ledger, resume)
            self._skip = {
                str(h)
                for (h,) in self.ledger.conn.execute(
                    "SELECT path_hex FROM artifacts WHERE run IN (SELECT value FROM json_each(?))",
                    (json.dumps(chain),),
                )
            }
            for (sha,) in self.ledger.conn.execute(  # typed after this run, as its own
                "SELECT sha256 FROM artifacts WHERE sha256 IS NOT NULL AND run IN"
                " (SELECT value FROM json_each(?))",
                (json.dumps(chain),),
            ):
                self._stored[str(sha)] = None
            counts = dict(
                self.ledger.conn.execute(
                    "SELECT outcome, count(*) FROM artifacts WHERE run = ? GROUP BY outcome"
                    " ORDER BY outcome",
                    (resume.run,),
                ).fetchall()
            )
            (done,) = self.ledger.conn.execute(
                "SELECT coalesce(sum(size), 0) FROM artifacts WHERE run = ? AND sha256 IS NOT NULL",
                (resume.run,),
            ).fetchone()
            drafts.append(
                EventDraft(
                    type=RUN_END_EVENT,
                    data={
                        "run": resume.run,
                        "status": "interrupted",
                        "counts": counts,
                        "bytes": int(done),
                        "resumed_by": self.run,
                    },
                )
            )
            start["resumes"] = resume.run
            self.summary.resumed = resume.run
            self.summary.skipped = len(self._skip)
        drafts.append(EventDraft(type=RUN_START_EVENT, data=start))

        def checked() -> list[EventDraft]:
            # decided inside the write lock: two resumers cannot both finish one run
            if (
                resume is not None
                and self.ledger.conn.execute(
                    "SELECT 1 FROM events WHERE type = ? AND json_extract(body, '$.data.run') = ?"
                    " LIMIT 1",
                    (RUN_END_EVENT, resume.run),
                ).fetchone()
            ):
                raise UsageError(
                    f"collection {resume.run} was resumed by another process meanwhile;"
                    " nothing was collected"
                )
            return drafts

        self.ledger.append(self.signer, checked)
        error: StoreError | None = None
        interrupted = False
        try:
            try:
                if self.pre_walk is not None:
                    roots = self.pre_walk(self, roots)
                for entry in _walk(roots, self.rules):
                    self._one(entry)
                    if self.progress is not None:
                        self.progress(0, 1)
                self._pool_finish(record=True)
            except KeyboardInterrupt:
                interrupted = True
                self._pool_finish(record=True)  # what the workers copied is recorded
        except StoreError as e:
            error = e
            self.summary.status = "failed"
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self._pool_finish(record=False)
            self._flush()
        if interrupted:  # no end event: the run is unfinished, and resumable
            raise CollectionInterruptedError(
                f"interrupted: collection {self.run} stopped after {len(self.summary.items)}"
                " item(s), all recorded; run 'custody collect --resume' to finish it"
            )
        end: dict[str, Any] = {
            "run": self.run,
            "status": self.summary.status,
            "counts": dict(sorted(self.summary.counts.items())),
            "bytes": self.summary.bytes,
        }
        if error is not None:
            end["error"] = error.message
        if self.summary.untyped is not None:
            end["untyped"] = self.summary.untyped
        self.ledger.append(self.signer, [EventDraft(type=RUN_END_EVENT, data=end)])
        if error is not None:
            raise error
        self._describe()
        return self.summary

    def _describe(self) -> None:
        """After the run is recorded: type the objects it stored that no describe
        event types yet, in worker processes (custody.describe).  Ctrl-C here
        loses no record: 'custody describe' types what is left."""
        if not self.describe or self.summary.untyped is not None or not self._stored:
            return
        from custody.describe import describe_objects, undescribed

        todo = undescribed(self.ledger, self._stored)
        try:
            n, problems = describe_objects(self.ledger, self.signer, todo)
        except KeyboardInterrupt:
            self.summary.undescribed.append(
                "interrupted while typing stored objects: run 'custody describe' to finish"
            )
            return
        self.summary.described = n
        self.summary.undescribed.extend(problems)

    def _one(self, e: _Entry) -> None:
        path, st = e.path, e.st
        if self._skip and path.hex() in self._skip:
            return  # recorded by the run this one resumes
        if e.excluded is not None and not isinstance(st, OSError):
            self._record(path, "excluded", source=stat_record(st), excluded_by=e.excluded)
            return
        if isinstance(st, FileNotFoundError):
            self._record(path, "vanished", error=error_record(st))
            return
        if isinstance(st, OSError):
            self._record(path, "unreadable", error=error_record(st))
            return
        mode = st.st_mode
        if stat.S_ISREG(mode):  # the walk's stat is recorded only if the read fails
            self._copy(e, st)
            return
        src = stat_record(st)
        if stat.S_ISDIR(mode):
            if isinstance(e.list_error, FileNotFoundError):  # removed before it was opened
                self._record(path, "vanished", source=src, error=error_record(e.list_error))
            elif e.list_error is not None:
                self._record(path, "unreadable", source=src, error=error_record(e.list_error))
            else:
                self._record(path, "directory", source=src)
        elif stat.S_ISLNK(mode):
            try:
                target = os.readlink(e.name, dir_fd=e.dir_fd)
                self._record(
                    path,
                    "symlink",
                    source=src,
                    target={"hex": target.hex(), "display": display_path(target)},
                )
            except OSError as err:
                self._record(path, "unreadable", source=src, error=error_record(err))
        elif stat.S_ISREG(mode) or (e.explicit and stat.S_ISBLK(mode)):
            self._copy(e, st)
        else:
            self._record(path, "special", source=src, note="not opened: special file met in a walk")

    def _copy(self, e: _Entry, st: os.stat_result) -> None:
        if st.st_nlink > 1 and stat.S_ISREG(st.st_mode) and self._hard_link(e, st):
            return
        if self._use_pool(e, st):
            self._queue(e.path, st)
            return
        progress = None
        if self.progress is not None:
            cb = self.progress

            def progress(n: int) -> None:
                cb(n, 0)

        got = read_file(
            self.store, self.algorithms, e.dir_fd, e.name, (st.st_ino, st.st_dev), progress
        )
        self._finish(e.path, st, got)

    def _finish(self, path: bytes, st: os.stat_result, got: _Read) -> None:
        """Record what reading ``path`` (``st``: the walk's stat) gave
        (:func:`read_file`, here or in a worker)."""
        src = stat_record(st) if got.stored is None else {}
        err = got.opened
        if isinstance(err, FileNotFoundError):
            self._record(path, "vanished", source=src, error=error_record(err))
            return
        if err is not None:
            if err.errno == errno.ELOOP:
                self._record(
                    path,
                    "unstable",
                    source=src,
                    error=error_record(err),
                    note="replaced by a symlink before it could be opened",
                )
            else:
                self._record(path, "unreadable", source=src, error=error_record(err))
            return
        before = got.before
        assert before is not None
        if got.replaced:
            self._record(
                path,
                "unstable",
                source=src,
                after=stat_record(before),
                note="path was replaced between listing and opening; not read",
            )
            return
        if got.read_error is not None:
            self._record(path, "unreadable", source=src, error=error_record(got.read_error))
            return
        if got.failure is not None:
            # this path still gets its outcome before the run stops
            self._record(path, "failed", source=src, failure=got.failure.message)
            raise got.failure
        stored, after, post = got.stored, got.after, got.post
        assert stored is not None
        result = stored.result
        unstable = got.changed
        extra: dict[str, Any] = {
            "source": stat_record(before),
            "size": result.size,
            "digests": result.digests,
            "store": stored.relpath,
        }
        if stat.S_ISBLK(before.st_mode):
            extra["device_size"] = got.size
        if unstable:
            assert after is not None
            extra["after"] = stat_record(after)
            if post is not None:
                extra["after_path"] = stat_record(post)
            extra["note"] = "changed while being read: digests describe the bytes read"
        self.summary.bytes += result.size
        if stored.deduplicated:
            self.summary.deduplicated += 1
        else:
            self.summary.new_objects += 1
        self._stored[result.digests["sha256"]] = None
        if not unstable and before.st_nlink > 1:
            self._links[(before.st_dev, before.st_ino)] = _Link(path, before, extra)
        self._record(path, "unstable" if unstable else "collected", **extra)

    # -- the reader pool: small files read, hashed and copied by worker processes --

    def _use_pool(self, e: _Entry, st: os.stat_result) -> bool:
        """Small regular files met in a walk go to the worker processes, once the
        walk has met enough of them to pay for the pool's start."""
        if not stat.S_ISREG(st.st_mode) or st.st_size > POOL_MAX_SIZE or e.dir_fd is None:
            return False
        if len(e.path) >= POOL_MAX_PATH:  # reached through dir_fd only: read here
            return False
        if self._pool is None:
            self._small += 1
            if self._small < POOL_AFTER or self._pool_workers < 1:
                return False
            self._pool = _ReaderPool(
                self.store, self.algorithms, self._pool_workers, self._lock_fds
            )
        return True

    def _queue(self, path: bytes, st: os.stat_result) -> None:
        self._batch.append((path, st))
        if len(self._batch) >= POOL_BATCH:
            self._submit()
        self._drain(block=False)

    def _submit(self) -> None:
        if self._pool is None or not self._batch:
            return
        self._inflight.append(self._pool.submit(self._batch))
        self._batch = []
        while len(self._inflight) > self._pool.max_inflight:
            self._drain_one()

    def _drain(self, *, block: bool) -> None:
        while self._inflight and (block or self._inflight[0].done()):
            self._drain_one()

    def _drain_one(self) -> None:
        job = self._inflight.popleft()
        for (path, st), got in zip(job.batch, job.results(), strict=True):
            if got.stored is not None:
                if not got.stored.deduplicated:
                    self.store.mark_dirty()  # a worker's object: durable before it is named
                if self.progress is not None:
                    self.progress(got.stored.result.size, 0)
            self._finish(path, st, got)

    def _pool_finish(self, *, record: bool) -> None:
        """End of the walk (or Ctrl-C): record what the workers still hold, then stop
        them."""
        try:
            if record:
                self._submit()
                self._drain(block=True)
        finally:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def _hard_link(self, e: _Entry, st: os.stat_result) -> bool:
        """A further name of an inode this run already read unchanged: recorded
        with the same bytes (one store object) and ``hard_link_of``, not re-read."""
        first = self._links.get((st.st_dev, st.st_ino))
        if first is None:
            return False
        b = first.before
        if (st.st_size, st.st_mtime_ns, st.st_ctime_ns) != (
            b.st_size,
            b.st_mtime_ns,
            b.st_ctime_ns,
        ):
            return False  # changed since it was read: read this name on its own
        same = {k: first.extra[k] for k in ("size", "digests", "store")}
        self.summary.deduplicated += 1
        self._record(
            e.path,
            "collected",
            source=stat_record(st),
            **same,
            hard_link_of={"hex": first.path.hex(), "display": display_path(first.path)},
        )
        return True


def collect(
    ledger: Ledger,
    signer: Signer,
    paths: Sequence[str | bytes],
    *,
    reason: str,
    algorithms: Sequence[str],
    progress: ProgressFn | None = None,
    selftest: bool = True,
    exclude: Sequence[str] = (),
    one_file_system: bool = False,
    on_item: ItemFn | None = None,
    describe: bool = True,
    pre_walk: PreWalkFn | None = None,
) -> CollectSummary:
    """Collect ``paths``.  The first collection of a case runs the self-test and
    records it (unless ``selftest`` is False); a failed self-test stops it.
    ``exclude`` and ``one_file_system`` are :class:`WalkRules`; ``on_item`` is
    called with each item as it is recorded.  With ``describe`` (the default) the
    objects stored are typed after the run is recorded (custody.describe)."""
    return Collector(
        ledger,
        signer,
        reason=reason,
        algorithms=algorithms,
        progress=progress,
        selftest=selftest,
        exclude=exclude,
        one_file_system=one_file_system,
        on_item=on_item,
        describe=describe,
        pre_walk=pre_walk,
    ).collect(paths)


def resume(
    ledger: Ledger,
    signer: Signer,
    run: Run,
    progress: ProgressFn | None = None,
    selftest: bool = True,
    on_item: ItemFn | None = None,
    describe: bool = True,
    pre_walk: PreWalkFn | None = None,
) -> CollectSummary:
    """Finish the interrupted ``run`` with its own reason, algorithms and walk
    rules."""
    return Collector(
        ledger,
        signer,
        reason=run.reason,
        algorithms=run.algorithms,
        progress=progress,
        selftest=selftest,
        exclude=run.exclude,
        one_file_system=run.one_file_system,
        on_item=on_item,
        describe=describe,
        pre_walk=pre_walk,
    ).collect([], resume=run)


# -- interrupted runs: orphans, resume ---------------------------------------------

CLEANUP_EVENT = "store.cleanup"


def _referenced(ledger: Ledger) -> set[str]:
    """Store objects the ledger names, at the path each event records (a store may
    hold both layouts: custody.store.names_object): collected items and imported
    bundles' items."""
    sql = (
        "SELECT json_extract(body, '$.data.store') FROM events WHERE type = ? AND json_valid(body)"
    )
    refs = {r[0] for r in ledger.conn.execute(sql, (COLLECT_EVENT,)) if isinstance(r[0], str)}
    return refs | ledger.imported_objects()


def recorded_kept(ledger: Ledger) -> set[str]:
    """Store objects an earlier ``store.cleanup`` event recorded as kept."""
    out: set[str] = set()
    for (body,) in ledger.conn.execute("SELECT body FROM events WHERE type = ?", (CLEANUP_EVENT,)):
        try:
            kept = json.loads(body).get("data", {}).get("kept") or []
        except (ValueError, AttributeError):
            continue
        out.update(str(k["store"]) for k in kept if isinstance(k, dict) and "store" in k)
    return out


def clean_orphans(ledger: Ledger, signer: Signer, store: Store) -> Event | None:
    """Tidy what interrupted runs left in the store, destroying no evidence.

    Temporary files (incomplete copies) are removed.  A complete object no event
    names (its event never committed, or was lost with the write-ahead log) is
    KEPT: it is re-hashed and recorded, with its SHA-256 and size, in the signed
    ``store.cleanup`` event's ``kept`` list, and ``verify`` reports it.  The event
    also reserves item numbers (``next_item``) above every item such objects may
    have been.  Call only while holding the writers' lock exclusively."""
    refs = _referenced(ledger)
    already = recorded_kept(ledger)
    kept: list[dict[str, Any]] = []
    for rel, _size in store.objects():
        if rel in refs or rel in already or object_sha256(rel) is None:
            continue  # a file of another name is left alone: verify names it
        try:
            got = store.hash_object(rel, ["sha256"])  # through no link
        except OSError:
            continue  # unreadable, or no regular file: left alone
        kept.append({"store": rel, "sha256": got.digests["sha256"], "size": got.size})
    temps = store.temp_files()
    stale_locks = [p for p in store.tmp.glob("run-*.lock")] if store.tmp.is_dir() else []
    if not kept and not temps:
        for p in stale_locks:
            p.unlink(missing_ok=True)
        return None
    temp_bytes = sum(p.lstat().st_size for p in temps)
    data: dict[str, Any] = {
        "reason": "left by an interrupted collection or lost events: copied, never recorded",
        "removed": [],
        "kept": kept,
        "temp_files": len(temps),
        "temp_bytes": temp_bytes,
    }
    if kept:
        data["next_item"] = ledger.next_item_number() + len(kept)
    (ev,) = ledger.append(signer, [EventDraft(CLEANUP_EVENT, data)])
    for p in [*temps, *stale_locks]:
        p.unlink(missing_ok=True)
    return ev


@dataclass
class Run:
    """A collection run as its start and end events tell it."""

    run: str
    seq: int
    time: str
    signer: str
    reason: str
    paths: list[dict[str, str]]
    algorithms: list[str]
    resumes: str | None
    status: str | None  # None: no end event (unfinished)
    exclude: list[str] = field(default_factory=list)
    one_file_system: bool = False


def runs(ledger: Ledger) -> list[Run]:
    out: dict[str, Run] = {}
    sql = "SELECT seq, body FROM events WHERE type IN (?, ?) ORDER BY seq"
    for seq, body in ledger.conn.execute(sql, (RUN_START_EVENT, RUN_END_EVENT)):
        b = json.loads(body)
        d = b.get("data") or {}
        run = str(d.get("run"))
        if b.get("type") == RUN_START_EVENT:
            out[run] = Run(
                run,
                seq,
                str(b.get("time")),
                str(b.get("signer")),
                str(d.get("reason", "")),
                list(d.get("paths") or []),
                list(d.get("algorithms") or []),
                d.get("resumes"),
                None,
                [str(g) for g in d.get("exclude") or []],
                d.get("one_file_system") is True,
            )
        elif run in out:
            out[run].status = str(d.get("status"))
    return list(out.values())


def run_is_alive(store: Store, run: str) -> bool:
    """Is the collection ``run`` still going on in some process (its run lock held)?"""
    return lock_held(store.tmp / f"run-{run}.lock", fcntl.LOCK_SH)


def unfinished_runs(ledger: Ledger, all_runs: list[Run] | None = None) -> list[Run]:
    """Runs with a start and no end, whose process is gone (killed, crashed);
    ``all_runs`` is :func:`runs` of the ledger, when the caller has it already."""
    store = Store(ledger.store_dir)
    return [
        r
        for r in (runs(ledger) if all_runs is None else all_runs)
        if r.status is None and not run_is_alive(store, r.run)
    ]


def _resume_chain(ledger: Ledger, run: Run) -> list[str]:
    """``run`` and every run it (transitively) resumed."""
    by_id = {r.run: r for r in runs(ledger)}
    chain = [run.run]
    nxt = run.resumes
    while nxt and nxt in by_id and nxt not in chain:
        chain.append(nxt)
        nxt = by_id[nxt].resumes
    return chain


class _RunLock:
    """Held exclusively by a running collection (``store/tmp/run-<run>.lock``), so
    ``run_is_alive`` can tell a killed run from one still going on."""

    def __init__(self, store: Store, run: str) -> None:
        self.store = store
        self.path = store.tmp / f"run-{run}.lock"
        self.fd = -1

    def __enter__(self) -> _RunLock:
        self.store.make_tmp()
        self.fd = open_private(self.path, os.O_RDWR)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self.fd)
