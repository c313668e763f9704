"""Issue 17 §2: volatile data first, in RFC 3227 order.

A profile's volatile steps run before any file is read and are recorded in the
profile's order (``volatile.step`` events); each capture is an item (``collect``
event, bytes in the store); the bytes of a process's executable are collected
through /proc even when the binary was deleted from disk; memory is acquired by
an external acquirer when one is on PATH and recorded as skipped when not; /proc
is read without blocking and unreadable pids are recorded as such.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Case, cli
from jsonschema import Draft202012Validator

from custody import volatile
from custody.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]
BODY = Draft202012Validator(json.loads((ROOT / "schemas/event-body.schema.json").read_text()))


def bodies(case: Case) -> list[dict[str, Any]]:
    with Ledger.open(case.dir) as ledger:
        return [json.loads(ev.body) for ev in ledger.events()]


def profile(tmp_path: Path, steps: list[dict[str, Any]], entries: Any = ()) -> Path:
    doc = {
        "v": 1,
        "name": "live",
        "description": "live",
        "volatile": steps,
        "entries": list(entries),
    }
    p = tmp_path / "live.json"
    p.write_text(json.dumps(doc))
    return p


def stored(case: Case, data: dict[str, Any]) -> bytes:
    return (case.dir / "store" / data["store"]).read_bytes()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def no_avml_path(tmp_path: Path) -> str:
    """A PATH without any memory acquirer (the real one, minus dirs holding avml)."""
    dirs = [d for d in os.environ.get("PATH", "").split(":") if d and not Path(d, "avml").exists()]
    return ":".join(dirs)


def test_deleted_binary_bytes_are_collected(case: Case, tmp_path: Path) -> None:
    original = Path(shutil.which("sleep") or "/bin/sleep").read_bytes()
    copy = tmp_path / "implant"
    copy.write_bytes(original)
    copy.chmod(0o755)
    proc = subprocess.Popen([str(copy), "60"])
    try:
        for _ in range(100):
            try:
                if os.readlink(f"/proc/{proc.pid}/exe") == str(copy):
                    break
            except OSError:
                pass
            time.sleep(0.02)
        copy.unlink()  # the intruder removes the binary; the process runs on
        prof = profile(tmp_path, [{"step": "processes", "exe": "deleted"}])
        run = cli(case, "collect", "--profile", str(prof), "--reason", "live response")
        assert run.returncode == 0, run.stderr
    finally:
        proc.kill()
        proc.wait()
    all_bodies = bodies(case)
    items = {b["data"]["path"]["display"]: b["data"] for b in all_bodies if b["type"] == "collect"}
    exe = items[f"/proc/{proc.pid}/exe"]
    assert exe["outcome"] == "collected"
    assert exe["digests"]["sha256"] == sha(original)
    assert stored(case, exe) == original
    assert exe["source"]["nlink"] == 0  # read through the kernel's link, not the gone path
    assert "deleted from disk" in exe["note"]
    table = json.loads(stored(case, items["/proc"]))
    (row,) = [r for r in table["processes"] if r["pid"] == proc.pid]
    assert row["exe"]["display"] == f"{copy} (deleted)" and row["exe_deleted"] is True
    assert row["exe_sha256"] == sha(original)
    assert row["exe_nlink"] == 0
    assert row["cmdline"] == [str(copy), "60"]
    assert row["ppid"] == os.getpid() and row["uids"][0] == os.getuid()
    assert row["start_time"].endswith("Z") and row["cwd"]["display"] == os.getcwd()
    (step,) = [b["data"] for b in all_bodies if b["type"] == "volatile.step"]
    assert step["step"] == "processes" and step["outcome"] == "recorded"
    assert proc.pid in step["details"]["deleted_executables"]
    assert step["captures"][-1] == items["/proc"]["item"]
    for b in all_bodies:
        assert not [e.message for e in BODY.iter_errors(b)], b["type"]
    assert cli(case, "verify").returncode == 0


def test_steps_recorded_in_order_of_volatility_before_files(case: Case, tmp_path: Path) -> None:
    vol_file = tmp_path / "f.txt"
    vol_file.write_text("file")
    steps: list[dict[str, Any]] = [{"step": s} for s in volatile.STEP_ORDER]
    steps[0]["exe"] = "none"
    steps[volatile.STEP_ORDER.index("executables")]["max_bytes"] = 0  # fast: take none
    entries = [{"name": "f", "reason": "a file", "paths": [str(vol_file)]}]
    prof = profile(tmp_path, steps, entries)
    run = cli(
        case,
        "collect",
        "--profile",
        str(prof),
        "--reason",
        "r",
        env={"PATH": no_avml_path(tmp_path)},
    )
    assert run.returncode == 0, run.stderr
    all_bodies = bodies(case)
    types = [b["type"] for b in all_bodies]
    step_events = [b["data"] for b in all_bodies if b["type"] == "volatile.step"]
    assert [s["step"] for s in step_events] == list(volatile.STEP_ORDER)
    assert [s["order"] for s in step_events] == list(range(1, len(volatile.STEP_ORDER) + 1))
    last_step = max(i for i, t in enumerate(types) if t == "volatile.step")
    assert types.index("profile.run") < types.index("volatile.step")
    assert last_step < types.index("profile.entry")
    file_item = [
        i
        for i, b in enumerate(all_bodies)
        if b["type"] == "collect" and b["data"]["path"]["display"] == str(vol_file)
    ]
    assert file_item and file_item[0] > last_step
    # each step's items are the collect events just before it
    by_item = {b["data"]["item"]: i for i, b in enumerate(all_bodies) if b["type"] == "collect"}
    prev = types.index("profile.run")
    for i, b in enumerate(all_bodies):
        if b["type"] != "volatile.step":
            continue
        assert all(prev < by_item[it] < i for it in b["data"]["captures"])
        prev = i
    by_step = {s["step"]: s for s in step_events}
    assert by_step["processes"]["captures"]  # the table, at least
    assert by_step["sockets"]["outcome"] == "recorded"
    paths = {b["data"]["path"]["display"] for b in all_bodies if b["type"] == "collect"}
    assert {"/proc/net/tcp", "/proc/self/mountinfo", "/proc/net/route", "/proc/net/arp"} <= paths
    mem = by_step["memory"]
    assert mem["outcome"] == "skipped" and mem["captures"] == []
    assert "no memory acquirer found on PATH (looked for: avml)" in mem["reason"]
    assert "Volatile step memory: skipped" in run.stdout


def test_memory_acquirer_runs_when_present(case: Case, tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    avml = tools / "avml"
    avml.write_text("#!/bin/sh\nprintf 'LIME-IMAGE' > \"$1\"\n")
    avml.chmod(0o755)
    prof = profile(tmp_path, [{"step": "memory"}])
    env = {"PATH": f"{tools}:{os.environ.get('PATH', '')}"}
    run = cli(case, "collect", "--profile", str(prof), "--reason", "r", env=env)
    assert run.returncode == 0, run.stderr
    all_bodies = bodies(case)
    (step,) = [b["data"] for b in all_bodies if b["type"] == "volatile.step"]
    assert step["outcome"] == "recorded"
    assert step["details"]["acquirer"] == "avml"
    assert step["details"]["acquirer_path"] == str(avml)
    assert step["details"]["exit_status"] == 0
    (item,) = [b["data"] for b in all_bodies if b["type"] == "collect"]
    assert item["digests"]["sha256"] == sha(b"LIME-IMAGE") and step["captures"] == [item["item"]]
    assert "acquired by avml" in item["note"]
    assert not list((case.dir / "store" / "tmp").glob("memory-*"))  # temp copy gone once stored


def test_memory_acquirer_failing_is_recorded(case: Case, tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    avml = tools / "avml"
    avml.write_text("#!/bin/sh\necho 'no /dev/crash' >&2\nexit 3\n")
    avml.chmod(0o755)
    prof = profile(tmp_path, [{"step": "memory"}])
    env = {"PATH": f"{tools}:{os.environ.get('PATH', '')}"}
    run = cli(case, "collect", "--profile", str(prof), "--reason", "r", env=env)
    assert run.returncode == 0, run.stderr
    (step,) = [b["data"] for b in bodies(case) if b["type"] == "volatile.step"]
    assert step["outcome"] == "failed" and "avml exited 3 and wrote no image" in step["reason"]
    assert step["details"]["stderr_tail"] == "no /dev/crash\n"


# -- /proc without hanging; pids gone or refused ------------------------------------------


def test_read_capped_never_blocks_on_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code = f"from custody.volatile import read_capped; print(read_capped({str(fifo)!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert out.stdout.strip() == "(b'', False)"


def test_read_capped_stops_at_the_cap(tmp_path: Path) -> None:
    f = tmp_path / "big"
    f.write_bytes(b"x" * 100)
    assert volatile.read_capped(str(f), 10) == (b"x" * 10, True)
    assert volatile.read_capped(str(f), 100) == (b"x" * 100, False)


def test_gone_pid_is_recorded_as_gone() -> None:
    p = subprocess.Popen(["true"])
    p.wait()
    row = volatile.read_process(p.pid, None, 100)
    assert row == {
        "pid": p.pid,
        "gone": True,
        "error": {"errno": 2, "name": "ENOENT", "message": "No such file or directory"},
    }


def test_refused_fields_are_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.readlink

    def readlink(path: Any, *a: Any, **kw: Any) -> Any:
        if str(os.fsdecode(path)).endswith(("/exe", "/cwd")):
            raise PermissionError(1, "Operation not permitted")
        return real(path, *a, **kw)

    monkeypatch.setattr(os, "readlink", readlink)
    row = volatile.read_process(os.getpid(), None, 100)
    assert row["errors"]["exe"]["name"] == "EPERM" and row["errors"]["cwd"]["name"] == "EPERM"
    assert "exe" not in row and row["ppid"] == os.getppid()


def test_parse_utmp() -> None:
    rec = volatile.UTMP.pack(
        7,
        4242,
        b"pts/0",
        b"ts/0",
        b"mallory",
        b"203.0.113.9",
        0,
        0,
        17,
        1767225600,
        5,
        0,
        0,
        0,
        0,
        b"",
    )
    dead = volatile.UTMP.pack(8, 1, b"", b"", b"", b"", 0, 0, 0, 0, 0, 0, 0, 0, 0, b"")
    assert volatile.UTMP.size == 384
    assert volatile.parse_utmp(dead + rec + b"short") == [
        {
            "user": "mallory",
            "line": "pts/0",
            "host": "203.0.113.9",
            "pid": 4242,
            "session": 17,
            "login_time": "2026-01-01T00:00:00.000005000Z",
        }
    ]
    assert struct.calcsize("<h2xi32s4s32s256shhi2i4I20s") == 384


def test_users_step_stores_raw_and_parsed(tmp_path: Path) -> None:
    rec = volatile.UTMP.pack(7, 1, b"tty1", b"1", b"root", b"", 0, 0, 1, 0, 0, 0, 0, 0, 0, b"")
    utmp = tmp_path / "utmp"
    utmp.write_bytes(rec)
    caps, res = volatile.users(str(utmp))
    assert res.outcome == "recorded" and res.details["logged_in"] == 1
    assert caps[0].data == rec and caps[1].doc["users"][0]["user"] == "root"
    caps, res = volatile.users(str(tmp_path / "none"))
    assert caps == [] and res.outcome == "skipped" and "nothing could be read" in str(res.reason)


def test_memory_image_over_the_cap_is_not_kept(case: Case, tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    avml = tools / "avml"
    avml.write_text('#!/bin/sh\nhead -c 5000 /dev/zero > "$1"\n')
    avml.chmod(0o755)
    prof = profile(tmp_path, [{"step": "memory", "max_bytes": 4096}])
    env = {"PATH": f"{tools}:{os.environ.get('PATH', '')}"}
    run = cli(case, "collect", "--profile", str(prof), "--reason", "r", env=env)
    assert run.returncode == 0, run.stderr
    all_bodies = bodies(case)
    (step,) = [b["data"] for b in all_bodies if b["type"] == "volatile.step"]
    assert step["outcome"] == "failed"
    assert step["reason"] == "memory image of 5000 bytes is over the step's max_bytes: removed"
    assert not [b for b in all_bodies if b["type"] == "collect"]
    assert not list((case.dir / "store" / "tmp").glob("memory-*"))


def test_a_step_the_system_refuses_is_recorded_failed(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_proc() -> Any:
        raise FileNotFoundError(2, "No such file or directory", "/proc/net")

    monkeypatch.setattr(volatile, "sockets", no_proc)
    prof = profile(tmp_path, [{"step": "sockets"}, {"step": "mounts"}])
    run = cli(case, "collect", "--profile", str(prof), "--reason", "r")
    assert run.returncode == 0, run.stderr
    all_bodies = bodies(case)
    steps = [b["data"] for b in all_bodies if b["type"] == "volatile.step"]
    assert [(s["step"], s["outcome"]) for s in steps] == [
        ("sockets", "failed"),
        ("mounts", "recorded"),
    ]
    assert steps[0]["reason"] == "No such file or directory (/proc/net)"
    assert steps[0]["details"]["error"]["name"] == "ENOENT"
    (end,) = [b["data"] for b in all_bodies if b["type"] == "collection.end"]
    assert end["status"] == "complete"


def test_a_blocking_pid_does_not_hang_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    release = threading.Event()
    real = volatile.read_process

    def read(pid: int, boot: Any, hz: int) -> Any:
        if pid == 2:
            release.wait(30)  # as a read of /proc/PID/cmdline of a D-state process
        return real(pid, boot, hz)

    monkeypatch.setattr(volatile, "read_process", read)
    monkeypatch.setattr(volatile, "PID_TIMEOUT", 0.2)
    t0 = time.monotonic()
    rows = volatile.read_processes([1, 2, os.getpid()], None, 100)
    assert time.monotonic() - t0 < 5
    release.set()
    assert [r["pid"] for r in rows] == [1, 2, os.getpid()]
    assert rows[1] == {"pid": 2, "timeout": True}
    assert rows[2]["ppid"] == os.getppid()


def test_a_bundle_of_one_capture_discloses_no_step(case: Case, tmp_path: Path) -> None:
    from tampering import read_events

    prof = profile(tmp_path, [{"step": "routes"}])
    assert cli(case, "collect", "--profile", str(prof), "--reason", "r").returncode == 0
    collects = [b["data"] for b in bodies(case) if b["type"] == "collect"]
    first = collects[0]["item"]
    proc = cli(case, "bundle", "export", first, "--out", tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    assert "also names" not in proc.stdout + proc.stderr
    types = [json.loads(r["body"])["type"] for r in read_events(tmp_path / "b")]
    assert "collect" in types
    assert not {"volatile.step", "profile.run", "profile.entry"} & set(types)


def test_running_executables_are_taken_after_the_live_state(case: Case, tmp_path: Path) -> None:
    original = Path(shutil.which("sleep") or "/bin/sleep").read_bytes()
    copy = tmp_path / "tool"
    copy.write_bytes(original + b"\0custody-test")  # a distinct inode and digest
    copy.chmod(0o755)
    proc = subprocess.Popen([str(copy), "60"])
    try:
        for _ in range(100):
            if os.path.exists(f"/proc/{proc.pid}/exe") and os.readlink(
                f"/proc/{proc.pid}/exe"
            ) == str(copy):
                break
            time.sleep(0.02)
        prof = profile(
            tmp_path,
            [
                {"step": "processes"},
                {"step": "routes"},
                {"step": "executables", "max_bytes": 1 << 26},
            ],
        )
        run = cli(case, "collect", "--profile", str(prof), "--reason", "r")
        assert run.returncode == 0, run.stderr
    finally:
        proc.kill()
        proc.wait()
    all_bodies = bodies(case)
    steps = {b["data"]["step"]: b["data"] for b in all_bodies if b["type"] == "volatile.step"}
    items = {b["data"]["item"]: b["data"] for b in all_bodies if b["type"] == "collect"}
    mine = [items[i] for i in steps["executables"]["captures"]]
    (exe,) = [d for d in mine if d["path"]["display"] == f"/proc/{proc.pid}/exe"]
    assert exe["digests"]["sha256"] == sha(original + b"\0custody-test")
    assert {"pid": proc.pid, "exe": str(copy)} in steps["executables"]["details"]["taken"]
    in_processes = [items[i]["path"]["display"] for i in steps["processes"]["captures"]]
    assert f"/proc/{proc.pid}/exe" not in in_processes  # not deleted: not the first step's
    seqs = [b["seq"] for b in all_bodies if b["type"] == "volatile.step"]
    assert seqs == sorted(seqs)
