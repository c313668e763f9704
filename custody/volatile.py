"""Live response: the volatile state of the running system, read before any file
(RFC 3227, order of volatility).

Each step reads what it needs from ``/proc`` (and ``/run/utmp``), never blocking
(``O_NONBLOCK``) and never reading past a size cap, and returns *captures*: raw
bytes exactly as read, or a JSON document custody built from them.  The caller
(:mod:`custody.profiles`) stores each capture as an item with a signed ``collect``
event, and records the step itself as a signed ``volatile.step`` event.

Steps, in the only order a profile may list them:

``processes``  the process table (pid, ppid, uids, gids, start time, cmdline, cwd,
               exe path, socket inodes) and the bytes of each ``/proc/PID/exe``,
               read through the kernel's link, so a binary deleted from disk is
               still collected; a pid that is gone or refused is recorded so.
``sockets``    ``/proc/net/{tcp,tcp6,udp,udp6,raw,raw6,unix,packet,...}``, raw.
``users``      ``/run/utmp`` raw, and its USER_PROCESS records as JSON.
``modules``    ``/proc/modules``, raw.
``mounts``     ``/proc/self/mountinfo``, raw.
``routes``     ``/proc/net/route``, ``/proc/net/ipv6_route``, ``/proc/net/arp``, raw.
``memory``     an external acquirer (AVML) when one is on PATH; else skipped,
               with the reason.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import shutil
import stat
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from custody.canonical import rfc3339_ns

STEP_ORDER: tuple[str, ...] = (
    "processes",
    "sockets",
    "users",
    "modules",
    "mounts",
    "routes",
    "executables",
    "memory",
)
DEFAULT_CAP = 256 * 1024 * 1024
PROC_FILE_CAP = 64 * 1024 * 1024  # no /proc text file legitimately holds more
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC


def _error(e: OSError) -> dict[str, Any]:
    code = e.errno or 0
    return {
        "errno": code,
        "name": errno.errorcode.get(code, "UNKNOWN"),
        "message": e.strerror or str(e),
    }


def _pathname(raw: bytes) -> dict[str, str]:
    return {"hex": raw.hex(), "display": raw.decode("utf-8", errors="backslashreplace")}


def read_capped(path: bytes | str, cap: int = PROC_FILE_CAP) -> tuple[bytes, bool]:
    """The bytes of a (``/proc``) file, read without blocking, at most ``cap`` of
    them; and whether the cap cut it short."""
    data, cut, _ = read_with_stat(path, cap)
    return data, cut


def read_with_stat(
    path: bytes | str, cap: int = PROC_FILE_CAP
) -> tuple[bytes, bool, os.stat_result]:
    """:func:`read_capped`, and the file's fstat taken as it was opened."""
    fd = os.open(path, _READ_FLAGS)
    try:
        st = os.fstat(fd)
        parts: list[bytes] = []
        got = 0
        while got <= cap:
            try:
                chunk = os.read(fd, min(1 << 20, cap + 1 - got))
            except BlockingIOError:
                break  # nothing more without waiting: never wait
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        data = b"".join(parts)
        return data[:cap], len(data) > cap, st
    finally:
        os.close(fd)


@dataclass
class Capture:
    """One thing a step read.  ``data`` (bytes, or a JSON document) or ``fd`` (an
    open descriptor, stored from its start; the capture owns it)."""

    path: bytes
    note: str
    data: bytes | None = None
    doc: Any = None
    fd: int | None = None
    source: os.stat_result | None = None
    key: str | None = None  # lets a step find its captures' digests afterwards

    def payload(self) -> bytes | None:
        if self.doc is not None:
            text = json.dumps(self.doc, ensure_ascii=False, sort_keys=True, indent=1)
            return (text + "\n").encode("utf-8")
        return self.data


@dataclass
class StepResult:
    step: str
    outcome: str = "recorded"  # recorded | partial | skipped | failed
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


# -- processes -------------------------------------------------------------------


def _boot_time() -> int | None:
    try:
        data, _ = read_capped("/proc/stat")
    except OSError:
        return None
    for line in data.splitlines():
        if line.startswith(b"btime "):
            return int(line.split()[1])
    return None


def _status_fields(text: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in text.splitlines():
        k, _, v = line.partition(b":")
        v = v.strip()
        if k == b"Name":
            out["name"] = v.decode("utf-8", errors="backslashreplace")
        elif k == b"State":
            out["state"] = v.decode("ascii", errors="replace")
        elif k == b"PPid":
            out["ppid"] = int(v)
        elif k == b"Uid":
            out["uids"] = [int(x) for x in v.split()]
        elif k == b"Gid":
            out["gids"] = [int(x) for x in v.split()]
    return out


def _pids() -> list[int]:
    return sorted(int(n) for n in os.listdir("/proc") if n.isdigit())


def read_process(pid: int, boot: int | None, hz: int) -> dict[str, Any]:
    """One row of the process table; every field that could not be read says why."""
    base = f"/proc/{pid}"
    row: dict[str, Any] = {"pid": pid}
    errors: dict[str, Any] = {}
    try:
        status, _ = read_capped(f"{base}/status", 1 << 20)
    except OSError as e:
        row["gone" if e.errno in (errno.ENOENT, errno.ESRCH) else "unreadable"] = True
        row["error"] = _error(e)
        return row
    row.update(_status_fields(status))
    try:
        st_text, _ = read_capped(f"{base}/stat", 1 << 16)
        fields = st_text[st_text.rfind(b")") + 2 :].split()
        ticks = int(fields[19])  # field 22 (starttime), counted after pid and comm
        row["start_ticks"] = ticks
        if boot is not None:
            row["start_time"] = rfc3339_ns(boot * 10**9 + ticks * 10**9 // hz)
    except (OSError, IndexError, ValueError) as e:
        errors["stat"] = _error(e) if isinstance(e, OSError) else {"message": str(e)}
    try:
        cmd, cut = read_capped(f"{base}/cmdline", 1 << 20)
        row["cmdline"] = (
            [a.decode("utf-8", errors="backslashreplace") for a in cmd.split(b"\0")[:-1]]
            if cmd
            else []
        )
        row["cmdline_hex"] = cmd.hex()
        if cut:
            row["cmdline_truncated"] = True
    except OSError as e:
        errors["cmdline"] = _error(e)
    for name in ("cwd", "exe"):
        try:
            row[name] = _pathname(os.readlink(f"{base}/{name}".encode()))
        except OSError as e:
            errors[name] = _error(e)
    if "exe" in row:
        row["exe_deleted"] = row["exe"]["display"].endswith(" (deleted)")
    try:
        socks = []
        for fd in os.listdir(f"{base}/fd"):
            try:
                target = os.readlink(f"{base}/fd/{fd}")
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:["):
                socks.append(int(target[8:-1]))
        row["socket_inodes"] = sorted(set(socks))
    except OSError as e:
        errors["fd"] = _error(e)
    if errors:
        row["errors"] = errors
    return row


PID_TIMEOUT = 2.0  # seconds one pid's /proc files may take (a D-state process can block them)
READERS = 4


def read_processes(pids: list[int], boot: int | None, hz: int) -> list[dict[str, Any]]:
    """:func:`read_process` of each pid, by a few daemon threads, so that a pid
    whose /proc files block (reading ``cmdline`` waits on the target's memory
    lock) costs at most :data:`PID_TIMEOUT` and never hangs the run: it is
    recorded with ``"timeout": true`` and the reader left behind."""
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for pid in pids:
        todo.put(pid)
    rows: dict[int, dict[str, Any]] = {}
    started: dict[int, float] = {}

    def reader() -> None:
        while True:
            try:
                pid = todo.get_nowait()
            except queue.Empty:
                return
            started[pid] = time.monotonic()
            rows[pid] = read_process(pid, boot, hz)

    threads = [
        threading.Thread(target=reader, daemon=True, name="custody-proc")
        for _ in range(min(READERS, max(1, len(pids))))
    ]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        now = time.monotonic()
        stuck = [p for p, t0 in list(started.items()) if p not in rows and now - t0 > PID_TIMEOUT]
        if len(stuck) >= sum(t.is_alive() for t in threads):
            break  # every live reader is blocked: what is left is recorded as not read
        for t in threads:
            t.join(0.05)
    out = []
    for pid in pids:
        row = rows.get(pid)
        if row is None:
            why = "timeout" if pid in started else "not_read"
            row = {"pid": pid, why: True}
        out.append(row)
    return out


def processes(
    exe: str = "deleted", cap: int = DEFAULT_CAP, seen: dict[tuple[int, int], str] | None = None
) -> tuple[list[Capture], StepResult, list[dict[str, Any]]]:
    """The process table, and executables' bytes (each distinct inode once):
    ``exe='deleted'`` (default) those deleted from disk, whose only copy is the
    running image (the others are the ``executables`` step's, after the rest of
    the live state); ``'all'`` every one; ``'none'`` none.  ``seen`` collects the
    (device, inode) of each executable taken.  The table document is built by the
    caller once the executables' digests are known (:func:`process_table_capture`)."""
    hz = os.sysconf("SC_CLK_TCK")
    boot = _boot_time()
    rows = read_processes([pid for pid in _pids() if pid != os.getpid()], boot, hz)
    captures: list[Capture] = []
    seen = {} if seen is None else seen
    result = StepResult(
        "processes", details={"processes": len(rows), "exe": exe, "collector_pid": os.getpid()}
    )
    skipped: list[dict[str, Any]] = []
    for row in rows:
        if exe == "none" or "exe" not in row:
            continue
        if exe == "deleted" and not row.get("exe_deleted"):
            continue
        pid = row["pid"]
        try:
            fd = os.open(f"/proc/{pid}/exe", _READ_FLAGS)
        except OSError as e:
            row.setdefault("errors", {})["exe_bytes"] = _error(e)
            continue
        st = os.fstat(fd)
        row["exe_nlink"] = st.st_nlink  # 0: no name on disk is left (link text aside)
        ident = (st.st_dev, st.st_ino)
        if ident in seen:  # the same executable (even deleted: its inode lives on)
            os.close(fd)
            row["exe_key"] = seen[ident]
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_size > cap:
            os.close(fd)
            why = "over the step's max_bytes" if stat.S_ISREG(st.st_mode) else "not a regular file"
            skipped.append({"pid": pid, "size": st.st_size, "why": why})
            continue
        key = f"exe:{pid}"
        seen[ident] = key
        row["exe_key"] = key
        deleted = " (deleted from disk)" if row.get("exe_deleted") else ""
        captures.append(
            Capture(
                path=f"/proc/{pid}/exe".encode(),
                note=f"bytes of the executable of pid {pid}, read through /proc{deleted}",
                fd=fd,
                source=st,
                key=key,
            )
        )
    if skipped:
        result.details["exe_not_stored"] = skipped
    gone = [r["pid"] for r in rows if r.get("gone")]
    refused = [r["pid"] for r in rows if r.get("unreadable") or "exe_bytes" in r.get("errors", {})]
    result.details["gone"] = gone
    result.details["refused"] = refused
    result.details["timed_out"] = [r["pid"] for r in rows if r.get("timeout")]
    result.details["not_read"] = [r["pid"] for r in rows if r.get("not_read")]
    result.details["deleted_executables"] = [r["pid"] for r in rows if r.get("exe_deleted")]
    return captures, result, rows


def process_table_capture(rows: list[dict[str, Any]], digests: dict[str, str]) -> Capture:
    for row in rows:
        key = row.pop("exe_key", None)
        if key is not None and key in digests:
            row["exe_sha256"] = digests[key]
    return Capture(
        path=b"/proc",
        note="process table read from /proc (JSON)",
        source=os.lstat("/proc"),
        doc={"processes": rows},
    )


# -- the other steps -------------------------------------------------------------

_SOCKET_FILES = (
    "tcp",
    "tcp6",
    "udp",
    "udp6",
    "udplite",
    "udplite6",
    "raw",
    "raw6",
    "unix",
    "packet",
    "icmp",
    "icmp6",
)


def _raw_files(step: str, paths: list[str]) -> tuple[list[Capture], StepResult]:
    caps: list[Capture] = []
    res = StepResult(step)
    missing: list[dict[str, Any]] = []
    for p in paths:
        try:
            data, cut, st = read_with_stat(p)
        except OSError as e:
            missing.append({"path": p, "error": _error(e)})
            continue
        note = f"{p} as read ({step})" + (" — cut at the size cap" if cut else "")
        caps.append(Capture(path=p.encode(), note=note, data=data, source=st))
    if missing:
        res.details["not_read"] = missing
        res.outcome = "partial" if caps else "skipped"
        if not caps:
            res.reason = "nothing could be read: " + ", ".join(m["path"] for m in missing)
    return caps, res


def sockets() -> tuple[list[Capture], StepResult]:
    present = [f"/proc/net/{n}" for n in _SOCKET_FILES if os.path.exists(f"/proc/net/{n}")]
    return _raw_files("sockets", present)


UTMP = struct.Struct("<h2xi32s4s32s256shhi2i4I20s")
USER_PROCESS = 7


def parse_utmp(data: bytes) -> list[dict[str, Any]]:
    out = []
    for off in range(0, len(data) - UTMP.size + 1, UTMP.size):
        typ, pid, line, _id, user, host, _t, _e, sess, sec, usec, *_ = UTMP.unpack_from(data, off)
        if typ != USER_PROCESS:
            continue

        def text(b: bytes) -> str:
            return b.split(b"\0", 1)[0].decode("utf-8", errors="backslashreplace")

        out.append(
            {
                "user": text(user),
                "line": text(line),
                "host": text(host),
                "pid": pid,
                "session": sess,
                "login_time": rfc3339_ns(sec * 10**9 + usec * 1000),
            }
        )
    return out


def users(utmp: str = "/run/utmp") -> tuple[list[Capture], StepResult]:
    caps, res = _raw_files("users", [utmp])
    if caps and caps[0].data is not None:
        logged = parse_utmp(caps[0].data)
        caps.append(
            Capture(
                path=utmp.encode(),
                note="logged-in users parsed from utmp (JSON)",
                source=caps[0].source,
                doc={"users": logged},
            )
        )
        res.details["logged_in"] = len(logged)
    return caps, res


def modules() -> tuple[list[Capture], StepResult]:
    return _raw_files("modules", ["/proc/modules"])


def mounts() -> tuple[list[Capture], StepResult]:
    return _raw_files("mounts", ["/proc/self/mountinfo"])


def routes() -> tuple[list[Capture], StepResult]:
    return _raw_files("routes", ["/proc/net/route", "/proc/net/ipv6_route", "/proc/net/arp"])


def executables(
    cap: int = DEFAULT_CAP, seen: dict[tuple[int, int], str] | None = None
) -> tuple[list[Capture], StepResult]:
    """The bytes of every running executable not taken yet (``seen``), each
    distinct inode once, read through ``/proc/PID/exe``: the image the process
    runs, even if the path now names another file."""
    seen = {} if seen is None else seen
    caps: list[Capture] = []
    res = StepResult("executables")
    taken: list[dict[str, Any]] = []
    not_taken: list[dict[str, Any]] = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            target = os.readlink(f"/proc/{pid}/exe")
            fd = os.open(f"/proc/{pid}/exe", _READ_FLAGS)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ESRCH):  # kernel threads, gone pids
                not_taken.append({"pid": pid, "error": _error(e)})
            continue
        st = os.fstat(fd)
        ident = (st.st_dev, st.st_ino)
        if ident in seen:
            os.close(fd)
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_size > cap:
            os.close(fd)
            why = "over the step's max_bytes" if stat.S_ISREG(st.st_mode) else "not a regular file"
            not_taken.append({"pid": pid, "size": st.st_size, "why": why})
            continue
        seen[ident] = f"exe:{pid}"
        taken.append({"pid": pid, "exe": target})
        caps.append(
            Capture(
                path=f"/proc/{pid}/exe".encode(),
                note=f"bytes of the executable of pid {pid} ({target}), read through /proc",
                fd=fd,
                source=st,
                key=f"exe:{pid}",
            )
        )
    res.details["taken"] = taken
    if not_taken:
        res.details["not_taken"] = not_taken
        res.outcome = "partial"
    return caps, res


# -- memory ----------------------------------------------------------------------


def find_acquirer(names: list[str]) -> tuple[str, str] | None:
    """The first external memory acquirer found on PATH: (name, path)."""
    for n in names:
        p = shutil.which(n)
        if p is not None:
            return n, p
    return None


def memory(
    out_path: str, acquirers: list[str], cap: int | None
) -> tuple[list[Capture], StepResult]:
    """Run the first acquirer found (``avml OUT``) and capture its output file.
    Without one, the step is skipped and says which were looked for."""
    res = StepResult("memory", details={"looked_for": acquirers})
    found = find_acquirer(acquirers)
    if found is None:
        res.outcome = "skipped"
        res.reason = (
            "no memory acquirer found on PATH (looked for: " + ", ".join(acquirers) + ");"
            " LiME is not run by custody (it needs a kernel module built for this kernel)"
        )
        return [], res
    name, exe = found
    res.details.update({"acquirer": name, "acquirer_path": exe, "argv": [exe, out_path]})
    started = time.time_ns()
    try:
        proc = subprocess.run(
            [exe, out_path], capture_output=True, check=False, stdin=subprocess.DEVNULL
        )
    except OSError as e:
        res.outcome, res.reason = "failed", f"{name} could not be started: {e.strerror}"
        return [], res
    res.details.update(
        {
            "started": rfc3339_ns(started),
            "ended": rfc3339_ns(time.time_ns()),
            "exit_status": proc.returncode,
            "stderr_tail": proc.stderr[-2048:].decode("utf-8", errors="backslashreplace"),
        }
    )
    try:
        fd = os.open(out_path, _READ_FLAGS | os.O_NOFOLLOW)
    except OSError as e:
        res.outcome = "failed"
        res.reason = f"{name} exited {proc.returncode} and wrote no image: {e.strerror}"
        return [], res
    st = os.fstat(fd)
    if cap is not None and st.st_size > cap:
        os.close(fd)
        os.unlink(out_path)  # not left in the store's tmp: the profile's cap said no
        res.outcome = "failed"
        res.reason = f"memory image of {st.st_size} bytes is over the step's max_bytes: removed"
        return [], res
    if proc.returncode != 0:
        res.outcome = "partial"
        res.reason = f"{name} exited {proc.returncode}: the image may be incomplete"
    note = f"memory image acquired by {name} ({exe})"
    return [Capture(path=out_path.encode(), note=note, fd=fd, source=st)], res
