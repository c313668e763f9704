"""Reading a bundle in place, and the limits that keep hostile input out.

A bundle is a folder, a tar (optionally gzip) or a zip; :func:`open_source` gives
its regular files by relative name without extracting anything, refusing links,
special files, unsafe or duplicate names and decompression bombs before any
content is read.  The size and depth limits every reader of a bundle obeys live
here too.
"""

from __future__ import annotations

import errno
import io
import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import IO, Any, cast

from custody.errors import CustodyError, IntegrityError, OperationalError, UsageError
from custody.hashing import CopyMismatchError, SourceReadError, hash_fd
from custody.safeio import NotRegularFileError, open_beneath, open_regular

MAX_TAG_FILE = 64 << 20  # bytes of any one custody/ or bag tag file
MAX_JSON_DEPTH = 64
MAX_PATH_DEPTH = 64  # folders an entry may lie in (custody writes 3: data/ITEM-n/name)
MAX_NAME_BYTES = 1024  # an entry's relative name, UTF-8
MAX_TOTAL = 1 << 40  # 1 TiB of declared content
MAX_RATIO = 1000  # declared size / archive size: beyond this, a decompression bomb
CHUNK = 1 << 20


class HostileBundleError(UsageError):
    """Not a bundle custody will read: unsafe entries, bombs, malformed metadata."""


#: what reading an archive raises when its bytes are damaged, whatever the format
#: and compression: tarfile's and zipfile's own errors, each decompressor's
#: (zlib, gzip's BadGzipFile and bz2's "Invalid data stream" are OSErrors without
#: an errno, lzma's LZMAError), a truncated stream (EOFError), a header field that
#: is no number (ValueError), an unsupported method or an encrypted member
#: (NotImplementedError, RuntimeError)
DECODER_ERRORS: tuple[type[BaseException], ...] = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line if len(line) <= 200 else line[:200] + "..."


def damaged(where: object, e: BaseException) -> CustodyError:
    """The error for ``e``, raised while reading archive ``where``: a real I/O
    error of the medium (an ``OSError`` with an errno) is operational (exit 3);
    anything a decoder raised means damaged input (exit 2, one short line)."""
    if isinstance(e, CustodyError):
        return e
    if isinstance(e, OSError) and e.errno is not None and not isinstance(e, NotRegularFileError):
        return OperationalError(f"cannot read {where}: {e.strerror or e}")
    return HostileBundleError(f"{where} is damaged: {_first_line(e)}")


class _Guarded:
    """A member's stream whose every decoder error becomes :func:`damaged`."""

    def __init__(self, raw: IO[bytes], where: str) -> None:
        self.raw = raw
        self.where = where

    def read(self, n: int = -1) -> bytes:
        try:
            return self.raw.read(n)
        except DECODER_ERRORS as e:
            raise damaged(self.where, e) from e

    def close(self) -> None:
        try:
            self.raw.close()
        except DECODER_ERRORS as e:
            raise damaged(self.where, e) from e

    def fileno(self) -> int:
        return self.raw.fileno()

    def __enter__(self) -> _Guarded:
        return self

    def __exit__(
        self,
        t: type[BaseException] | None,
        v: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def path_is_dangerous(name: str) -> str | None:
    """Why an entry name may not be used, or None (bagit-python's idea, stricter)."""
    if not name or "\x00" in name:
        return "empty or NUL in name"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if "\\" in name:
        return "backslash in name"
    parts = name.split("/")
    if any(p == ".." for p in parts):
        return "'..' in path"
    if any(p in ("", ".") for p in parts):  # a directory's trailing / is removed first
        return "empty or '.' path component"
    if len(parts) > MAX_PATH_DEPTH:
        return f"nested deeper than {MAX_PATH_DEPTH} folders"
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        return f"name longer than {MAX_NAME_BYTES} bytes"
    return None


class _Source(ABC):
    """Regular files of a bundle by relative name, read without extracting."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes
        self.digests: dict[str, dict[str, str]] = {}  # payload digests computed once
        # digests of the very bytes a reader holds, computed as it made its private
        # copy (a staged bundle): used instead of reading those bytes again
        self.known: dict[str, dict[str, str]] = {}
        self.on_close: list[Callable[[], None]] = []
        self.pool: ProcessPoolExecutor | None = None  # workers, for a large folder bag

    @abstractmethod
    def open(self, name: str) -> IO[bytes]:
        """A readable stream of entry ``name``."""

    def read(self, name: str, cap: int = MAX_TAG_FILE) -> bytes:
        if self.sizes[name] > cap:
            raise HostileBundleError(f"{name} is {self.sizes[name]} bytes; larger than allowed")
        with self.open(name) as f:
            data = f.read(cap + 1)
        if len(data) > cap:
            raise HostileBundleError(f"{name} is larger than allowed")
        return data

    def close(self) -> None:
        """Stop work still reading the bundle, then release the archive, if any."""
        for hook in self.on_close:
            hook()
        self._release()

    def _release(self) -> None:  # noqa: B027 - only archive readers hold something open
        """Release the archive, if any."""


def _strip_top(names: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Archives hold the bag under one top folder; find it."""
    if "bagit.txt" in names:
        return "", names
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1:
        top = tops.pop() + "/"
        return top, {n[len(top) :]: v for n, v in names.items() if n.startswith(top)}
    return "", names


def _short(name: str) -> str:
    """An entry name as an error line shows it: at most 120 characters."""
    return name if len(name) <= 120 else name[:60] + "..." + name[-57:]


def _check_name(name: str, seen: set[str]) -> None:
    why = path_is_dangerous(name)
    if why:
        raise HostileBundleError(f"unsafe entry {_short(name)!r}: {why}")
    if name in seen:
        raise HostileBundleError(f"duplicate entry {_short(name)!r}")
    seen.add(name)


def folder_files(root: Path) -> Iterator[tuple[str, str, os.stat_result]]:
    """(name in the bag, path, lstat) of every file of the folder bag ``root``, in
    name order: the one rule of what a folder bundle may hold, for reading it in
    place and for staging it.  An entry whose name escapes the bag, a symbolic
    link, a hard link or anything but a regular file or a folder is refused."""
    todo = [("", os.fspath(root))]
    while todo:
        prefix, folder = todo.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            raise OperationalError(
                f"cannot read bundle folder {_short(prefix) or root}: {err.strerror}"
            ) from err
        for e in entries:
            rel = prefix + e.name
            why = path_is_dangerous(rel)
            if why:
                raise HostileBundleError(f"unsafe entry {_short(rel)!r}: {why}")
            try:
                if e.is_dir(follow_symlinks=False):  # its type as listed (no stat call:
                    todo.append((rel + "/", e.path))  # a folder per item is common); a
                    continue  # link is never a folder here, and is refused below
                st = e.stat(follow_symlinks=False)
            except OSError as err:
                raise OperationalError(f"cannot read {_short(rel)}: {err.strerror}") from err
            if stat.S_ISLNK(st.st_mode):
                raise HostileBundleError(f"unsafe entry {_short(rel)!r}: symbolic link")
            if stat.S_ISDIR(st.st_mode):
                todo.append((rel + "/", e.path))
            elif not stat.S_ISREG(st.st_mode):
                raise HostileBundleError(f"unsafe entry {_short(rel)!r}: not a regular file")
            elif st.st_nlink > 1:
                raise HostileBundleError(f"unsafe entry {_short(rel)!r}: hard link")
            else:
                yield rel, e.path, st


class _DirSource(_Source):
    def __init__(self, root: Path) -> None:
        self.root = root
        sizes = {rel: st.st_size for rel, _path, st in folder_files(root)}
        super().__init__(sizes)

    def open(self, name: str) -> IO[bytes]:
        try:  # never a link, a FIFO or a device put there since the scan
            fd, _ = open_beneath(self.root, name)
        except NotRegularFileError as e:
            raise HostileBundleError(f"unsafe entry {name!r}: {e.what}") from None
        except OSError as e:
            raise OperationalError(f"cannot read {self.root / name}: {e.strerror}") from e
        return os.fdopen(fd, "rb")


class _TarSource(_Source):
    def __init__(self, path: Path, fo: IO[bytes]) -> None:
        self.path = path
        self.fo = fo
        try:
            self.tar = tarfile.open(fileobj=fo, mode="r:*")
        except DECODER_ERRORS as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise damaged(path, e) from e
            raise HostileBundleError(
                f"{path} is not a bundle (folder, tar or zip): {_first_line(e)}"
            ) from e
        archive = max(os.fstat(fo.fileno()).st_size, 1)
        members: dict[str, tarfile.TarInfo] = {}
        seen: set[str] = set()
        total = 0
        try:
            for m in self.tar:
                name = m.name.rstrip("/") if m.isdir() else m.name
                _check_name(name, seen)
                if m.isdir():
                    continue
                if m.issym() or m.islnk():
                    raise HostileBundleError(f"unsafe entry {m.name!r}: link")
                if not m.isfile():
                    raise HostileBundleError(f"unsafe entry {m.name!r}: device or special file")
                total += m.size
                if total > MAX_TOTAL or (total > (64 << 20) and total / archive > MAX_RATIO):
                    raise HostileBundleError(
                        f"{path}: declared content ({total} bytes) is far larger than the archive"
                        f" ({archive} bytes): refusing a decompression bomb"
                    )
                members[name] = m
        except DECODER_ERRORS as e:
            self.tar.close()
            raise damaged(path, e) from e
        self.top, self.members = _strip_top(members)
        super().__init__({n: m.size for n, m in self.members.items()})

    def open(self, name: str) -> IO[bytes]:
        try:
            f = self.tar.extractfile(self.members[name])
        except DECODER_ERRORS as e:
            raise damaged(f"{self.path} ({name})", e) from e
        if f is None:
            raise HostileBundleError(f"cannot read {name}")
        return cast(IO[bytes], _Guarded(f, f"{self.path} ({name})"))

    def _release(self) -> None:
        self.tar.close()
        self.fo.close()


class _ZipSource(_Source):
    def __init__(self, path: Path, fo: IO[bytes]) -> None:
        self.path = path
        self.fo = fo
        try:
            self.zip = zipfile.ZipFile(fo)
        except DECODER_ERRORS as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise damaged(path, e) from e
            raise HostileBundleError(
                f"{path} is not a readable zip archive: {_first_line(e)}"
            ) from e
        infos: dict[str, zipfile.ZipInfo] = {}
        seen: set[str] = set()
        total = 0
        archive = max(os.fstat(fo.fileno()).st_size, 1)
        for i in self.zip.infolist():
            is_dir = i.filename.endswith("/")  # ZipInfo.is_dir() fails on an empty name
            name = i.filename.rstrip("/") if is_dir else i.filename
            _check_name(name, seen)
            if is_dir:  # bundle-format §11: a directory entry's mode is not looked at
                continue
            kind = stat.S_IFMT(i.external_attr >> 16)
            if kind and kind != stat.S_IFREG:
                raise HostileBundleError(
                    f"unsafe entry {_short(i.filename)!r}: link or special file"
                )
            total += i.file_size
            if total > MAX_TOTAL or (total > (64 << 20) and total / archive > MAX_RATIO):
                raise HostileBundleError(
                    f"{path}: declared content ({total} bytes) is far larger than the archive:"
                    " refusing a decompression bomb"
                )
            infos[name] = i
        self.top, self.infos = _strip_top(infos)
        super().__init__({n: i.file_size for n, i in self.infos.items()})

    def open(self, name: str) -> IO[bytes]:
        try:
            f = self.zip.open(self.infos[name])
        except DECODER_ERRORS as e:
            raise damaged(f"{self.path} ({name})", e) from e
        return cast(IO[bytes], _Guarded(f, f"{self.path} ({name})"))

    def _release(self) -> None:
        self.zip.close()
        self.fo.close()


def open_source(path: Path) -> _Source:
    """The bundle at ``path``: a folder, else a regular file holding a zip or a
    tar (a link the user names is followed; a FIFO, a device or a socket is
    refused before it is opened for reading, so nothing blocks on it)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"no such bundle: {path}") from None
    except (OSError, ValueError) as e:
        raise UsageError(
            f"cannot read bundle {path}: {getattr(e, 'strerror', None) or e}"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        return _DirSource(path)
    try:
        fd, _ = open_regular(os.path.realpath(path))
    except NotRegularFileError as e:
        raise HostileBundleError(
            f"{path} is {e.what}, not a bundle (a folder, a tar or a zip file)"
        ) from None
    except OSError as e:
        raise UsageError(f"cannot read bundle {path}: {e.strerror}") from None
    fo = os.fdopen(fd, "rb")
    try:
        if zipfile.is_zipfile(fo):
            fo.seek(0)
            return _ZipSource(path, fo)
        fo.seek(0)
        return _TarSource(path, fo)
    except BaseException:
        fo.close()
        raise


#: the digests a staged payload file is hashed with as it is copied (every bag
#: custody writes has exactly these two manifests)
STAGED_ALGORITHMS = ("sha256", "sha512")
STAGED_MODE = 0o400  # a staged payload file: read-only, the owner's alone, as in the store


class StagedSource(_Source):
    """A folder bundle copied into a private folder (0700) this process made:
    the tag files (everything outside ``data/`` up to :data:`MAX_TAG_FILE`) held
    in memory, every other file copied into its own read-only file (0400), each
    copy read back and compared as it is written and hashed with
    :data:`STAGED_ALGORITHMS` from the bytes copied (:attr:`known`).  What is
    verified and then imported are these bytes: nobody else can write the folder,
    and an import moves the staged payload files into the store as they are
    (:meth:`custody.store.Store.adopt`), never reading the original again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tags: dict[str, bytes] = {}
        self.files: dict[str, str] = {}  # name -> the staged copy's path
        # name -> (inode, size, mtime, ctime) of the staged copy once written: any
        # later write, chmod or replacement of it changes one of them
        self.stamps: dict[str, tuple[int, int, int, int]] = {}
        super().__init__({})

    def open(self, name: str) -> IO[bytes]:
        if name in self.tags:
            return io.BytesIO(self.tags[name])
        fd = os.open(self.files[name], os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        return os.fdopen(fd, "rb")

    def staged_path(self, name: str) -> str | None:
        """The staged copy of payload file ``name`` (None for a tag file)."""
        return self.files.get(name)

    def untouched(self, name: str) -> bool:
        """Is the staged copy of ``name`` the very file written and hashed, unchanged?"""
        try:
            st = os.lstat(self.files[name])
        except OSError:
            return False
        return _stamp(st) == self.stamps.get(name)


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def stage_folder(src: Path, root: Path) -> StagedSource:
    """Copy the folder bag ``src`` into the private folder ``root`` (see
    :class:`StagedSource`): regular files only, with the names and limits the
    folder reader applies; a link, a hard link or a special file is refused as that
    reader refuses it, and a file that changes while it is copied is refused."""
    staged = StagedSource(root)
    chmod = STAGED_MODE & ~_umask() != STAGED_MODE
    for rel, path, _st in folder_files(src):
        _stage_file(staged, path, rel, chmod, len(staged.sizes))
    return staged


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _stage_file(staged: StagedSource, path: str, rel: str, chmod: bool, n: int) -> None:
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        if err.errno == errno.ELOOP:  # made a link since the folder was listed
            raise HostileBundleError(f"unsafe entry {_short(rel)!r}: symbolic link") from None
        raise OperationalError(f"cannot read {_short(rel)}: {err.strerror}") from err
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise HostileBundleError(f"unsafe entry {_short(rel)!r}: not a regular file")
        size = st.st_size
        if not rel.startswith("data/") and size <= MAX_TAG_FILE:
            data = b""
            while len(data) <= size and (chunk := os.read(fd, size + 1 - len(data))):
                data += chunk
            if len(data) != size:
                raise IntegrityError(f"{_short(rel)} changed while it was staged")
            staged.tags[rel] = data
        else:
            dest = f"{staged.root}/p{n}"
            out = os.open(dest, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, STAGED_MODE)
            staged.files[rel] = dest
            try:
                if chmod:
                    os.fchmod(out, STAGED_MODE)
                got = hash_fd(fd, STAGED_ALGORITHMS, out_fd=out, size_hint=size)
                staged.stamps[rel] = _stamp(os.fstat(out))
            finally:
                os.close(out)
            if got.size != size:
                raise IntegrityError(f"{_short(rel)} changed while it was staged")
            staged.known[rel] = got.digests
        staged.sizes[rel] = size
    except SourceReadError as err:
        raise OperationalError(f"cannot read {_short(rel)}: {err.err.strerror}") from err
    except CopyMismatchError as err:
        raise OperationalError(f"cannot stage {_short(rel)}: {err}") from err
    except OSError as err:
        if isinstance(err, NotRegularFileError) or err.errno is None:
            raise
        raise OperationalError(f"cannot stage {_short(rel)}: {err.strerror}") from err
    finally:
        os.close(fd)
