"""Content-addressed, read-only evidence store: ``store/sha256/ab/<hex>``.

Stores made before 0.16 keep their two-level layout, ``store/sha256/ab/cd/<hex>``,
for every new object (:func:`store_layout`); a recorded ``store`` path names an
object iff it is one of the two forms for its SHA-256 (:func:`names_object`): the
writer and ``custody verify`` use that one rule.

Ingest: copy into a temp file in ``store/tmp/`` while hashing (one read), each
chunk read back from the copy and compared byte for byte with the bytes it was
written from (a mismatch is an error), fsync (or, deferred, one ``syncfs`` per
batch), make it read-only for its owner alone (0400) and rename it into place (or
drop the temp when identical content is already stored: that object is then
re-hashed).  The store's directories are made 0700: the stored copy of a file only
root could read must not become readable by every local user.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import re
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from custody import _libc
from custody.errors import DiskFullError, IntegrityError, StoreError
from custody.hashing import CopyMismatchError, HashResult, Progress, hash_fd
from custody.safeio import NotRegularFileError, file_kind, open_beneath

OBJECT_MODE = 0o400  # read-only, and for the case's owner alone
DIR_MODE = 0o700  # the store and every directory in it: the owner's alone
# custody.db (SQLite gives its -wal and -shm the same mode), checkpoint notes and
# lock files: the ledger names paths, people and reasons, so the owner's alone
PRIVATE_FILE_MODE = 0o600
#: permission bits that make a store object readable by someone else than its owner
#: (``custody verify`` notes them)
SHARED_READ_BITS = 0o044


WRITERS_LOCK = ".writers.lock"


def open_private(path: str | os.PathLike[str], flags: int) -> int:
    """Open ``path`` with ``flags`` (O_RDWR or O_WRONLY), creating it mode 0600,
    exactly, whatever the umask, when it does not exist.  An existing file keeps
    its mode: custody never changes the permissions of a file it did not make."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except FileExistsError:
        return os.open(path, flags | os.O_CLOEXEC)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock_held(path: Path, probe: int) -> bool:
    """Does some process hold the ``flock`` on ``path``?  ``probe`` is the mode
    tried without blocking: LOCK_EX finds any holder, LOCK_SH only an exclusive
    one (and concurrent shared probes never make each other look like holders)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, probe | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class WritersLock:
    """Every process that puts objects in the store before the ledger names them
    (collect, bundle import) holds this lock shared, with ``flock``: the kernel
    drops it when the process dies, even by ``kill -9``.  Whoever gets it
    exclusive knows no writer is alive, so an object the ledger does not name is
    an orphan of an interrupted run, and a temporary file a dead copy."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; True when it was exclusive at first (no other writer:
        the caller may clean up, then it is downgraded with :meth:`share`)."""
        self.fd = open_private(self.root / WRITERS_LOCK, os.O_RDWR)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            fcntl.flock(self.fd, fcntl.LOCK_SH)
            return False

    @staticmethod
    def writers_active(root: Path) -> bool:
        """Does some process hold the lock now (objects may be in flight)?"""
        return lock_held(root / WRITERS_LOCK, fcntl.LOCK_EX)

    def share(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_SH)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def make_private_dirs(base: str, d: str) -> None:
    """Create directory ``d`` under ``base`` and every missing directory between
    them (``base`` too if missing), each with mode :data:`DIR_MODE`:
    ``os.makedirs`` would give the intermediate ones the default mode.  Directories
    that exist already are left as they are."""
    base = os.path.normpath(base)
    d = os.path.normpath(d)
    rel = os.path.relpath(d, base)
    paths = [base] + [
        os.path.join(base, *rel.split(os.sep)[: i + 1]) for i in range(rel.count(os.sep) + 1)
    ]
    if rel == os.curdir:
        paths = [base]
    for n, path in enumerate(paths):
        try:
            if n == 0:
                if os.path.isdir(path):
                    continue
                os.makedirs(path, DIR_MODE)
            else:
                os.mkdir(path, DIR_MODE)
        except FileExistsError:
            if os.path.isdir(path):
                continue
            raise
        os.chmod(path, DIR_MODE)  # exactly 0700, whatever the umask


_NO_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP)


def _umask_keeps(mode: int) -> bool:
    """Does the process umask leave ``mode`` intact (so mkdir needs no chmod)?"""
    mask = os.umask(0o077)
    os.umask(mask)
    return mode & ~mask == mode


#: the store layouts: ``sha256/ab/<hex>`` (new stores) and ``sha256/ab/cd/<hex>``
#: (stores made before 0.16, which keep it)
FLAT = "flat"
NESTED = "nested"
LAYOUTS = (FLAT, NESTED)

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_OBJECT_PATH = re.compile(r"sha256/([0-9a-f]{2})/(?:([0-9a-f]{2})/)?([0-9a-f]{64})")
_PREFIX = re.compile(r"[0-9a-f]{2}")


def object_relpath(sha256_hex: str, layout: str = FLAT) -> str:
    """The path, under the store's root, of the object of ``sha256_hex`` in a store
    of ``layout``."""
    if layout == NESTED:
        return f"sha256/{sha256_hex[0:2]}/{sha256_hex[2:4]}/{sha256_hex}"
    return f"sha256/{sha256_hex[0:2]}/{sha256_hex}"


def object_relpaths(sha256_hex: str) -> tuple[str, str]:
    """The two paths that may name the object of ``sha256_hex``: flat, then nested."""
    return object_relpath(sha256_hex, FLAT), object_relpath(sha256_hex, NESTED)


def object_sha256(rel: str) -> str | None:
    """The SHA-256 (lowercase hex) whose object ``rel`` names, or None when ``rel`` is
    not one of the two object paths of any SHA-256 (``..``, another depth, uppercase
    hex, prefix folders that are not the digest's first bytes): such a path is never
    opened as an object."""
    m = _OBJECT_PATH.fullmatch(rel)
    if m is None:
        return None
    a, b, sha = m.groups()
    if sha[0:2] != a or (b is not None and sha[2:4] != b):
        return None
    return sha


def names_object(rel: object, sha256_hex: object) -> bool:
    """Does the recorded store path ``rel`` name the object of the recorded
    ``sha256_hex``?  The one rule, for the writer and ``custody verify``: iff it is
    one of the two forms of :func:`object_relpaths`."""
    return (
        isinstance(rel, str)
        and isinstance(sha256_hex, str)
        and _SHA256_HEX.fullmatch(sha256_hex) is not None
        and object_sha256(rel) == sha256_hex
    )


def store_layout(root: Path) -> str:
    """The layout of the store at ``root``, from its content (no configuration file
    an attacker could flip, nothing in the signed record): NESTED when the first
    non-empty ``sha256/XX`` folder (in name order; links are not followed) holds a
    folder, else FLAT, so an empty or new store is flat.  custody never mixes the
    layouts in one store, so one folder tells; what the objects are is decided by
    :func:`names_object`, whatever this returns."""
    try:
        with os.scandir(root / "sha256") as it:
            firsts = sorted(
                e.name for e in it if _PREFIX.fullmatch(e.name) and e.is_dir(follow_symlinks=False)
            )
    except (FileNotFoundError, NotADirectoryError):
        return FLAT
    for name in firsts:
        try:
            with os.scandir(root / "sha256" / name) as it:
                for e in it:
                    return NESTED if e.is_dir(follow_symlinks=False) else FLAT
        except OSError:
            continue
    return FLAT


@dataclass
class Stored:
    result: HashResult
    relpath: str
    deduplicated: bool


def _fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_SYNCFS = _libc.function("syncfs")


def _syncfs(path: Path) -> None:
    """Flush every dirty page and inode of the filesystem holding ``path``: one
    call makes a whole batch of new store objects durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _SYNCFS is None or _SYNCFS(fd) != 0:
            os.sync()  # no syncfs(2), or it failed: flush everything
    finally:
        os.close(fd)


def _nothing() -> None:
    pass


class Store:
    """The content-addressed store.

    With ``deferred_sync`` the per-object fsyncs are replaced by one ``syncfs``
    in :meth:`sync`, which the caller must run before recording any object it
    ingested (the collector does so before each ledger commit).  An object is
    never referenced by the ledger before it is durable either way."""

    def __init__(
        self, root: Path, *, deferred_sync: bool = False, layout: str | None = None
    ) -> None:
        self.root = root
        self._layout = layout  # decided from the content on first use (store_layout)
        self._folders: set[str] = set()  # object folders checked to be no link
        self.tmp = root / "tmp"
        self.deferred_sync = deferred_sync
        self._root_s = os.fspath(root)
        self._tmp_s = os.fspath(self.tmp)
        self._dirs: set[str] = set()
        self._dirty = False
        self._in_flight: Callable[[], None] | None = None  # sync_begin's waiter
        self._prefix = ""  # of this process's temp file names (made on first use)
        self._pid = 0
        self._count = itertools.count(1)
        self._can_link = True  # False where the file system has no hard links (FAT)
        self._exact_dirs = _umask_keeps(DIR_MODE)

    def free_bytes(self) -> int:
        """Bytes an unprivileged writer may still use in the store's file system."""
        try:
            st = os.statvfs(self.root)
        except OSError:
            return 0
        return st.f_bavail * st.f_frsize

    @property
    def layout(self) -> str:
        """FLAT or NESTED: where this store puts new objects (:func:`store_layout`,
        decided once)."""
        if self._layout is None:
            self._layout = store_layout(self.root)
        return self._layout

    def objects(self) -> Iterator[tuple[str, int]]:
        """(relpath, size) of every entry of the store's object folders, at both
        depths: each entry of a ``sha256/XX`` folder that is no folder (a flat
        object) and each entry of a folder in it (``sha256/XX/YY/``, a nested one).
        A link is never followed: a linked ``sha256/XX`` or ``sha256/XX/YY`` is not
        entered (an object under it is reported where its event names it); any
        other link is listed."""

        def entries(d: Path) -> list[Path]:
            if d.is_symlink() or not d.is_dir():
                return []
            return sorted(d.iterdir())

        def listed(p: Path) -> tuple[str, int]:
            return p.relative_to(self.root).as_posix(), p.lstat().st_size

        for a in entries(self.root / "sha256"):  # a linked sha256/XX: not entered
            for b in entries(a):
                if b.is_symlink() and _PREFIX.fullmatch(b.name):
                    continue  # a linked sha256/XX/YY: not entered, as above
                if b.is_symlink() or not b.is_dir():
                    yield listed(b)
                    continue
                for obj in entries(b):
                    yield listed(obj)

    def locate(self, sha256_hex: str, recorded: object = None) -> str:
        """The path of the object of ``sha256_hex``: ``recorded`` (the path its event
        names) when it names that object, else the form that exists (this store's
        layout first), else this store's form."""
        if names_object(recorded, sha256_hex):
            assert isinstance(recorded, str)
            return recorded
        mine = object_relpath(sha256_hex, self.layout)
        for rel in dict.fromkeys((mine, *object_relpaths(sha256_hex))):  # mine once
            if os.path.lexists(f"{self._root_s}/{rel}"):
                return rel
        return mine

    def _target(self, sha256_hex: str) -> tuple[str, str | None]:
        """Where an object of ``sha256_hex`` goes (this store's layout), and the
        other layout's path when an object is there already (a store made mixed by
        hand: deduplicated against it, never copied twice).  The folders on the way
        are checked, once per run, to be real folders: a link is never written
        through."""
        rel = object_relpath(sha256_hex, self.layout)
        other = object_relpath(sha256_hex, NESTED if self.layout == FLAT else FLAT)
        self._check_folder(rel.rsplit("/", 1)[0])
        try:
            os.lstat(f"{self._root_s}/{other}")
        except OSError:
            return rel, None
        self._check_folder(other.rsplit("/", 1)[0])
        return rel, other

    def _check_folder(self, folder: str) -> None:
        """``folder`` (``sha256/ab`` or ``sha256/ab/cd``) and each folder above it,
        up to the root, must be a folder, not a link (made when missing)."""
        if folder in self._folders:
            return
        parts = folder.split("/")
        for n in range(1, len(parts) + 1):
            rel = "/".join(parts[:n])
            if rel in self._folders:
                continue
            path = f"{self._root_s}/{rel}"
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                self._make_parents(path)
                st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                raise StoreError(
                    f"store folder {path} is {file_kind(st.st_mode)}, not a folder: custody"
                    " writes nothing through it; run 'custody verify'"
                )
            self._folders.add(rel)

    def remove_object(self, relpath: str) -> bool:
        """Delete the object at ``relpath``, an object path (:func:`object_sha256`),
        through no link (a disposal with ``--purge``, the one deletion of a complete
        object custody makes); False when it is not there.  A folder on the way that
        is a link is refused (StoreError)."""
        if object_sha256(relpath) is None:
            raise StoreError(f"not a store object path: {relpath!r}")
        *folders, name = relpath.split("/")
        dir_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in folders:
                try:
                    nxt = os.open(
                        part,
                        os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                        dir_fd=dir_fd,
                    )
                except FileNotFoundError:
                    return False
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise StoreError(
                            f"store folder {part} of {relpath} is no folder (a link?): its"
                            " object was not purged; run 'custody verify'"
                        ) from None
                    raise
                os.close(dir_fd)
                dir_fd = nxt
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                return False
            return True
        finally:
            os.close(dir_fd)

    def temp_files(self) -> list[Path]:
        """Leftovers of interrupted copies in tmp/ (meaningful only while no
        writer holds the writers' lock)."""
        if not self.tmp.is_dir():
            return []
        return sorted(p for p in self.tmp.iterdir() if p.name.startswith("ingest-"))

    def path_of(self, relpath: str) -> Path:
        return self.root / relpath

    def hash_object(
        self, relpath: str, algorithms: Sequence[str], progress: Progress | None = None
    ) -> HashResult:
        """Re-hash the object at ``relpath`` without following a link anywhere
        below the store's root and without opening a FIFO or a device there
        (:func:`custody.safeio.open_beneath`): an object replaced by a link, a
        directory, a FIFO or a device raises
        :class:`~custody.safeio.NotRegularFileError` (an ``OSError``), a missing one
        ``FileNotFoundError``."""
        fd, st = open_beneath(self.root, relpath)
        try:
            return hash_fd(fd, algorithms, size_hint=st.st_size, progress=progress)
        finally:
            os.close(fd)

    def make_tmp(self) -> None:
        """Create ``tmp/`` (0700, like every directory of the store) if missing."""
        self._mkdir(self._tmp_s)

    def _mkdir(self, d: str) -> None:
        if d not in self._dirs:
            make_private_dirs(self._root_s, d)
            self._dirs.add(d)

    def mark_dirty(self) -> None:
        """Another process (a collector's reader) added an object: the next
        :meth:`sync` must flush the file system."""
        self._dirty = True

    def _tmp_name(self) -> str:
        """A new temp file name: this process's random prefix and a counter (no
        getpid or getrandom call per object; a forked process gets its own)."""
        if not self._prefix or os.getpid() != self._pid:
            self._pid = os.getpid()
            self._prefix = f"{self._tmp_s}/ingest-{self._pid}-{os.urandom(6).hex()}-"
            self._count = itertools.count(1)
        return f"{self._prefix}{next(self._count)}"  # next(): atomic across threads

    def _publish(self, tmp_path: str, dest: str) -> bool:
        """Give the complete temp file ``tmp_path`` its name ``dest``; False when an
        object of that name exists already (never replaced: the temp is dropped).
        Directories are made only when missing (one failed call, not a stat of
        each)."""
        made_parents = False
        while True:
            try:
                if self._can_link:
                    os.link(tmp_path, dest)  # fails, never overwrites, if dest exists
                    os.unlink(tmp_path)
                    return True
                if os.path.lexists(dest):
                    os.unlink(tmp_path)
                    return False
                os.replace(tmp_path, dest)
                return True
            except FileExistsError:
                os.unlink(tmp_path)
                return False
            except FileNotFoundError:
                if made_parents:
                    raise
                self._make_parents(os.path.dirname(dest))
                made_parents = True
            except OSError as e:
                if not self._can_link or e.errno not in _NO_LINKS:
                    raise
                self._can_link = False  # a file system without hard links (FAT, exFAT)

    def _make_parents(self, parent: str) -> None:
        """Create ``sha256/ab/cd`` (and ``sha256/ab``) mode 0700: mkdir where
        missing, chmod only where the umask would not give 0700 exactly."""
        if not self._exact_dirs:
            self._mkdir(parent)
            return
        todo = [parent]
        while True:
            try:
                os.mkdir(todo[-1], DIR_MODE)
            except FileExistsError:
                pass
            except FileNotFoundError:
                todo.append(os.path.dirname(todo[-1]))
                continue
            todo.pop()
            if not todo:
                return

    def _settle(self) -> None:
        """Wait for a :meth:`sync_begin` still in flight (a caller interrupted while
        waiting for it, e.g. by Ctrl-C): a later sync must not count on a flush
        that has not finished.  Its failure left the store dirty again."""
        wait, self._in_flight = self._in_flight, None
        if wait is not None:
            try:
                wait()
            except StoreError:
                pass  # the store is dirty again: the caller's sync flushes it

    def sync(self) -> None:
        """Make every object ingested since the last sync durable."""
        self._settle()
        if self._dirty:
            self._flush()
            self._dirty = False

    def _flush(self) -> None:
        try:
            _syncfs(self.root)
        except OSError as e:
            raise StoreError(f"cannot flush the store to disk: {e.strerror}") from e

    def sync_begin(self) -> Callable[[], None]:
        """Start :meth:`sync` on a thread of its own (``syncfs`` waits on the disk,
        not the CPU: the caller signs meanwhile) and return the function that
        waits for it to finish, raising its error.  Whatever names the objects
        must be committed only after that function returned."""
        self._settle()
        if not self._dirty:
            return _nothing
        self._dirty = False  # objects ingested from now on wait for the next sync
        failed: list[BaseException] = []

        def run() -> None:
            try:
                self._flush()
            except StoreError as e:  # handed to the waiter
                self._dirty = True
                failed.append(e)

        t = threading.Thread(target=run, name="custody-syncfs", daemon=True)
        t.start()

        def wait() -> None:
            t.join()
            if failed:
                raise failed[0]

        self._in_flight = wait
        return wait

    def ingest(
        self,
        src_fd: int,
        algorithms: Sequence[str],
        *,
        size_hint: int | None = None,
        progress: Progress | None = None,
    ) -> Stored:
        try:
            self._mkdir(self._tmp_s)
        except OSError as e:
            raise StoreError(f"cannot create {self.tmp}: {e.strerror}") from e
        # plain strings, not Path objects: this runs once per file collected
        tmp_path = self._tmp_name()
        try:
            out_fd = os.open(tmp_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise StoreError(f"cannot create a file in the store: {e.strerror}") from e
        try:
            try:
                try:
                    result = hash_fd(
                        src_fd, algorithms, out_fd=out_fd, size_hint=size_hint, progress=progress
                    )
                except CopyMismatchError as e:
                    raise StoreError(f"read-back verification failed in {self.tmp}: {e}") from e
                held = os.fstat(out_fd).st_size
                if held != result.size:
                    raise StoreError(
                        f"read-back verification failed in {self.tmp}: the copy holds"
                        f" {held} bytes, {result.size} were read"
                    )
                if not self.deferred_sync:
                    os.fsync(out_fd)
                relpath, other = self._target(result.digests["sha256"])
                os.fchmod(out_fd, OBJECT_MODE)  # before it has its name: never writable
                if other is not None:
                    relpath = other  # the object exists, in the other layout
                    os.unlink(tmp_path)
                    dedup = True
                else:
                    dedup = not self._publish(tmp_path, f"{self._root_s}/{relpath}")
                dest = f"{self._root_s}/{relpath}"
                if not dedup:
                    if self.deferred_sync:
                        self._dirty = True
                    else:
                        _fsync_dir(os.path.dirname(dest))
            finally:
                os.close(out_fd)
        except OSError as e:
            Path(tmp_path).unlink(missing_ok=True)
            if e.errno == errno.ENOSPC:
                need = size_hint if size_hint is not None else 0
                raise DiskFullError(
                    f"store is full ({self.root}): needed {need} bytes for this item,"
                    f" {self.free_bytes()} bytes free"
                ) from e
            raise StoreError(f"cannot write to the store: {e.strerror}") from e
        except BaseException:
            Path(tmp_path).unlink(missing_ok=True)
            raise
        if dedup:
            self._recheck(relpath, result)
        return Stored(result=result, relpath=relpath, deduplicated=dedup)

    def _recheck(self, relpath: str, result: HashResult) -> None:
        """The object already stored under ``relpath`` must still hold these bytes
        (read through no link: :meth:`hash_object`)."""
        dest = self.path_of(relpath)
        try:
            again = self.hash_object(relpath, ["sha256"])
        except NotRegularFileError as e:
            raise StoreError(f"cannot read back store object {dest}: it is {e.what}") from e
        except OSError as e:
            raise StoreError(f"cannot read back store object {dest}: {e.strerror}") from e
        self._check_copy(dest, again, result)

    @staticmethod
    def _check_copy(dest: Path, again: HashResult, expected: HashResult) -> None:
        if again.digests["sha256"] != expected.digests["sha256"] or again.size != expected.size:
            raise StoreError(
                f"read-back verification failed for {dest}: expected sha256 "
                f"{expected.digests['sha256']} ({expected.size} bytes), found "
                f"{again.digests['sha256']} ({again.size} bytes)"
            )

    def adopt(
        self,
        path: str,
        digests: dict[str, str],
        size: int,
        stamp: tuple[int, int, int, int] | None = None,
    ) -> Stored:
        """Make the complete file ``path`` the object named by ``digests["sha256"]``
        without copying it: a private, read-only (0400) file the caller wrote on the
        store's file system, read back as it was written and hashed from the bytes
        it holds (a staged bundle's payload, custody.bundle.archive.StagedSource).
        It is linked into place and its old name removed; when the object exists
        already it is never replaced (the file is dropped and that object re-hashed,
        as :meth:`ingest` does).  On another file system it is copied by
        :meth:`ingest`, hashed again.  ``stamp``: (inode, size, mtime_ns, ctime_ns)
        of the file that was hashed; another file put under ``path`` (before or
        while it is linked) is refused."""
        result = HashResult(dict(digests), size)
        try:
            relpath, other = self._target(digests["sha256"])
            if other is not None:  # the object exists, in the other layout
                os.unlink(path)
                self._recheck(other, result)
                return Stored(result=result, relpath=other, deduplicated=True)
            dest = f"{self._root_s}/{relpath}"
            st = os.lstat(path)
            if st.st_size != size:
                raise StoreError(f"{path} holds other bytes than were hashed")
            if (
                stamp is not None
                and (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) != stamp
            ):
                raise IntegrityError(f"{path} was changed or replaced after it was hashed")
            published = self._publish(path, dest)
            if published and stamp is not None:  # linking changes ctime, not the rest
                d = os.lstat(dest)
                if (d.st_ino, d.st_size, d.st_mtime_ns) != stamp[:3]:
                    raise IntegrityError(f"{path} was replaced while it was stored")
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise StoreError(f"cannot write to the store: {e.strerror}") from e
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                stored = self.ingest(fd, ["sha256"], size_hint=size)
            finally:
                os.close(fd)
            self._check_copy(self.path_of(stored.relpath), stored.result, result)
            return stored
        if published:
            if self.deferred_sync:
                self._dirty = True
            else:
                fd = os.open(dest, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                _fsync_dir(os.path.dirname(dest))
            return Stored(result=result, relpath=relpath, deduplicated=False)
        self._recheck(relpath, result)
        return Stored(result=result, relpath=relpath, deduplicated=True)
