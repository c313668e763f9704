"""Collection profiles: what ``custody collect --profile`` takes from a machine.

A profile is a JSON document (schemas/profile.schema.json, docs/profiles.md):
volatile steps first, in order of volatility (RFC 3227), then *entries*, each a
set of globs with a reason, excludes and size caps.  Built-in profiles are
package data (custody/profiles/NAME.json); a user's own file is checked by the
very same rules (:func:`check_profile`).

A profile run is one collection run (``collection.start`` names ``--root``), in
which, before any file is read:

1. ``profile.run`` records the profile document, its SHA-256 and the root;
2. each volatile step stores its captures as items (``collect`` events) and is
   recorded as a ``volatile.step`` event, in the profile's order; a ``command``
   step runs a live-response command through :func:`custody.capture.run_capture`
   (on PATH, or only inside ``--tools``) and records its outcome: ``captured``,
   ``timed out``, ``not available`` (not found: the run goes on) or ``failed``;
   with a ``--root`` other than ``/`` (not the live system) each step is recorded
   as skipped;
3. each entry's globs are expanded under the root and the entry's outcome is
   recorded as a ``profile.entry`` event: how many paths matched (``nothing
   matched`` included), which were left out and why (exclude glob, size cap,
   device), which directories could not be read;

then the matched paths are collected like named paths (``collect`` events).
"""

from __future__ import annotations

import dataclasses
import errno
import fnmatch
import hashlib
import json
import os
import shlex
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from custody import volatile
from custody.errors import CustodyError, StoreError, UsageError
from custody.hashing import SourceReadError
from custody.ledger import COLLECT_EVENT, EventDraft

if TYPE_CHECKING:
    from custody.collect import Collector, Run, WalkRules
    from custody.ledger import Ledger

PROFILE_RUN_EVENT = "profile.run"
PROFILE_ENTRY_EVENT = "profile.entry"
VOLATILE_STEP_EVENT = "volatile.step"

DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_MAX_FILES = 100_000
LIST_CAP = 1000  # an entry event lists at most this many paths per kind (with the count)
MAX_GLOBSTARS = 4
PROFILE_FILE_CAP = 1 << 20
COMMAND_STEP = "command"
#: where steps may stand: volatile.STEP_ORDER, with live-response commands (any
#: number, in the profile's own order) after the /proc reads of the same state and
#: before the slow steps (every running executable, memory)
RUN_ORDER: tuple[str, ...] = (
    *volatile.STEP_ORDER[: volatile.STEP_ORDER.index("executables")],
    COMMAND_STEP,
    *volatile.STEP_ORDER[volatile.STEP_ORDER.index("executables") :],
)
DEFAULT_COMMAND_TIMEOUT = 30.0


@dataclass(frozen=True)
class Profile:
    name: str
    source: str  # "built-in" or the file's path
    raw: bytes
    doc: dict[str, Any]
    recorded_sha256: str | None = None  # a resumed run's: that of the file first read

    @property
    def sha256(self) -> str:
        return self.recorded_sha256 or hashlib.sha256(self.raw).hexdigest()

    @property
    def entries(self) -> list[dict[str, Any]]:
        return list(self.doc.get("entries") or [])

    @property
    def steps(self) -> list[dict[str, Any]]:
        return list(self.doc.get("volatile") or [])


# -- loading and checking -----------------------------------------------------------


def builtin_names() -> list[str]:
    folder = resources.files("custody").joinpath("profiles")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def _validator() -> Any:
    import jsonschema  # here: 0.1 s most commands never need

    text = resources.files("custody.schemas").joinpath("profile.schema.json").read_text()
    return jsonschema.Draft202012Validator(json.loads(text))


def check_glob(glob: str, where: str) -> None:
    """The syntax the schema cannot say: absolute, no empty, ``.`` or ``..``
    component, ``**`` only as a whole component (at most 4), brackets closed."""
    if not glob.startswith("/") or "\x00" in glob:
        raise UsageError(f"{where}: glob {glob!r} must be an absolute path pattern")
    comps = glob[1:].split("/")
    for c in comps:
        if c in ("", ".", ".."):
            raise UsageError(f"{where}: glob {glob!r} has an empty, '.' or '..' component")
        if "**" in c and c != "**":
            raise UsageError(f"{where}: glob {glob!r}: '**' must be a whole component")
        depth = 0
        for ch in c:
            if ch == "[":
                depth += 1
            elif ch == "]" and depth:
                depth -= 1
        if depth:
            raise UsageError(f"{where}: glob {glob!r} has an unclosed '['")
    if comps.count("**") > MAX_GLOBSTARS:
        raise UsageError(f"{where}: glob {glob!r} has more than {MAX_GLOBSTARS} '**'")


def check_profile(doc: Any, label: str) -> dict[str, Any]:
    """The one check every profile passes, built-in or a user's file."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "(top)"
        msg = e.message if len(e.message) <= 200 else e.message[:200] + "..."
        raise UsageError(f"profile {label}: {where}: {msg}")
    assert isinstance(doc, dict)
    steps = doc.get("volatile") or []
    order = [RUN_ORDER.index(s["step"]) for s in steps]
    once = [o for o, s in zip(order, steps, strict=True) if s["step"] != COMMAND_STEP]
    if order != sorted(order) or len(once) != len(set(once)):
        names = [s["step"] for s in doc["volatile"]]
        raise UsageError(
            f"profile {label}: volatile steps {names} are not in order of volatility"
            f" (RFC 3227: {', '.join(RUN_ORDER)}), or one other than command is repeated"
        )
    seen: set[str] = set()
    for g in doc.get("exclude") or []:
        check_glob(g, f"profile {label}: exclude")
    for entry in doc["entries"]:
        if entry["name"] in seen:
            raise UsageError(f"profile {label}: entry name {entry['name']!r} is repeated")
        seen.add(entry["name"])
        for g in [*entry["paths"], *entry.get("exclude", [])]:
            check_glob(g, f"profile {label}: entry {entry['name']}")
    return doc


def parse_profile(raw: bytes, label: str, source: str) -> Profile:
    try:
        # a fraction (5.0 too) stays a Decimal, which the schema's integers refuse:
        # the document is signed in profile.run, and signed bodies hold no floats
        doc = json.loads(raw.decode("utf-8"), parse_constant=_no_constant, parse_float=Decimal)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise UsageError(f"profile {label} is not JSON: {str(e)[:200]}") from e
    check_profile(doc, label)
    return Profile(str(doc["name"]), source, raw, doc)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_profile(spec: str) -> Profile:
    """A built-in profile by NAME, or a user's profile FILE (a path: it contains
    a '/' or ends in .json)."""
    if "/" not in spec and not spec.endswith(".json"):
        if spec not in builtin_names():
            raise UsageError(
                f"no built-in profile named {spec!r} (built in: {', '.join(builtin_names())});"
                " a profile file is named by its path"
            )
        raw = resources.files("custody").joinpath("profiles", f"{spec}.json").read_bytes()
        return parse_profile(raw, spec, "built-in")
    p = Path(spec)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UsageError(f"profile {spec}: not a regular file")
            raw = os.read(fd, PROFILE_FILE_CAP + 1)
        finally:
            os.close(fd)
    except OSError as e:
        raise UsageError(f"cannot read profile {spec}: {e.strerror}") from e
    if len(raw) > PROFILE_FILE_CAP:
        raise UsageError(f"profile {spec} is larger than {PROFILE_FILE_CAP} bytes")
    return parse_profile(raw, spec, str(p.absolute()))


# -- expanding globs under a root ---------------------------------------------------


def _comps(glob: str, fold: bool) -> list[bytes]:
    out = [os.fsencode(c) for c in glob[1:].split("/")]
    return [c.lower() for c in out] if fold else out


def _magic(c: bytes) -> bool:
    return any(ch in c for ch in (b"*", b"?", b"["))


def glob_matches(comps: list[bytes], parts: list[bytes]) -> bool:
    """Do path components ``parts`` match glob components ``comps`` (with ``**``)?"""
    memo: dict[tuple[int, int], bool] = {}

    def m(i: int, j: int) -> bool:
        key = (i, j)
        if key in memo:
            return memo[key]
        if i == len(comps):
            r = j == len(parts)
        elif comps[i] == b"**":
            r = m(i + 1, j) or (j < len(parts) and m(i, j + 1))
        else:
            r = j < len(parts) and fnmatch.fnmatchcase(parts[j], comps[i]) and m(i + 1, j + 1)
        memo[key] = r
        return r

    return m(0, 0)


@dataclass
class EntryResult:
    name: str
    paths: list[bytes] = field(default_factory=list)
    excluded: list[tuple[bytes, str]] = field(default_factory=list)
    over_cap: list[tuple[bytes, int]] = field(default_factory=list)
    devices: list[bytes] = field(default_factory=list)
    errors: list[tuple[bytes, OSError]] = field(default_factory=list)
    truncated: bool = False


class _Expander:
    """Globs of one entry, expanded under ``root`` without following a symlink
    anywhere (a mounted volume's absolute links must not lead out of it)."""

    def __init__(
        self,
        root: bytes,
        entry: dict[str, Any],
        common_exclude: list[str],
        case_ident: tuple[int, int] | None,
        now: float,
        walk_rules: WalkRules | None = None,
    ) -> None:
        self.root = root.rstrip(b"/")
        self.entry = entry
        self.fold = bool(entry.get("case_insensitive"))
        self.excludes = [
            (g, _comps(g, self.fold)) for g in [*common_exclude, *entry.get("exclude", [])]
        ]
        self.max_bytes = int(entry.get("max_bytes", DEFAULT_MAX_BYTES))
        self.max_files = int(entry.get("max_files", DEFAULT_MAX_FILES))
        days = entry.get("modified_within_days")
        self.since_ns = None if days is None else int((now - days * 86400) * 1e9)
        self.case_ident = case_ident
        self.walk_rules = walk_rules
        try:
            self.root_dev = os.lstat(root or b"/").st_dev
        except OSError:
            self.root_dev = -1
        self.res = EntryResult(entry["name"])
        self._seen: set[bytes] = set()
        self._noted: set[bytes] = set()

    def _full(self, parts: list[bytes]) -> bytes:
        return self.root + b"/" + b"/".join(parts) if parts else (self.root or b"/")

    def _excluded_by(self, parts: list[bytes], st: os.stat_result) -> str | None:
        """The profile's exclude glob, or the collect command's --exclude or
        --one-file-system (the walk's own rule, :class:`WalkRules`), that leaves
        this path out."""
        key = [p.lower() for p in parts] if self.fold else parts
        for text, comps in self.excludes:
            if glob_matches(comps, key):
                return str(text)
        if self.walk_rules is not None and parts:
            why = self.walk_rules.excluded(b"/".join(parts), parts[-1], st, self.root_dev)
            if why is not None and why["rule"] == "exclude":
                return f"--exclude {why['pattern']}"
            if why is not None and why["rule"] == "one-file-system":
                return "--one-file-system"
        return None

    def _lstat(self, parts: list[bytes]) -> os.stat_result | None:
        try:
            return os.lstat(self._full(parts))
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except OSError as e:
            self._error(parts, e)
            return None

    def _error(self, parts: list[bytes], e: OSError) -> None:
        full = self._full(parts)
        if full not in self._noted:
            self._noted.add(full)
            self.res.errors.append((full, e))

    def _list(self, parts: list[bytes]) -> list[bytes]:
        try:
            fd = os.open(
                self._full(parts), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            )
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                self._error(parts, e)
            return []
        try:
            with os.scandir(fd) as it:
                return sorted(os.fsencode(d.name) for d in it)
        except OSError as e:
            self._error(parts, e)
            return []
        finally:
            os.close(fd)

    def _is_case(self, st: os.stat_result) -> bool:
        return self.case_ident is not None and (st.st_dev, st.st_ino) == self.case_ident

    def run(self) -> EntryResult:
        try:
            for glob in self.entry["paths"]:
                self._glob(_comps(glob, self.fold))
        except _Full:
            self.res.truncated = True
        return self.res

    def _glob(self, comps: list[bytes]) -> None:
        # explicit stack: (parts so far, index into comps); no recursion limit
        while comps and comps[-1] == b"**":
            comps = comps[:-1]  # a trailing '**' is the tree of what precedes it
        stack: list[tuple[list[bytes], int]] = [([], 0)]
        visited: set[tuple[bytes, int]] = set()
        while stack:
            parts, i = stack.pop()
            key = (b"/".join(parts), i)
            if key in visited:
                continue
            visited.add(key)
            if i == len(comps):
                self._matched(parts)
                continue
            c = comps[i]
            if c == b"**":
                stack.append((parts, i + 1))
                for name in reversed(self._list(parts)):
                    sub = [*parts, name]
                    st = self._lstat(sub)
                    if st is not None and stat.S_ISDIR(st.st_mode) and self._enter(sub, st):
                        stack.append((sub, i))
                continue
            if not _magic(c) and not self.fold:
                names = [c]
            else:
                listed = self._list(parts)
                names = [n for n in listed if fnmatch.fnmatchcase(n.lower() if self.fold else n, c)]
            for name in reversed(names):
                sub = [*parts, name]
                if i + 1 == len(comps):
                    stack.append((sub, i + 1))
                    continue
                st = self._lstat(sub)
                if st is not None and stat.S_ISDIR(st.st_mode) and self._enter(sub, st):
                    stack.append((sub, i + 1))

    def _enter(self, parts: list[bytes], st: os.stat_result) -> bool:
        """May the expansion go into this directory?  Not into the case's own
        folder (it is handed to the collector, which records it as excluded) nor
        into an excluded one (recorded in the entry's event)."""
        if self._is_case(st):
            self._take(self._full(parts))
            return False
        pattern = self._excluded_by(parts, st)
        if pattern is not None:
            self._exclude(parts, pattern)
            return False
        return True

    def _exclude(self, parts: list[bytes], pattern: str) -> None:
        full = self._full(parts)
        if full not in self._noted:
            self._noted.add(full)
            self.res.excluded.append((full, pattern))

    def _take(self, full: bytes) -> None:
        if full in self._seen:
            return
        if len(self.res.paths) >= self.max_files:
            raise _Full
        self._seen.add(full)
        self.res.paths.append(full)

    def _matched(self, parts: list[bytes]) -> None:
        st = self._lstat(parts)
        if st is None:
            return
        pattern = self._excluded_by(parts, st)
        if pattern is not None:
            self._exclude(parts, pattern)
            return
        if stat.S_ISDIR(st.st_mode):
            if self._enter(parts, st):
                self._tree(parts)
            return
        self._file(parts, st)

    def _tree(self, top: list[bytes]) -> None:
        stack = [top]
        while stack:
            parts = stack.pop()
            for name in reversed(self._list(parts)):
                sub = [*parts, name]
                st = self._lstat(sub)
                if st is None:
                    continue
                pattern = self._excluded_by(sub, st)
                if pattern is not None:
                    self._exclude(sub, pattern)
                elif stat.S_ISDIR(st.st_mode):
                    if self._enter(sub, st):
                        stack.append(sub)
                else:
                    self._file(sub, st)

    def _file(self, parts: list[bytes], st: os.stat_result) -> None:
        full = self._full(parts)
        mode = st.st_mode
        if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
            if full not in self._noted:
                self._noted.add(full)
                self.res.devices.append(full)
            return
        if self.since_ns is not None and (
            not stat.S_ISREG(mode) or max(st.st_mtime_ns, st.st_ctime_ns) < self.since_ns
        ):
            return
        if self.entry.get("executable") and not (stat.S_ISREG(mode) and _executable(full, st)):
            return
        if stat.S_ISREG(mode) and st.st_size > self.max_bytes:
            if full not in self._noted:
                self._noted.add(full)
                self.res.over_cap.append((full, st.st_size))
            return
        self._take(full)


class _Full(Exception):
    """An entry reached its max_files."""


def _executable(path: bytes, st: os.stat_result) -> bool:
    if st.st_mode & 0o111:
        return True
    try:  # a dropped binary run through ld.so needs no execute bit
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | _NOATIME)
    except OSError:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return False
    try:
        head = os.read(fd, 4)
    except OSError:
        return False
    finally:
        os.close(fd)
    return head == b"\x7fELF" or head.startswith(b"#!")


_NOATIME = getattr(os, "O_NOATIME", 0)


def expand_entry(
    root: bytes,
    entry: dict[str, Any],
    common_exclude: list[str] | None = None,
    case_dir: bytes | None = None,
    now: float | None = None,
    walk_rules: WalkRules | None = None,
) -> EntryResult:
    """The paths one entry matches under ``root`` (and what it left out);
    ``walk_rules``: the collect command's --exclude and --one-file-system."""
    ident = None
    if case_dir is not None:
        try:
            cst = os.stat(case_dir)
            ident = (cst.st_dev, cst.st_ino)
        except OSError:
            ident = None
    when = time.time() if now is None else now
    return _Expander(root, entry, common_exclude or [], ident, when, walk_rules).run()


# -- the run ----------------------------------------------------------------------


def _pathname(raw: bytes) -> dict[str, str]:
    return {"hex": raw.hex(), "display": raw.decode("utf-8", errors="backslashreplace")}


def _listed(values: list[Any], conv: Callable[[Any], Any]) -> dict[str, Any]:
    return {"count": len(values), "listed": [conv(v) for v in values[:LIST_CAP]]}


def entry_event_data(run: str, entry: dict[str, Any], res: EntryResult) -> dict[str, Any]:
    data: dict[str, Any] = {
        "run": run,
        "entry": entry["name"],
        "reason": entry["reason"],
        "globs": list(entry["paths"]),
        "outcome": "matched" if res.paths else "nothing matched",
        "matched": len(res.paths),
        "max_bytes": int(entry.get("max_bytes", DEFAULT_MAX_BYTES)),
    }
    if res.excluded:
        data["excluded"] = _listed(
            res.excluded, lambda v: {"path": _pathname(v[0]), "pattern": v[1]}
        )
    if res.over_cap:
        data["over_max_bytes"] = _listed(
            res.over_cap, lambda v: {"path": _pathname(v[0]), "size": v[1]}
        )
    if res.devices:
        data["devices_not_read"] = _listed(res.devices, _pathname)
    if res.errors:
        data["unreadable"] = _listed(
            res.errors,
            lambda v: {"path": _pathname(v[0]), "error": volatile._error(v[1])},
        )
    if res.truncated:
        data["truncated_at_max_files"] = True
    return data


def _store_capture(c: Collector, cap: volatile.Capture) -> str | None:
    """Store one capture as an item (a ``collect`` event); its SHA-256."""
    fd = cap.fd
    payload = None
    if fd is None:
        payload = cap.payload()
        if payload is None:
            return None
        fd = os.memfd_create("custody-capture", os.MFD_CLOEXEC)
        view = memoryview(payload)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.lseek(fd, 0, os.SEEK_SET)
    try:
        stored = c.store.ingest(fd, c.algorithms)
    finally:
        os.close(fd)
    from custody.collect import stat_record

    result = stored.result
    c.summary.bytes += result.size
    if stored.deduplicated:
        c.summary.deduplicated += 1
    else:
        c.summary.new_objects += 1
    extra: dict[str, Any] = {
        "size": result.size,
        "digests": result.digests,
        "store": stored.relpath,
        "note": cap.note,
    }
    if cap.source is not None:
        extra["source"] = stat_record(cap.source)
    c._stored[stored.result.digests["sha256"]] = None  # typed after the run (describe)
    c._record(cap.path, "collected", **extra)
    return str(result.digests["sha256"])


def _step_event(c: Collector, order: int, res: volatile.StepResult, first: int) -> None:
    c._flush()
    ids = [str(it["id"]) for it in c.summary.items[first:]]
    data: dict[str, Any] = {
        "run": c.run,
        "step": res.step,
        "order": order,
        "outcome": res.outcome,
        "captures": ids,  # not "items": a bundle of one capture must not disclose the step
        **({"reason": res.reason} if res.reason else {}),
        "details": res.details,
    }
    c.ledger.append(c.signer, [EventDraft(VOLATILE_STEP_EVENT, data)])


def _run_command(c: Collector, step: dict[str, Any], tools: bytes | None) -> volatile.StepResult:
    """A live-response command, through :func:`custody.capture.run_capture` (its
    conditions hold: the run's ``collection.start`` is written, the collector holds
    the writers' lock shared, and every pending item is flushed here first)."""
    from custody.capture import OUTCOME, CommandNotFoundError, run_capture

    timeout = float(step.get("timeout", DEFAULT_COMMAND_TIMEOUT))
    details: dict[str, Any] = {
        "command": list(step["command"]),
        "reason": step["reason"],
        "timeout_ms": int(timeout * 1000),
    }
    if tools is not None:
        details["tools"] = _pathname(tools)
    c._flush()
    try:
        result = run_capture(
            c.ledger,
            c.signer,
            step["command"],
            reason=c.reason,
            run=c.run,
            context=c.context,
            tools=tools,
            timeout=timeout,
            algorithms=c.algorithms,
        )
    except CommandNotFoundError as e:  # not on this host, or not in --tools: nothing ran
        return volatile.StepResult(COMMAND_STEP, "not available", e.message, details)
    except StoreError:
        raise  # the store failed: the run fails, as for any item
    except CustodyError as e:
        return volatile.StepResult(COMMAND_STEP, "failed", e.message, details)
    captured = [ev for ev in result.events if ev.type == COLLECT_EVENT]
    c.summary.counts[OUTCOME] = c.summary.counts.get(OUTCOME, 0) + len(captured)
    c.summary.bytes += sum(int(ev.data["size"]) for ev in captured)
    c.noted(result.events)
    rec = result.capture
    exe = rec["executable"]
    details["capture"] = rec["id"]
    details["executable"] = {
        "path": exe["path"],
        "resolved_in": exe["resolved_in"],
        "sha256": exe["digests"]["sha256"],
    }
    details["exit"] = rec["exit"]
    if rec["exit"]["status"] == "timed-out":
        why = f"killed after {timeout:g} s: what it printed until then is recorded"
        return volatile.StepResult(COMMAND_STEP, "timed out", why, details)
    return volatile.StepResult(COMMAND_STEP, OUTCOME, None, details)


def _run_step(
    c: Collector,
    step: dict[str, Any],
    seen: dict[tuple[int, int], str],
    tools: bytes | None = None,
) -> volatile.StepResult:
    name = step["step"]
    if name == COMMAND_STEP:
        return _run_command(c, step, tools)
    cap = int(step.get("max_bytes", volatile.DEFAULT_CAP))
    if name == "executables":
        caps, res = volatile.executables(cap, seen)
        for capture in caps:
            try:
                _store_capture(c, capture)
            except SourceReadError as e:
                res.details.setdefault("unreadable", []).append(
                    {"path": _pathname(capture.path), "error": volatile._error(e.err)}
                )
        return res
    if name == "processes":
        caps, res, rows = volatile.processes(step.get("exe", "deleted"), cap, seen)
        digests: dict[str, str] = {}
        unread: list[dict[str, Any]] = []
        for capture in caps:
            try:
                sha = _store_capture(c, capture)
            except SourceReadError as e:  # e.g. EIO reading an executable's bytes
                unread.append({"path": _pathname(capture.path), "error": volatile._error(e.err)})
                continue
            if sha is not None and capture.key is not None:
                digests[capture.key] = sha
        if unread:
            res.details["exe_unreadable"] = unread
        _store_capture(c, volatile.process_table_capture(rows, digests))
        return res
    if name == "memory":
        c.store.make_tmp()
        out = str(c.store.tmp / f"memory-{c.run}.lime")
        mcap = step.get("max_bytes")
        caps, res = volatile.memory(
            out, list(step.get("acquirers", ["avml"])), None if mcap is None else int(mcap)
        )
        for capture in caps:
            _store_capture(c, capture)
        if caps:
            Path(out).unlink(missing_ok=True)  # stored and recorded: the temp copy goes
        return res
    fn = {
        "sockets": volatile.sockets,
        "users": volatile.users,
        "modules": volatile.modules,
        "mounts": volatile.mounts,
        "routes": volatile.routes,
    }[name]
    caps, res = fn()
    for capture in caps:
        _store_capture(c, capture)
    return res


def run_volatile(
    c: Collector, profile: Profile, tools: bytes | None = None
) -> list[volatile.StepResult]:
    """The profile's volatile steps, in its order, each recorded as it ends.  A
    step the system does not allow (no /proc, an error reading it) is recorded as
    failed, with the error, and the next step runs; so is a command not found
    (``not available``).  ``tools``: commands run from that folder only."""
    done = []
    seen: dict[tuple[int, int], str] = {}  # executables taken: each once in a run
    for order, step in enumerate(profile.steps, start=1):
        c._flush()
        first = len(c.summary.items)
        try:
            res = _run_step(c, step, seen, tools)
        except (OSError, SourceReadError) as e:
            err = e.err if isinstance(e, SourceReadError) else e
            where = f" ({os.fsdecode(err.filename)})" if err.filename else ""
            res = volatile.StepResult(
                step["step"],
                "failed",
                f"{err.strerror or err}{where}",
                {"error": volatile._error(err)},
            )
        _step_event(c, order, res, first)
        done.append(res)
    return done


class ProfileRun:
    """The collector's pre-walk hook of a profile run: record the profile, run its
    volatile steps (``live``: not when resuming), expand and record its entries;
    the paths to walk are the entries' matches.  Keeps what it recorded, for the
    caller's report (``steps``, ``entries``)."""

    def __init__(
        self, profile: Profile, root: bytes, *, live: bool = True, tools: bytes | None = None
    ) -> None:
        self.profile = profile
        self.root = root
        self.live = live
        self.tools = tools  # live-response commands run from this folder only
        self.steps: list[volatile.StepResult] = []
        self.entries: list[dict[str, Any]] = []

    def __call__(self, c: Collector, _roots: list[bytes]) -> list[bytes]:
        profile, root = self.profile, self.root
        live_here = self.live and root == b"/"
        run_data: dict[str, Any] = {
            "run": c.run,
            "profile": profile.name,
            "source": profile.source,
            "sha256": profile.sha256,
            "document": profile.doc,
            "root": _pathname(root),
            "volatile": "run" if live_here and profile.steps else "not run",
        }
        if self.tools is not None:
            run_data["tools"] = _pathname(self.tools)
        c.ledger.append(c.signer, [EventDraft(PROFILE_RUN_EVENT, run_data)])
        if live_here:
            self.steps = run_volatile(c, profile, self.tools)
        elif self.live:
            why = "--root is not /: the live system's volatile state is not that of the root"
            for order, step in enumerate(profile.steps, start=1):
                res = volatile.StepResult(step["step"], "skipped", why)
                _step_event(c, order, res, len(c.summary.items))
                self.steps.append(res)
        c._flush()
        walk: list[bytes] = []
        taken: set[bytes] = set()
        case = os.fsencode(os.path.abspath(c.ledger.case_dir))
        in_case = c.rules.root_excluded(root, os.stat(root)) is not None
        if in_case:  # nothing of the case is evidence of itself: the root is recorded excluded
            walk.append(root)
        drafts = []
        for entry in profile.entries:
            common = list(profile.doc.get("exclude") or [])
            if in_case:
                got = EntryResult(entry["name"])
            else:
                got = expand_entry(root, entry, common, case, walk_rules=c.rules)
            data = entry_event_data(c.run, entry, got)
            if in_case:
                data["note"] = "--root lies in the case's own folder: nothing under it is taken"
            self.entries.append(data)
            drafts.append(EventDraft(PROFILE_ENTRY_EVENT, data))
            for p in got.paths:
                if p not in taken:
                    taken.add(p)
                    walk.append(p)
        if drafts:
            c.ledger.append(c.signer, drafts)
        return walk


def check_root(root: str) -> bytes:
    raw = os.fsencode(os.path.abspath(root))
    try:
        st = os.stat(raw)
    except OSError as e:
        raise UsageError(f"--root {root}: {e.strerror}") from e
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"--root {root}: not a directory")
    return os.path.normpath(raw) if raw != b"/" else raw


def check_tools(tools: str | None) -> bytes | None:
    """collect's --tools DIR: an existing folder (the rule custody capture applies)."""
    from custody.capture import _tools_dir

    return _tools_dir(tools)


def profile_of_run(ledger: Ledger, run: Run) -> tuple[Profile, bytes] | None:
    """The profile (and root) an interrupted run was started with, from its signed
    ``profile.run`` event (or that of a run it resumed)."""
    from custody.collect import _resume_chain

    chain = _resume_chain(ledger, run)
    for run_id in chain:
        row = ledger.conn.execute(
            "SELECT body FROM events WHERE type = ? AND json_extract(body, '$.data.run') = ?"
            " ORDER BY seq LIMIT 1",
            (PROFILE_RUN_EVENT, run_id),
        ).fetchone()
        if row is None:
            continue
        d = json.loads(row[0])["data"]
        raw = json.dumps(d["document"], sort_keys=True).encode()
        prof = parse_profile(raw, str(d["profile"]), str(d["source"]))
        prof = dataclasses.replace(prof, recorded_sha256=str(d["sha256"]))
        return prof, bytes.fromhex(str(d["root"]["hex"]))
    return None


def iter_summary(profile: Profile) -> Iterator[str]:
    """``profile show``'s lines for people."""
    d = profile.doc
    yield f"{profile.name}: {d['description']}"
    yield f"  source: {profile.source}  sha256: {profile.sha256}"
    if d.get("platform"):
        yield f"  platform: {d['platform']}"
    if profile.steps:
        yield "  volatile steps (in this order, before any file):"
        for i, s in enumerate(profile.steps, start=1):
            if s["step"] == COMMAND_STEP:
                secs = s.get("timeout", DEFAULT_COMMAND_TIMEOUT)
                yield f"    {i}. command: {shlex.join(s['command'])} (timeout {secs:g} s)"
                yield f"       {s['reason']}"
                continue
            extra = "".join(f" {k}={v}" for k, v in sorted(s.items()) if k != "step")
            yield f"    {i}. {s['step']}{extra}"
    for g in d.get("exclude") or []:
        yield f"  exclude: {g}"
    yield "  entries:"
    for e in profile.entries:
        yield f"    {e['name']}: {e['reason']}"
        for g in e["paths"]:
            yield f"      {g}"
        caps = [f"max_bytes={e.get('max_bytes', DEFAULT_MAX_BYTES)}"]
        for k in ("modified_within_days", "executable", "case_insensitive", "max_files"):
            if k in e:
                caps.append(f"{k}={e[k]}")
        for g in e.get("exclude", []):
            caps.append(f"exclude={g}")
        yield "      (" + ", ".join(caps) + ")"
