"""Reading a bundle in place, and the limits that keep hostile input out.

A bundle is a folder, a tar (optionally gzip) or a zip; :func:`open_source` gives
its regular files by relative name without extracting anything, refusing links,
special files, unsafe or duplicate names and decompression bombs before any
content is read.  The size and depth limits every reader of a bundle obeys live
here too.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import IO, Any

from custody.errors import UsageError

MAX_TAG_FILE = 64 << 20  # bytes of any one custody/ or bag tag file
MAX_JSON_DEPTH = 64
MAX_TOTAL = 1 << 40  # 1 TiB of declared content
MAX_RATIO = 1000  # declared size / archive size: beyond this, a decompression bomb
CHUNK = 1 << 20


class HostileBundleError(UsageError):
    """Not a bundle custody will read: unsafe entries, bombs, malformed metadata."""


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
    return None


class _Source(ABC):
    """Regular files of a bundle by relative name, read without extracting."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes
        self.digests: dict[str, dict[str, str]] = {}  # payload digests computed once
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


def _check_name(name: str, seen: set[str]) -> None:
    why = path_is_dangerous(name)
    if why:
        raise HostileBundleError(f"unsafe entry {name!r}: {why}")
    if name in seen:
        raise HostileBundleError(f"duplicate entry {name!r}")
    seen.add(name)


class _DirSource(_Source):
    def __init__(self, root: Path) -> None:
        self.root = root
        sizes: dict[str, int] = {}
        todo = [("", os.fspath(root))]
        while todo:
            prefix, folder = todo.pop()
            with os.scandir(folder) as entries:
                for e in entries:
                    rel = prefix + e.name
                    st = e.stat(follow_symlinks=False)
                    if stat.S_ISLNK(st.st_mode):
                        raise HostileBundleError(f"unsafe entry {rel!r}: symbolic link")
                    if stat.S_ISDIR(st.st_mode):
                        todo.append((rel + "/", e.path))
                    elif not stat.S_ISREG(st.st_mode):
                        raise HostileBundleError(f"unsafe entry {rel!r}: not a regular file")
                    elif st.st_nlink > 1:
                        raise HostileBundleError(f"unsafe entry {rel!r}: hard link")
                    else:
                        sizes[rel] = st.st_size
        super().__init__(sizes)

    def open(self, name: str) -> IO[bytes]:
        return open(self.root / name, "rb")


class _TarSource(_Source):
    def __init__(self, path: Path) -> None:
        try:
            self.tar = tarfile.open(path, "r:*")
        except (tarfile.TarError, OSError, EOFError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise HostileBundleError(f"{path} is not a bundle (folder, tar or zip): {first}") from e
        archive = max(path.stat().st_size, 1)
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
        except (tarfile.TarError, EOFError, OSError) as e:
            raise HostileBundleError(f"{path} is a damaged tar archive: {e}") from e
        self.top, self.members = _strip_top(members)
        super().__init__({n: m.size for n, m in self.members.items()})

    def open(self, name: str) -> IO[bytes]:
        f = self.tar.extractfile(self.members[name])
        if f is None:
            raise HostileBundleError(f"cannot read {name}")
        return f

    def _release(self) -> None:
        self.tar.close()


class _ZipSource(_Source):
    def __init__(self, path: Path) -> None:
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise HostileBundleError(f"{path} is not a readable zip archive: {e}") from e
        infos: dict[str, zipfile.ZipInfo] = {}
        seen: set[str] = set()
        total = 0
        archive = max(path.stat().st_size, 1)
        for i in self.zip.infolist():
            name = i.filename.rstrip("/") if i.is_dir() else i.filename
            _check_name(name, seen)
            if i.is_dir():
                continue
            kind = stat.S_IFMT(i.external_attr >> 16)
            if kind and kind != stat.S_IFREG:
                raise HostileBundleError(f"unsafe entry {i.filename!r}: link or special file")
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
        return self.zip.open(self.infos[name])

    def _release(self) -> None:
        self.zip.close()


def open_source(path: Path) -> _Source:
    if not path.exists():
        raise UsageError(f"no such bundle: {path}")
    if path.is_dir():
        return _DirSource(path)
    if zipfile.is_zipfile(path):
        return _ZipSource(path)
    return _TarSource(path)
