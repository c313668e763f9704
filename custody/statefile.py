"""The latest signed checkpoint, kept outside the ledger database.

After every writing command custody signs a checkpoint note (§9.2 of
docs/ledger-format.md) of the ledger's current tree head, with the key of the
command's signer, and writes it, without recording an event, to
``<case>/checkpoint.latest`` and, when the user configured one, to
``<state dir>/<case uuid>/checkpoint.latest`` (``$CUSTODY_STATE_DIR``, else the
path in ``<config dir>/state-dir``).  A database that lost its write-ahead log,
or was replaced by an older copy, no longer extends these notes: plain
``custody verify`` checks the ledger against every copy it finds.

A note the ledger no longer extends is never overwritten: it is renamed
``checkpoint.kept-<size>-<time>`` beside it, and stays a finding for good.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from custody import note
from custody.config import config_dir
from custody.errors import UsageError
from custody.safeio import CAP_CHECKPOINT, CAP_CONFIG, read_input_text
from custody.store import PRIVATE_FILE_MODE, make_private_dirs, open_private

if TYPE_CHECKING:
    from custody.keys import Signer
    from custody.ledger import Ledger

LATEST = "checkpoint.latest"
KEPT_PREFIX = "checkpoint.kept-"
STATE_DIR_ENV = "CUSTODY_STATE_DIR"
STATE_DIR_FILE = "state-dir"


def state_root() -> Path | None:
    """The user's state directory off the case's media, if one is configured."""
    env = os.environ.get(STATE_DIR_ENV)
    if env:
        return Path(env)
    try:
        text = read_input_text(config_dir() / STATE_DIR_FILE, "state-dir record", CAP_CONFIG)
    except UsageError:  # missing, a FIFO, too large, not UTF-8: none configured
        return None
    text = text.strip()
    return Path(text) if text else None


def _case_dirname(ledger: Ledger) -> str:
    case = ledger.case
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", case.case_id).strip("-.") or "case"
    return f"{slug}-{case.uuid}" if case.uuid else slug


def places(ledger: Ledger) -> list[Path]:
    """Every directory a copy of the latest checkpoint is kept in."""
    out = [ledger.case_dir]
    root = state_root()
    if root is not None:
        out.append(root / _case_dirname(ledger))
    return out


def found(ledger: Ledger) -> list[Path]:
    """Every checkpoint note file custody wrote for this case that still exists."""
    out: list[Path] = []
    for d in places(ledger):
        if not d.is_dir():
            continue
        latest = d / LATEST
        if latest.is_file():
            out.append(latest)
        out.extend(sorted(p for p in d.glob(KEPT_PREFIX + "*") if p.is_file()))
    return out


def _parse(path: Path, origin: str) -> note.Checkpoint | None:
    """The checkpoint body of a note file, its signature unchecked (None if
    unreadable or malformed)."""
    try:  # never blocks on a FIFO, never reads past the cap
        text = read_input_text(path, "checkpoint note", CAP_CHECKPOINT)
        cp = note.parse_checkpoint(text.split("\n\n", 1)[0] + "\n")
    except (UsageError, note.NoteError):
        return None
    return cp if cp.origin == origin else None


def highest_size(ledger: Ledger) -> int:
    """The largest tree size any checkpoint note file of this case commits to
    (signatures unchecked: used only to keep item numbers clear of lost events)."""
    from custody.checkpoint import origin_of

    origin = origin_of(ledger.case.case_id)
    sizes = [cp.size for p in found(ledger) if (cp := _parse(p, origin)) is not None]
    return max(sizes, default=0)


def _keep(src: Path, dest: Path) -> None:
    """Keep ``src`` as ``dest`` (a hard link; a durable copy where the file system
    has none, as FAT and exFAT drives).  Either way ``dest`` is left 0600: a
    note of an older case may be 0644, and a hard link shares its mode."""
    try:
        os.link(src, dest)
    except OSError:
        pass
    else:
        fd = os.open(dest, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchmod(fd, PRIVATE_FILE_MODE)
        finally:
            os.close(fd)
        return
    data = src.read_bytes()
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_latest(ledger: Ledger, signer: Signer) -> list[Path]:
    """Sign a checkpoint of the ledger as it is now (no event recorded) and write
    it to every place; a note there that the ledger does not extend is kept under
    another name first.  Returns the files written."""
    from custody.checkpoint import note_key_name, origin_of, registered_name

    origin = origin_of(ledger.case.case_id)
    tree = ledger.tree()
    size = len(tree)
    root = tree.root(size)
    key_name = note_key_name(registered_name(ledger, signer))
    cp = note.Checkpoint(origin=origin, size=size, root=root, extensions=[])
    text = note.sign_note(
        note.format_checkpoint(cp), key_name, signer.sign, signer.identity.public_raw
    )
    written: list[Path] = []
    for d in places(ledger):
        if not d.is_dir():  # the case directory, or the state directory's for it
            make_private_dirs(os.fspath(d), os.fspath(d))
        latest = d / LATEST
        old = _parse(latest, origin) if latest.exists() else None
        now = ledger.tree()  # re-read: another writer may have appended since
        extends = old is not None and old.size <= len(now) and now.root(old.size) == old.root
        if old is not None and extends and old.size >= size:
            continue  # another command's note, as new as this one or newer
        if latest.exists() and not extends:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            n = old.size if old is not None else "unreadable"
            kept = d / f"{KEPT_PREFIX}{n}-{stamp}-{os.urandom(3).hex()}"
            _keep(latest, kept)  # the ledger lost what it commits to
        tmp = d / f".{LATEST}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)  # left by a killed command of this pid
        with os.fdopen(open_private(tmp, os.O_WRONLY), "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, latest)
        written.append(latest)
    return written
