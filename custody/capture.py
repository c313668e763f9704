"""Live-response capture: run one command and record what it printed as evidence.

``custody capture -- CMD ARGS...`` (and profiles' live-response steps, through
:func:`run_capture`) record:

* the argv, and the executable that ran: the path it was resolved to (on ``PATH``,
  or only inside ``--tools DIR``), its stat and its SHA-256.  The file is opened
  and hashed before it runs, and a native executable is run from that very open
  descriptor (``/proc/self/fd/N``), so the digest is that of the bytes the kernel
  executed: a trojaned ``ps`` shows as an unexpected digest.  A ``#!`` script is
  run by its path (its interpreter must be able to open it) and its stat is
  compared after the run; the interpreter line is recorded;
* the environment it ran with.  Secrets are scrubbed first, from the record and
  from the command's own environment alike (:func:`scrub_environment`): custody's
  own variables (``CUSTODY_*``: a passphrase never reaches the command), cloud
  credential variables (``AWS_*`` ...), anything named like a token, key, secret,
  password or credential, values that are URLs with a password in them, and the
  loader and shell start-up variables (``LD_*``, ``BASH_ENV``, ``ENV``) a
  compromised account could use to change what the command does.  The record
  lists the names removed, never their values;
* start and end times, and how it ended (exit code, signal, or timed out: then its
  whole process group was killed);
* stdout and stderr, each streamed into the store and hashed while written
  (constant memory whatever the output size), each one item: the capture is
  recorded as two ``collect`` events of outcome ``captured`` appended in one
  transaction, ``stream`` ``stdout`` and ``stderr``, each carrying the whole
  ``capture`` record and the ids of both items.

A command that cannot be found (or is not executable) raises
:class:`CommandNotFoundError` (exit 2) and nothing is recorded: nothing ran.  A
profile that wants the absence on record records it as its step's outcome.
"""

from __future__ import annotations

import fcntl
import os
import platform
import re
import select
import shlex
import signal
import socket
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from custody import __version__
from custody.canonical import now_rfc3339
from custody.collect import (
    RUN_END_EVENT,
    RUN_START_EVENT,
    CollectionInterruptedError,
    SelftestFailedError,
    _RunLock,
    check_reason,
    clean_orphans,
    display_path,
    stat_record,
)
from custody.errors import CustodyError, OperationalError, StoreError, UsageError
from custody.hashing import DEFAULT_ALGORITHMS, hash_fd
from custody.keys import Signer
from custody.ledger import COLLECT_EVENT, ITEM_PREFIX, Event, EventDraft, Ledger
from custody.store import Store, Stored, WritersLock

OUTCOME = "captured"
#: seconds the streams may stay open after the command ended (a background child
#: still writing) before its process group is killed, and again before custody
#: stops reading (a process that left the group holds them)
GRACE = 2.0
CHUNK = 1 << 20
F_SETPIPE_SZ = 1031  # Linux fcntl
MAX_TIMEOUT = 7 * 86400.0  # a week: longer is no live response (and must fit the record)


class CommandNotFoundError(UsageError):
    """The command to capture was not found, or is not an executable file (exit 2;
    nothing is recorded: nothing ran)."""


# -- the environment ----------------------------------------------------------------

#: variable-name prefixes removed whatever follows: custody's own, cloud credentials
SECRET_PREFIXES = (
    "CUSTODY_",
    "AWS_",
    "AZURE_",
    "ARM_",
    "GOOGLE_",
    "GCLOUD_",
    "CLOUDSDK_",
    "VAULT_",
    "DIGITALOCEAN_",
)
#: words that make a variable's name a secret's (case-insensitive, anywhere in it)
SECRET_WORDS = re.compile(
    r"TOKEN|KEY|SECRET|PASSW|PASSPHRASE|PWD_|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE|SIGNATURE",
    re.IGNORECASE,
)
#: a value that is a URL carrying a password (scheme://user:password@host)
SECRET_VALUE = re.compile(rb"^[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:[^/@\s]+@")
#: variables that change what a program does before its own code runs
LOADER = re.compile(r"^(LD_.*|BASH_ENV|ENV|BASH_FUNC_.*)$")


@dataclass
class ScrubbedEnv:
    """The environment a captured command runs with, and what was removed."""

    env: dict[bytes, bytes]
    removed: list[dict[str, str]] = field(default_factory=list)  # {"name", "why"}

    def record(self) -> dict[str, Any]:
        shown = {display_path(k): display_path(v) for k, v in sorted(self.env.items())}
        out: dict[str, Any] = {"variables": shown, "removed": self.removed}
        if self.removed:
            out["note"] = (
                f"{len(self.removed)} variable(s) removed before the command ran, values"
                " not recorded: " + ", ".join(r["name"] for r in self.removed)
            )
        return out


def _why_removed(name: str, value: bytes) -> str | None:
    upper = name.upper()
    if upper.startswith("CUSTODY_"):
        return "custody"
    if upper.startswith(SECRET_PREFIXES):
        return "credential"
    if SECRET_WORDS.search(upper):
        return "secret-name"
    if LOADER.match(upper):
        return "loader"
    if SECRET_VALUE.match(value):
        return "secret-value"
    return None


def scrub_environment(environ: Mapping[bytes, bytes]) -> ScrubbedEnv:
    """``environ`` without its secrets (see the module docstring); the names removed
    and why (``custody``, ``credential``, ``secret-name``, ``secret-value``,
    ``loader``), never the values."""
    kept: dict[bytes, bytes] = {}
    removed: list[dict[str, str]] = []
    for k, v in sorted(environ.items()):
        name = display_path(k)
        why = _why_removed(name, v)
        if why is None:
            kept[k] = v
        else:
            removed.append({"name": name, "why": why})
    return ScrubbedEnv(kept, removed)


# -- finding the executable ---------------------------------------------------------


@dataclass
class Executable:
    """The file a command resolved to, open and hashed before it runs."""

    path: bytes  # absolute, as found (not symlink-resolved)
    real: bytes  # symlinks resolved
    fd: int
    st: os.stat_result
    digests: dict[str, str]
    size: int
    shebang: bytes | None
    resolved_in: str  # "tools", "PATH" or "given"
    search: list[bytes]

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "path": {"hex": self.path.hex(), "display": display_path(self.path)},
            "realpath": {"hex": self.real.hex(), "display": display_path(self.real)},
            "resolved_in": self.resolved_in,
            "search": [display_path(d) for d in self.search],
            "size": self.size,
            "digests": self.digests,
            "source": stat_record(self.st),
        }
        if self.shebang is not None:
            rec["interpreter"] = display_path(self.shebang)
        return rec


def _resolve(
    name: bytes, tools: bytes | None, path_var: bytes | None
) -> tuple[bytes, str, list[bytes]]:
    """The path of the command ``name``: inside ``tools`` alone when given, else on
    ``path_var`` (a name holding '/' is taken as a path)."""
    if not name:
        raise CommandNotFoundError("no command given: custody capture [OPTIONS] -- CMD ARGS...")
    shown = display_path(name)
    if tools is not None:
        if b"/" in name or name in (b".", b".."):
            raise CommandNotFoundError(
                f"with --tools, name the command ({shown!r} holds '/'): it is looked up in"
                " the tools folder only"
            )
        cand = os.path.join(tools, name)
        real_tools = os.path.realpath(tools)
        real = os.path.realpath(cand)
        if not os.path.lexists(cand):
            raise CommandNotFoundError(
                f"command not found in the tools folder {display_path(tools)}: {shown}"
            )
        if not real.startswith(real_tools.rstrip(b"/") + b"/"):
            raise CommandNotFoundError(
                f"{shown} in the tools folder resolves outside it ({display_path(real)}):"
                " refused, only binaries inside --tools run"
            )
        return cand, "tools", [tools]
    if b"/" in name:
        return os.path.abspath(name), "given", []
    dirs = [d or b"." for d in (path_var or b"").split(b":")] if path_var else []
    for d in dirs:
        cand = os.path.join(d, name)
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and os.access(cand, os.X_OK):
            return os.path.abspath(cand), "PATH", dirs
    raise CommandNotFoundError(f"command not found on PATH: {shown}")


def open_executable(
    name: bytes, algorithms: Sequence[str], *, tools: bytes | None, path_var: bytes | None
) -> Executable:
    """Resolve ``name``, open it read-only and hash it (the caller closes ``fd``)."""
    path, where, search = _resolve(name, tools, path_var)
    shown = display_path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as e:
        raise CommandNotFoundError(f"command not found: {shown}") from e
    except OSError as e:
        raise CommandNotFoundError(f"cannot open the command {shown}: {e.strerror}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CommandNotFoundError(f"not an executable file: {shown}")
        if not os.access(path, os.X_OK):
            raise CommandNotFoundError(f"not executable (no x permission): {shown}")
        head = os.pread(fd, 256, 0)
        shebang = head[2:].split(b"\n", 1)[0].strip() if head.startswith(b"#!") else None
        result = hash_fd(fd, list(algorithms), size_hint=st.st_size)
        return Executable(
            path=path,
            real=os.path.realpath(path),
            fd=fd,
            st=st,
            digests=result.digests,
            size=result.size,
            shebang=shebang,
            resolved_in=where,
            search=search,
        )
    except BaseException:
        os.close(fd)
        raise


# -- streaming the output into the store --------------------------------------------


class _Stream:
    """One output stream: a pump thread copies the command's pipe into an inner pipe
    (stoppable: a process that escaped the command's group cannot keep custody
    waiting), and an ingest thread copies the inner pipe into the store, hashing
    it as it is written."""

    def __init__(self, name: str, src: int, store: Store, algorithms: Sequence[str]) -> None:
        self.name = name
        self.src = src
        self.stop = threading.Event()
        self.stored: Stored | None = None
        self.error: BaseException | None = None
        self.cut = False  # stopped by custody while still open
        self._r, self._w = os.pipe()
        for fd in (src, self._w):
            try:  # fewer, larger reads and writes
                fcntl.fcntl(fd, F_SETPIPE_SZ, CHUNK)
            except OSError:
                pass
        self._pump = threading.Thread(target=self._pump_run, daemon=True)
        self._ingest = threading.Thread(
            target=self._ingest_run, args=(store, algorithms), daemon=True
        )
        self._pump.start()
        self._ingest.start()

    def _pump_run(self) -> None:
        poller = select.poll()
        poller.register(self.src, select.POLLIN | select.POLLHUP | select.POLLERR)
        try:
            while True:
                if self.stop.is_set():
                    self.cut = True
                    return
                if not poller.poll(100):
                    continue
                chunk = os.read(self.src, CHUNK)
                if not chunk:
                    return
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self._w, view) :]
        except OSError:
            return  # the store side failed (broken pipe): its error is reported
        finally:
            os.close(self._w)
            os.close(self.src)

    def _ingest_run(self, store: Store, algorithms: Sequence[str]) -> None:
        try:
            self.stored = store.ingest(self._r, algorithms)
        except BaseException as e:
            self.error = e
        finally:
            os.close(self._r)

    def done(self) -> bool:
        return not self._pump.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._pump.join(timeout)

    def finish(self) -> None:
        self.stop.set()
        self._pump.join()
        self._ingest.join()


def _wait_streams(streams: Sequence[_Stream], seconds: float) -> bool:
    end = time.monotonic() + seconds
    for s in streams:
        s.join(max(0.0, end - time.monotonic()))
    return all(s.done() for s in streams)


class _SigintDeferred:
    """From its making until :meth:`restore`, a Ctrl-C (SIGINT) is held back
    instead of raised: raised inside ``subprocess.Popen`` after the fork, it would
    leave the command running with no one to kill it.  :meth:`restore` puts the
    previous handler back and then raises the ``KeyboardInterrupt`` held back, if
    any, where the caller kills the command.  Only the main thread can set a
    handler; elsewhere nothing changes (KeyboardInterrupt is never raised there)."""

    def __init__(self) -> None:
        self.noted = False
        self._previous: Any = None
        self._set = threading.current_thread() is threading.main_thread()
        if self._set:
            self._previous = signal.signal(signal.SIGINT, self._note)

    def _note(self, signum: int, frame: object) -> None:
        self.noted = True

    def restore(self) -> None:
        if self._set:
            self._set = False
            signal.signal(signal.SIGINT, self._previous)
            if self.noted:
                raise KeyboardInterrupt


def _kill_group(pgid: int) -> bool:
    try:
        os.killpg(pgid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False


# -- the capture --------------------------------------------------------------------


@dataclass
class CaptureResult:
    """What a capture recorded: its two items (stdout, stderr) and its record."""

    capture: dict[str, Any]
    events: list[Event]
    run: str

    @property
    def items(self) -> dict[str, str]:
        return dict(self.capture["items"])

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"run": self.run, "items": []}
        for ev in self.events:
            if ev.type != COLLECT_EVENT:
                continue
            d = ev.data
            out["items"].append(
                {
                    "id": ev.item,
                    "stream": d["stream"],
                    "size": d["size"],
                    "sha256": d["digests"]["sha256"],
                    "event": ev.hash,
                }
            )
        out["capture"] = self.capture
        return out


def _argv_record(argv: Sequence[bytes]) -> list[dict[str, str]]:
    return [{"hex": a.hex(), "display": display_path(a)} for a in argv]


def _exit_record(code: int | None, timed_out: bool) -> dict[str, Any]:
    if timed_out:
        return {"status": "timed-out", "code": code}
    assert code is not None
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return {"status": "signaled", "code": code, "signal": name}
    return {"status": "exited", "code": code}


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not 0 < timeout <= MAX_TIMEOUT:
        raise UsageError(
            f"--timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds, got {timeout}"
        )


def _tools_dir(tools: str | bytes | None) -> bytes | None:
    if tools is None:
        return None
    d = os.path.abspath(os.fsencode(tools))
    if not os.path.isdir(d):
        raise UsageError(f"--tools is not a directory: {display_path(d)}")
    return d


def _probe(
    args: list[bytes],
    env_in: Mapping[bytes, bytes],
    tools: bytes | None,
    algorithms: Sequence[str] = ("sha256",),
) -> Executable:
    if not args:
        raise CommandNotFoundError("no command given: custody capture [OPTIONS] -- CMD ARGS...")
    path_var = env_in.get(b"PATH", os.defpath.encode())
    return open_executable(args[0], algorithms, tools=tools, path_var=path_var)


def run_capture(
    ledger: Ledger,
    signer: Signer,
    argv: Sequence[str | bytes],
    *,
    reason: str,
    run: str,
    context: Mapping[str, Any],
    tools: str | bytes | None = None,
    timeout: float | None = None,
    algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
    environ: Mapping[bytes, bytes] | None = None,
) -> CaptureResult:
    """Run ``argv`` and record it in ``run`` (an open collection run: the caller
    wrote its ``collection.start``, holds the store's :class:`WritersLock` shared
    and flushed every item it recorded before).  ``context`` is the
    host/os/tool fields every item carries.  ``environ`` defaults to
    ``os.environb``; ``timeout`` None waits for ever.  Raises
    :class:`CommandNotFoundError` (nothing recorded) before anything runs."""
    args = [os.fsencode(a) for a in argv]
    _check_timeout(timeout)
    env_in = dict(os.environb if environ is None else environ)
    tools_b = _tools_dir(tools)
    exe = _probe(args, env_in, tools_b, algorithms)
    try:
        return _run(
            ledger, signer, args, exe, env_in, tools_b, reason, run, context, timeout, algorithms
        )
    finally:
        os.close(exe.fd)


def _run(
    ledger: Ledger,
    signer: Signer,
    args: list[bytes],
    exe: Executable,
    env_in: dict[bytes, bytes],
    tools: bytes | None,
    reason: str,
    run: str,
    context: Mapping[str, Any],
    timeout: float | None,
    algorithms: Sequence[str],
) -> CaptureResult:
    scrubbed = scrub_environment(env_in)
    if tools is not None:  # what the command runs in turn comes from the tools too
        scrubbed.env[b"PATH"] = os.path.realpath(tools)
    env = dict(scrubbed.env)  # exactly what is recorded
    by_fd = exe.shebang is None and os.path.isdir("/proc/self/fd")
    program = f"/proc/self/fd/{exe.fd}".encode() if by_fd else exe.path
    store = Store(ledger.store_dir)
    cwd = os.getcwdb()
    started = now_rfc3339()
    t0 = time.monotonic()
    streams: list[_Stream] = []
    timed_out = False
    group_killed = False
    proc: subprocess.Popen[bytes] | None = None
    sigint = _SigintDeferred()  # a Ctrl-C while it starts must kill it too
    try:
        try:
            proc = subprocess.Popen(  # the command the user asked to capture
                args,
                executable=program,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group: a timeout kills it all
                pass_fds=(exe.fd,) if by_fd else (),
                close_fds=True,
            )
        except OSError as e:
            msg = f"cannot run {display_path(exe.path)}: {e.strerror or e}"
            raise CommandNotFoundError(msg) from e
        sigint.restore()  # from here a Ctrl-C raises, and the handler below kills it
        assert proc.stdout is not None and proc.stderr is not None
        for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            fd = os.dup(pipe.fileno())
            pipe.close()
            streams.append(_Stream(name, fd, store, algorithms))
        try:
            code: int | None = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            group_killed = _kill_group(proc.pid)
            code = proc.wait()
        ended = now_rfc3339()
        elapsed = time.monotonic() - t0
        if not _wait_streams(streams, GRACE):  # a child of the command still writes
            group_killed = _kill_group(proc.pid) or group_killed
            _wait_streams(streams, GRACE)
    except BaseException:  # Ctrl-C (wherever it lands), an error: the command dies too
        if proc is not None:
            _kill_group(proc.pid)
            proc.wait()
        raise
    finally:
        sigint.restore()
        for s in streams:
            s.finish()
    for s in streams:
        if s.error is not None:
            if isinstance(s.error, StoreError):
                raise s.error
            raise OperationalError(f"cannot store the command's {s.name}: {s.error}") from s.error
    still = os.lstat(exe.path) if os.path.lexists(exe.path) else None
    record: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "argv": _argv_record(args),
        "command": shlex.join(display_path(a) for a in args),
        "executable": exe.record(),
        "ran": "open descriptor" if by_fd else "path",
        "cwd": {"hex": cwd.hex(), "display": display_path(cwd)},
        "environment": scrubbed.record(),
        "started": started,
        "ended": ended,
        "duration_ms": int(elapsed * 1000),
        "timeout_ms": None if timeout is None else int(timeout * 1000),
        "exit": _exit_record(code, timed_out),
        "pid": proc.pid,
        "stdin": "/dev/null",
    }
    if tools is not None:
        record["tools"] = {
            "hex": tools.hex(),
            "display": display_path(tools),
            "note": "resolved inside this folder only; the command's PATH was set to it",
        }
    if group_killed:
        record["process_group_killed"] = True
    cut = [s.name for s in streams if s.cut]
    if cut:
        record["streams_cut"] = cut
        record["note"] = (
            "a process outside the command's group held "
            + " and ".join(cut)
            + " open after the command ended: custody stopped reading"
        )
    if exe.shebang is not None and (
        still is None
        or (still.st_ino, still.st_dev, still.st_size, still.st_mtime_ns)
        != (exe.st.st_ino, exe.st.st_dev, exe.st.st_size, exe.st.st_mtime_ns)
    ):
        record["executable"]["changed_during_run"] = True
    store.sync()

    def drafts() -> list[EventDraft]:
        n = ledger.next_item_number()  # inside the write lock: the items' own ids
        record["items"] = {"stdout": f"{ITEM_PREFIX}{n}", "stderr": f"{ITEM_PREFIX}{n + 1}"}
        out = []
        for s in streams:
            assert s.stored is not None
            path = exe.path + f" [{s.name}]".encode()
            out.append(
                EventDraft(
                    type=COLLECT_EVENT,
                    data={
                        "run": run,
                        "outcome": OUTCOME,
                        "path": {"hex": path.hex(), "display": display_path(path)},
                        "reason": reason,
                        **context,
                        "stream": s.name,
                        "size": s.stored.result.size,
                        "digests": s.stored.result.digests,
                        "store": s.stored.relpath,
                        "capture": record,
                    },
                    new_item=True,
                )
            )
        return out

    events = ledger.append(signer, drafts)
    for ev, s in zip([e for e in events if e.type == COLLECT_EVENT], streams, strict=True):
        if ev.item != record["items"][s.name]:  # pragma: no cover - the ledger's allocation
            raise OperationalError(f"capture recorded as {ev.item}, expected {record['items']}")
    return CaptureResult(capture=record, events=events, run=run)


def _context() -> dict[str, Any]:
    """The host/os/tool fields every item of a run carries (as the collector's)."""
    return {
        "host": socket.gethostname(),
        "os": platform.platform(),
        "tool": f"custody {__version__}",
    }


def _selftest(ledger: Ledger, signer: Signer) -> None:
    """The case's first collection runs and records the self-test (as collect does)."""
    from custody.selftest import case_has_selftest, record_selftest, run_selftest

    if case_has_selftest(ledger):
        return
    result = run_selftest()
    ev = record_selftest(ledger, signer, result, once=True)
    if not result.ok and ev is not None:
        names = ", ".join(c.name for c in result.failed)
        raise SelftestFailedError(
            f"self-test failed ({names}), recorded as event {ev.seq}: this machine does not"
            " compute custody's algorithms correctly; nothing was captured"
        )


def capture(
    ledger: Ledger,
    signer: Signer,
    argv: Sequence[str | bytes],
    *,
    reason: str,
    tools: str | bytes | None = None,
    timeout: float | None = None,
    algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
    selftest: bool = True,
    environ: Mapping[bytes, bytes] | None = None,
) -> CaptureResult:
    """A capture on its own: in a collection run of its own (``collection.start``
    with ``capture``, the two items, ``collection.end``), after the case's first
    self-test like any collection.  Bad input (no such command, a blank reason, a
    bad ``--tools`` or ``timeout``) is refused before anything is recorded."""
    from custody.buildcollector import collector_fields

    check_reason(reason)
    args = [os.fsencode(a) for a in argv]
    env_in = dict(os.environb if environ is None else environ)
    tools_b = _tools_dir(tools)
    _check_timeout(timeout)
    probe = _probe(args, env_in, tools_b)  # refused before anything is recorded
    os.close(probe.fd)
    ledger.require_writable()
    if selftest:
        _selftest(ledger, signer)
    run = str(uuid.uuid4())
    context = _context()
    store = Store(ledger.store_dir)
    writers = WritersLock(ledger.store_dir)
    try:
        if writers.acquire():  # no other writer alive: clean what dead ones left
            try:
                clean_orphans(ledger, signer, store)
            finally:
                writers.share()
        with _RunLock(store, run):
            cwd = os.getcwdb()
            what: dict[str, Any] = {"argv": _argv_record(args)}
            if tools_b is not None:
                what["tools"] = {"hex": tools_b.hex(), "display": display_path(tools_b)}
            start: dict[str, Any] = {
                "run": run,
                "reason": reason,
                "paths": [],
                "algorithms": list(algorithms),
                "cwd": {"hex": cwd.hex(), "display": display_path(cwd)},
                **context,
                "capture": what,
                **collector_fields(),
            }
            ledger.append(signer, [EventDraft(type=RUN_START_EVENT, data=start)])
            try:
                result = run_capture(
                    ledger,
                    signer,
                    args,
                    reason=reason,
                    run=run,
                    context=context,
                    tools=tools_b,
                    timeout=timeout,
                    algorithms=algorithms,
                    environ=env_in,
                )
            except KeyboardInterrupt:
                raise CollectionInterruptedError(
                    f"interrupted: capture {run} stopped and its command killed, its output"
                    " not recorded; run 'custody collect --resume' to close the run"
                ) from None
            except CustodyError as e:  # vanished or not executable since, store failed
                _end(ledger, signer, run, "failed", {}, 0, e.message)
                raise
            size = sum(int(ev.data["size"]) for ev in result.events if ev.type == COLLECT_EVENT)
            _end(ledger, signer, run, "complete", {OUTCOME: 2}, size, None)
            return result
    finally:
        writers.release()


def _end(
    ledger: Ledger,
    signer: Signer,
    run: str,
    status: str,
    counts: dict[str, int],
    size: int,
    error: str | None,
) -> None:
    end: dict[str, Any] = {"run": run, "status": status, "counts": counts, "bytes": size}
    if error is not None:
        end["error"] = error
    ledger.append(signer, [EventDraft(type=RUN_END_EVENT, data=end)])
