"""Reading the small files a user names, and store objects, without hanging.

Every file custody reads that a user names on the command line (a key, a
passphrase file, a checkpoint, a TSA certificate, a public key, a proof input) is
read here: opened with ``O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC``, checked with ``fstat``
to be a regular file, and read with a cap that matches its kind.  A FIFO, a
device (``/dev/zero``), a directory or a file larger than its cap is refused with
:class:`UnsafeFileError` (exit 2) naming the file: never a hang, never a
``MemoryError``.  ``O_NONBLOCK`` makes opening a FIFO return at once (POSIX), so
the ``fstat`` can refuse it; on a regular file the flag has no effect.

A symbolic link the user names is the user's own choice of path (Debian's
``/etc/ssl/certs/*.pem`` are links): it is resolved first, and its *target* is
then opened with ``O_NOFOLLOW`` and must be a regular file.  Files a bundle or the
store holds are never followed: :func:`open_beneath` opens every component of the
path with ``O_NOFOLLOW`` and refuses a link anywhere in it.

Output files are written by :func:`write_atomic`: into a temporary file beside
the target, then renamed over it, only when the target is missing or a regular
file, and only into a folder that exists.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from custody.errors import OperationalError, UsageError

KiB = 1 << 10
MiB = 1 << 20

#: caps per kind of file (bytes); documented in docs/exit-codes.md
CAP_PASSPHRASE = 4 * KiB
CAP_KEY = 64 * KiB  # a PEM private key with its header lines: a few hundred bytes
CAP_PUBLIC_KEY = 64 * KiB
CAP_CHECKPOINT = 1 * MiB  # a signed note: a few lines per signature
CAP_CERTIFICATE = 1 * MiB  # a PEM bundle of certificates
CAP_CONFIG = 64 * KiB  # the remembered default key path, the state pointer

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnsafeFileError(UsageError):
    """A file named as input is missing, not a regular file, or too large (exit 2)."""


class NotRegularFileError(OSError):
    """A store or bundle file is a link, a directory, a FIFO, a socket or a device.

    An ``OSError`` so that every reader that already handles an unreadable file
    handles this one too; ``what`` names what the path is instead."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file ({what})", path)
        self.what = what


def file_kind(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, in words."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "a special file"


def _fd_regular(fd: int, path: str) -> os.stat_result:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularFileError(path, file_kind(st.st_mode))
    return st


def open_regular(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """Open ``path`` (a link is not followed) for reading; it must be a regular
    file.  Raises ``OSError`` (:class:`NotRegularFileError` when it is something
    else than a regular file)."""
    p = os.fspath(path)
    try:
        fd = os.open(p, _READ_FLAGS)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise NotRegularFileError(p, "a symbolic link") from None
        raise
    return fd, _fd_regular(fd, p)


def _read_fd(fd: int, cap: int) -> bytes:
    chunks: list[bytes] = []
    got = 0
    while got <= cap:
        chunk = os.read(fd, min(cap + 1 - got, MiB))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_input(path: str | os.PathLike[str], what: str, cap: int) -> tuple[bytes, os.stat_result]:
    """The bytes of a file the user named as ``what`` ("key file", "checkpoint",
    ...) and its ``stat``; a link is resolved to its target first.  Refused with
    :class:`UnsafeFileError` (exit 2, one line naming the file): missing,
    unreadable, not a regular file, larger than ``cap`` bytes."""
    shown = os.fspath(path)
    try:
        target = os.path.realpath(shown)
        fd, st = open_regular(target)
    except NotRegularFileError as e:
        raise UnsafeFileError(f"{what} {shown} is {e.what}, not a regular file") from None
    except FileNotFoundError:
        raise UnsafeFileError(f"{what} not found: {shown}") from None
    except (OSError, ValueError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise UnsafeFileError(f"cannot read {what} {shown}: {why}") from None
    try:
        if st.st_size > cap:
            raise UnsafeFileError(
                f"{what} {shown} is {st.st_size} bytes, more than the {cap} allowed"
            )
        data = _read_fd(fd, cap)
    except OSError as e:
        raise UnsafeFileError(f"cannot read {what} {shown}: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > cap:
        raise UnsafeFileError(f"{what} {shown} is more than the {cap} bytes allowed")
    return data, st


def read_input_text(path: str | os.PathLike[str], what: str, cap: int) -> str:
    """:func:`read_input`, decoded as UTF-8 (else :class:`UnsafeFileError`)."""
    data, _ = read_input(path, what, cap)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeFileError(f"{what} {os.fspath(path)} is not UTF-8 text") from None


def open_beneath(root: str | os.PathLike[str], rel: str) -> tuple[int, os.stat_result]:
    """Open ``root/rel`` for reading without following a link in ``rel``: every
    directory component with ``O_NOFOLLOW|O_DIRECTORY``, the file itself with
    ``O_NOFOLLOW|O_NONBLOCK``; it must be a regular file.  Raises
    :class:`NotRegularFileError` naming what the path is (a link anywhere in it, a
    directory, a FIFO, a device), ``FileNotFoundError`` when it is missing, or
    another ``OSError``."""
    parts = rel.split("/")
    full = os.path.join(os.fspath(root), rel)
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(
                    part,
                    os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                    dir_fd=dir_fd,
                )
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    st = os.lstat(part, dir_fd=dir_fd)
                    raise NotRegularFileError(
                        full, f"its folder {part} is {file_kind(st.st_mode)}"
                    ) from None
                raise
            os.close(dir_fd)
            dir_fd = nxt
        last = parts[-1]
        st = os.lstat(last, dir_fd=dir_fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(full, file_kind(st.st_mode))
        try:
            fd = os.open(last, _READ_FLAGS, dir_fd=dir_fd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise NotRegularFileError(full, "a symbolic link") from None
            raise
        return fd, _fd_regular(fd, full)
    finally:
        os.close(dir_fd)


def check_output(path: str | os.PathLike[str], what: str = "output file") -> None:
    """Refuse (exit 2) an output path custody must not write: an existing node that
    is not a regular file (a device, a FIFO, a directory, a link to one), or a
    path whose folder does not exist.  Nothing is created or changed."""
    p = os.fspath(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise UsageError(f"cannot write {what} {p}: {e.strerror}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UsageError(
            f"{what} {p} exists and is {file_kind(st.st_mode)}: custody writes only a new"
            " file or over a regular file"
        )
    parent = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(parent):
        raise UsageError(f"cannot write {what} {p}: folder {parent} does not exist")


def write_atomic(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    mode: int = 0o600,
    what: str = "output file",
    replace: bool = True,
) -> None:
    """Write ``data`` to ``path`` by atomic rename: a temporary file in the same
    folder (mode ``mode``, exactly), fsync, rename over ``path``.  Only a new name
    or an existing regular file is replaced (:func:`check_output`); a device, FIFO
    or directory there is refused (exit 2) and left untouched.  Without
    ``replace`` an existing ``path`` is refused (exit 2): the temporary file is
    then hard-linked to the new name, which fails if anything took it meanwhile."""
    with atomic_output(path, mode=mode, what=what, replace=replace) as f:
        f.write(data)


@contextmanager
def atomic_output(
    path: str | os.PathLike[str],
    *,
    mode: int = 0o600,
    what: str = "output file",
    replace: bool = True,
) -> Iterator[IO[bytes]]:
    """:func:`write_atomic` for a writer that writes as it goes: yields the
    temporary file (binary); when the block ends normally it is fsynced and renamed
    to ``path`` (the same rules), and if the block raises it is removed and
    ``path`` is left as it was."""
    p = os.fspath(path)
    check_output(p, what)
    folder = os.path.dirname(os.path.abspath(p))
    tmp = os.path.join(folder, f".{os.path.basename(p)}.custody-{os.urandom(6).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as e:
        raise UsageError(f"cannot write {what} {p}: {e.strerror}") from None
    try:
        try:
            os.fchmod(fd, mode)
        except OSError:
            os.close(fd)
            raise
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        check_output(p, what)  # still a regular file or nothing, just before the swap
        if replace:
            os.replace(tmp, p)
        else:
            try:
                os.link(tmp, p, follow_symlinks=False)
            except FileExistsError:
                raise UsageError(f"{p} already exists; refusing to overwrite it") from None
            os.unlink(tmp)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OperationalError(f"cannot write {what} {p}: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
