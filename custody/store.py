"""Content-addressed, read-only evidence store: ``store/sha256/ab/cd/<hex>``.

Ingest: copy into a temp file in ``store/tmp/`` while hashing (one read), fsync,
rename into place (or drop the temp when identical content is already stored),
make it read-only (0444), fsync the directory, then read the object back and
re-hash it; a mismatch is an error.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from custody.errors import DiskFullError, StoreError
from custody.hashing import HashResult, Progress, hash_fd, hash_file

OBJECT_MODE = 0o444


def object_relpath(sha256_hex: str) -> str:
    return f"sha256/{sha256_hex[0:2]}/{sha256_hex[2:4]}/{sha256_hex}"


@dataclass
class Stored:
    result: HashResult
    relpath: str
    deduplicated: bool


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def path_of(self, relpath: str) -> Path:
        return self.root / relpath

    def ingest(
        self,
        src_fd: int,
        algorithms: Sequence[str],
        *,
        size_hint: int | None = None,
        progress: Progress | None = None,
    ) -> Stored:
        try:
            self.tmp.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create {self.tmp}: {e.strerror}") from e
        tmp_path = self.tmp / f"ingest-{os.getpid()}-{os.urandom(6).hex()}"
        try:
            out_fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise StoreError(f"cannot create a file in the store: {e.strerror}") from e
        try:
            try:
                result = hash_fd(
                    src_fd, algorithms, out_fd=out_fd, size_hint=size_hint, progress=progress
                )
                os.fsync(out_fd)
            finally:
                os.close(out_fd)
            relpath = object_relpath(result.digests["sha256"])
            dest = self.root / relpath
            dedup = dest.exists()
            if dedup:
                tmp_path.unlink()
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp_path, OBJECT_MODE)
                os.replace(tmp_path, dest)
                _fsync_dir(dest.parent)
        except OSError as e:
            tmp_path.unlink(missing_ok=True)
            if e.errno == errno.ENOSPC:
                need = size_hint if size_hint is not None else 0
                raise DiskFullError(
                    f"store is full ({self.root}): needed {need} bytes for this item"
                ) from e
            raise StoreError(f"cannot write to the store: {e.strerror}") from e
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
        self._read_back(dest, result)
        return Stored(result=result, relpath=relpath, deduplicated=dedup)

    def _read_back(self, dest: Path, expected: HashResult) -> None:
        try:
            again = hash_file(dest, ["sha256"])
        except OSError as e:
            raise StoreError(f"cannot read back store object {dest}: {e.strerror}") from e
        if again.digests["sha256"] != expected.digests["sha256"] or again.size != expected.size:
            raise StoreError(
                f"read-back verification failed for {dest}: expected sha256 "
                f"{expected.digests['sha256']} ({expected.size} bytes), found "
                f"{again.digests['sha256']} ({again.size} bytes)"
            )
