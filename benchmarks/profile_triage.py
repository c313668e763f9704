#!/usr/bin/env python3
"""Issue 17 performance: ``custody collect --profile linux-triage`` on this machine.

    python benchmarks/profile_triage.py [--workdir DIR] [--repeat 1] [--keep]

Makes a key and a fresh case in a work directory (default: a new temporary
directory under the current directory) and runs, ``--repeat`` times, each into a
fresh case (so each run includes the self-test a case's first collection records):

    custody collect --profile linux-triage --reason benchmark --quiet --json

and reports

* total wall time (target: whole triage under 2 minutes);
* time from the command's start until the last ``volatile.step`` event was
  signed (target: under 5 s), and the same from the run's ``collection.start``;
  also until the ``routes`` step (the live state: process table and deleted
  executables, sockets, users, modules, mounts, routes), before the running
  executables' bytes and memory;
* what was taken (items, bytes, entries that matched nothing);

beside peers measured in the same run, on the same data:

* volatile: a shell doing what a shell live response does (``ps -eo ...``,
  ``cat`` of the same /proc/net files, ``who``, /proc/modules, mountinfo, routes
  and ARP), nothing hashed, copied nor signed;
* files: ``tar --no-recursion -cf OUT -T LIST`` then ``sha256sum`` of the very
  files the profile collected (a copy and a digest, nothing signed).

UAC's documentation gives no triage duration to compare against (searched: the
UAC docs pages and issue threads state no ir_triage time), so none is printed.
Exit 0 whatever the targets say; 1 if a command failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_timed

VOLATILE_TARGET_S = 5.0
TOTAL_TARGET_S = 120.0

SHELL_LIVE = (
    "ps -eo pid,ppid,uid,gid,lstart,args; "
    "cat /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 /proc/net/unix"
    " /proc/net/raw /proc/net/packet 2>/dev/null; who; cat /proc/modules 2>/dev/null;"
    " cat /proc/self/mountinfo /proc/net/route /proc/net/ipv6_route /proc/net/arp"
)


def epoch(rfc3339: str) -> float:
    head, _, frac = rfc3339.rstrip("Z").partition(".")
    dt = datetime.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.UTC)
    return dt.timestamp() + (float("0." + frac) if frac else 0.0)


def custody(args: list[str], env: dict[str, str], cwd: Path) -> str:
    p = subprocess.run(
        ["custody", *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if p.returncode != 0:
        sys.exit(f"custody {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


def one_run(work: Path, env: dict[str, str], n: int) -> dict[str, object]:
    case = work / f"case{n}"
    custody(
        ["init", str(case), "--case-id", f"BENCH-{n}", "--title", "triage benchmark"], env, work
    )
    argv = ["custody", "collect", "--profile", "linux-triage", "--reason", "benchmark"]
    argv += ["--quiet", "--json"]
    t0 = time.time()
    r = run_timed(argv, env=env, cwd=case)
    if r.returncode != 0:
        sys.exit(f"collect failed ({r.returncode}): {r.output[-2000:]}")
    db = sqlite3.connect(f"file:{case / 'custody.db'}?mode=ro", uri=True)
    rows = [json.loads(b) for (b,) in db.execute("SELECT body FROM events ORDER BY seq")]
    start = next(b for b in rows if b["type"] == "collection.start")
    steps = [b for b in rows if b["type"] == "volatile.step"]
    entries = [b["data"] for b in rows if b["type"] == "profile.entry"]
    files = [
        bytes.fromhex(b["data"]["path"]["hex"])
        for b in rows
        if b["type"] == "collect"
        and b["data"]["outcome"] == "collected"
        and not b["data"]["path"]["display"].startswith("/proc")
    ]
    last_step = epoch(steps[-1]["time"]) if steps else float("nan")
    live = [s for s in steps if s["data"]["step"] == "routes"]
    live_done = epoch(live[0]["time"]) if live else float("nan")
    summary = json.loads(r.output[r.output.index("{") :])
    db.close()
    shutil.rmtree(case)  # gone before the next run: its store must not be triaged by it
    return {
        "total": r.seconds,
        "rss_kib": r.max_rss_kib,
        "volatile_from_launch": last_step - t0,
        "live_from_launch": live_done - t0,
        "volatile_from_start": last_step - epoch(start["time"]),
        "steps": [(s["data"]["step"], s["data"]["outcome"]) for s in steps],
        "items": len(summary["items"]) if isinstance(summary["items"], list) else summary["items"],
        "bytes": summary["bytes"],
        "nothing": [e["entry"] for e in entries if e["matched"] == 0],
        "files": files,
    }


def peers(work: Path, files: list[bytes]) -> tuple[float, float]:
    lst = work / "files.list"
    lst.write_bytes(b"\0".join(files) + b"\0")
    t0 = time.perf_counter()
    subprocess.run(["sh", "-c", SHELL_LIVE], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    live = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run(
        ["tar", "--no-recursion", "--null", "-cf", str(work / "peer.tar"), "-T", str(lst)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    subprocess.run(
        ["sh", "-c", f"xargs -0 sha256sum < '{lst}'"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    copy = time.perf_counter() - t0
    (work / "peer.tar").unlink(missing_ok=True)
    return live, copy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if shutil.which("custody") is None:
        sys.exit("custody is not on PATH (pip install -e .)")
    work = Path(tempfile.mkdtemp(prefix="custody-triage-", dir=args.workdir or Path.cwd()))
    env = {
        **os.environ,
        "CUSTODY_CONFIG_DIR": str(work / "config"),
        "CUSTODY_PASSPHRASE": "benchmark",
    }
    try:
        custody(["key", "new", "--name", "Bench", "--role", "collector"], env, work)
        print(f"host: {os.uname().nodename}, {os.cpu_count()} CPUs, uid {os.getuid()}")
        for n in range(args.repeat):
            res = one_run(work, env, n)
            files = res.pop("files")
            assert isinstance(files, list)
            live, copy = peers(work, files)
            vol = float(res["volatile_from_launch"])  # type: ignore[arg-type]
            total = float(res["total"])  # type: ignore[arg-type]
            print(
                f"\nrun {n + 1}: {res['items']} items, {res['bytes']} bytes, peak RSS"
                f" {res['rss_kib']} KiB; volatile steps {res['steps']}"
            )
            print(f"  entries that matched nothing: {', '.join(res['nothing']) or '-'}")  # type: ignore[arg-type]
            print(f"{'measure':<52} {'custody':>9} {'peer':>9} {'ratio':>7}  target")
            print(
                f"{'volatile steps recorded, from launch (s)':<52} {vol:>9.2f} {live:>9.2f}"
                f" {vol / live if live else float('nan'):>7.1f}  < {VOLATILE_TARGET_S:.0f} s "
                + ("PASS" if vol < VOLATILE_TARGET_S else "MISS")
            )
            lv = float(res["live_from_launch"])  # type: ignore[arg-type]
            print(
                f"{'  of which live state (processes..routes) (s)':<52} {lv:>9.2f} {live:>9.2f}"
                f" {lv / live if live else float('nan'):>7.1f}  < {VOLATILE_TARGET_S:.0f} s "
                + ("PASS" if lv < VOLATILE_TARGET_S else "MISS")
            )
            print(
                f"{'volatile steps, from collection.start (s)':<52}"
                f" {float(res['volatile_from_start']):>9.2f}"  # type: ignore[arg-type]
            )
            peer = copy + live
            ratio = total / peer if peer else float("nan")
            print(
                f"{'whole triage, wall (s) [peer: tar + sha256sum files]':<52} {total:>9.2f}"
                f" {peer:>9.2f} {ratio:>7.1f}"
                f"  < {TOTAL_TARGET_S:.0f} s " + ("PASS" if total < TOTAL_TARGET_S else "MISS")
            )
        print("\nUAC: its documentation states no ir_triage duration; none compared.")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    main()
