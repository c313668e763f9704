"""Typing of store objects: MIME type and libmagic description, recorded once per
store object in its own signed ``describe`` event.

A file's type depends only on its bytes, so it is a property of the store object
(named by its SHA-256), not of the item (a path collected at a time): identical
files collected twice are typed once.  Typing is off the collection's critical
path: the collector records its items first, then types the objects it stored in
worker processes (:func:`describe_objects`); ``custody describe`` types any object
later, and ``bundle import`` types imported objects that lack a description.

A ``describe`` event names one object only (``sha256``), never an item, so
disclosing it reveals nothing about other items.  Views take an item's type from
the latest describe event of its object (:func:`object_types`), or, for items
recorded by custody up to 0.1.0, from the ``mime``/``magic`` fields their collect
event carries (:func:`fill_types`).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from custody import filetype
from custody.errors import OperationalError
from custody.keys import Signer
from custody.ledger import DESCRIBE_EVENT, EventDraft, Ledger
from custody.store import Store

#: objects per ledger transaction, and per task handed to a worker process
BATCH = 256
TASK = 32
#: fewer objects than this are typed in this process (a pool costs its start-up)
POOL_MIN = 64

_SHA256 = re.compile(r"[0-9a-f]{64}")

ProgressFn = Callable[[int], None]  # objects typed since the last call


class LibmagicMissingError(OperationalError):
    """libmagic (or its binding, python-magic) cannot be loaded (exit 3)."""


@dataclass(frozen=True)
class Typing:
    mime: str
    description: str
    seq: int | None  # the describe event (None: an old collect event's own fields)


def check_available() -> None:
    """Raise :class:`LibmagicMissingError` where libmagic cannot be loaded."""
    missing = filetype.unavailable()
    if missing is not None:
        raise LibmagicMissingError(
            f"cannot describe store objects: {missing} (custody loads it through python-magic)"
        )


def check_data(data: dict[str, Any]) -> str | None:
    """What is wrong with a describe event's data (None: well formed).  The writer
    builds only what passes, and ``verify`` reports what does not."""
    if not isinstance(data.get("sha256"), str) or not _SHA256.fullmatch(data["sha256"]):
        return "describe: sha256 is not 64 lowercase hex digits"
    for k in ("mime", "description", "libmagic"):
        if not isinstance(data.get(k), str):
            return f"describe: {k} is not a string"
    if set(data) - {"sha256", "mime", "description", "libmagic"}:
        return "describe: names more than one object's type"
    return None


def libmagic_version() -> str:
    """libmagic's version as ``5.44`` (``unknown`` where it does not say)."""
    try:
        import magic

        v = int(magic.version())  # type: ignore[no-untyped-call]
    except (ImportError, OSError, AttributeError, TypeError, ValueError):
        return "unknown"
    return f"{v // 100}.{v % 100:02d}"


def object_types(ledger: Ledger) -> dict[str, Typing]:
    """The type of every described object (by SHA-256): its latest describe event."""
    out: dict[str, Typing] = {}
    sql = "SELECT seq, body FROM events WHERE type = ? ORDER BY seq"
    for seq, body in ledger.conn.execute(sql, (DESCRIBE_EVENT,)):
        try:
            data = json.loads(body).get("data")
        except (TypeError, ValueError, AttributeError):
            continue
        if isinstance(data, dict) and check_data(data) is None:
            out[data["sha256"]] = Typing(data["mime"], data["description"], int(seq))
    return out


def verified_types(events: Iterable[Any]) -> dict[str, Typing]:
    """:func:`object_types` from events a verification just checked (views'
    ``ViewEvent``: ``type``, ``seq``, ``body``, ``signature_verified``): only
    describe events whose signature verified count."""
    out: dict[str, Typing] = {}
    for e in events:
        data = e.body.get("data") if e.type == DESCRIBE_EVENT else None
        if e.signature_verified and isinstance(data, dict) and check_data(data) is None:
            out[data["sha256"]] = Typing(data["mime"], data["description"], e.seq)
    return out


def item_type(data: dict[str, Any], types: dict[str, Typing]) -> tuple[str | None, str | None]:
    """(MIME type, description) of an item from its collect event's ``data``: the
    fields an event written by custody up to 0.1.0 carries, else its object's describe event."""
    mime, magic = data.get("mime"), data.get("magic")
    if isinstance(mime, str):
        return mime, magic if isinstance(magic, str) else None
    digests = data.get("digests")
    sha = digests.get("sha256") if isinstance(digests, dict) and "store" in data else None
    t = types.get(sha) if isinstance(sha, str) else None
    return (t.mime, t.description) if t is not None else (None, None)


def fill_types(facts: Iterable[dict[str, Any]], types: dict[str, Typing]) -> None:
    """Give each item's facts (``mime``, ``magic``) its object's type, where its
    own collect event carries none (events written after 0.1.0 never do)."""
    for f in facts:
        t = types.get(str(f.get("sha256")))
        if t is not None and not f.get("mime"):
            f["mime"], f["magic"] = t.mime, t.description
            f["describe_event"] = t.seq


def stored_objects(ledger: Ledger) -> list[str]:
    """SHA-256 of every object the case's items are stored as (collected, then
    imported), each once, in the order the ledger first named them."""
    seen: dict[str, None] = {}
    for (sha,) in ledger.conn.execute(
        "SELECT sha256 FROM artifacts WHERE sha256 IS NOT NULL ORDER BY event_seq"
    ):
        seen.setdefault(str(sha), None)
    for rel in sorted(ledger.imported_objects()):
        seen.setdefault(rel.rsplit("/", 1)[-1], None)
    return list(seen)


def undescribed(ledger: Ledger, shas: Iterable[str] | None = None) -> list[str]:
    """Of ``shas`` (default: every stored object), those no describe event types
    (as :func:`object_types` reads them).  SQLite names the object of each describe
    event, and only the events naming one of ``shas`` are read here: a case's
    every describe event is not parsed again for each import into it."""
    todo = stored_objects(ledger) if shas is None else list(shas)
    want = set(todo)
    done: set[str] = set()
    sql = (
        "SELECT seq, CASE WHEN json_valid(body) THEN json_extract(body, '$.data.sha256') END"
        " FROM events WHERE type = ?"
    )
    named = [seq for seq, sha in ledger.conn.execute(sql, (DESCRIBE_EVENT,)) if sha in want]
    for seq in named:
        (body,) = ledger.conn.execute("SELECT body FROM events WHERE seq = ?", (seq,)).fetchone()
        try:
            data = json.loads(body).get("data")
        except (TypeError, ValueError, AttributeError):
            continue
        if isinstance(data, dict) and check_data(data) is None:
            done.add(data["sha256"])
    return [s for s in todo if s not in done]


# -- typing, in worker processes ---------------------------------------------------

_handles: filetype.Handles | None = None


def _die_with_parent() -> None:
    """A worker ends when the collector does (even killed by ``kill -9``)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _init_worker() -> None:
    global _handles
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _handles = filetype.open_handles()


def _type_paths(paths: Sequence[str]) -> list[tuple[str, str] | str]:
    """(MIME, description) of each file, or why it could not be typed."""
    global _handles
    if _handles is None:
        _handles = filetype.open_handles()
    out: list[tuple[str, str] | str] = []
    for p in paths:
        try:
            out.append(filetype.detect(p, _handles))
        except Exception as e:  # libmagic's MagicException, an OSError: reported
            out.append(f"cannot type {p}: {e}")
    return out


def _typed(
    paths: list[str], workers: int | None
) -> Iterable[tuple[int, list[tuple[str, str] | str]]]:
    """(offset, results) for consecutive slices of ``paths``, in order."""
    if len(paths) < POOL_MIN or workers == 0:
        for i in range(0, len(paths), TASK):
            yield i, _type_paths(paths[i : i + TASK])
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    n = workers or max(1, len(os.sched_getaffinity(0)))
    ctx = multiprocessing.get_context("fork")  # no re-import: workers start in ms
    with ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker) as pool:
        slices = [paths[i : i + TASK] for i in range(0, len(paths), TASK)]
        for k, res in enumerate(pool.map(_type_paths, slices)):
            yield k * TASK, res


def describe_objects(
    ledger: Ledger,
    signer: Signer,
    shas: Sequence[str],
    *,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> tuple[int, list[str]]:
    """Type the store objects ``shas`` (SHA-256 hex) with libmagic, in ``workers``
    processes (default: one per CPU; 0: this process), and record one signed
    describe event per object, ``BATCH`` events per transaction.  Returns the
    number recorded and the problems met (an object missing from the store or
    libmagic failing on it: not recorded).  Raises :class:`LibmagicMissingError`
    where libmagic cannot be loaded."""
    check_available()
    version = libmagic_version()
    store = ledger.store_dir
    todo = [s for s in dict.fromkeys(shas) if _SHA256.fullmatch(s)]
    objects = Store(store)
    paths = [os.fspath(objects.path_of(objects.locate(s))) for s in todo]
    problems: list[str] = []
    done = 0
    pending: list[EventDraft] = []

    def flush() -> None:
        nonlocal done
        if pending:
            ledger.append(signer, list(pending))
            done += len(pending)
            pending.clear()

    for off, results in _typed(paths, workers):
        for k, res in enumerate(results):
            sha = todo[off + k]
            if isinstance(res, str):
                problems.append(res)
                continue
            data = {"sha256": sha, "mime": res[0], "description": res[1], "libmagic": version}
            pending.append(EventDraft(DESCRIBE_EVENT, data))
        if len(pending) >= BATCH:
            flush()
        if progress is not None:
            progress(len(results))
    flush()
    return done, problems


def describe_missing(ledger: Ledger, signer: Signer, shas: Iterable[str]) -> int:
    """Type those of ``shas`` no describe event types yet (what ``bundle import``
    calls for the objects it brought in); nothing where libmagic is missing.
    Returns the number of describe events recorded."""
    if filetype.unavailable() is not None:
        return 0
    todo = undescribed(ledger, list(shas))
    return describe_objects(ledger, signer, todo)[0] if todo else 0
