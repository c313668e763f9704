#!/usr/bin/env python3
"""`custody --help` start-up time against a bare `python -c pass` (issue 16).

    python benchmarks/cli_startup.py [--repeat 20] [--custody custody]

Runs, in alternation, ``--repeat`` times each: ``python -c pass`` (the same
interpreter), ``custody --help`` (the installed script), ``python -m
custody_cli.main --help`` and ``custody verify --help`` (which loads one command
module).  Prints the best and median wall time of each and the ratio of
``custody --help``'s best to ``python -c pass``'s; the target is at most 5x
(PASS/MISS, informational).  Also lists which heavy modules (cryptography,
sqlite_utils, magic, fpdf, tqdm) ``custody --help`` imports: none is the rule.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

TARGET = 5.0
HEAVY = ("cryptography", "sqlite_utils", "magic", "fpdf", "tqdm")


CPU: dict[str, list[float]] = {}


def timed(argv: list[str], label: str = "") -> float:
    """Wall seconds of one run; its CPU seconds are kept in CPU[label]."""
    before = os.times()
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    CPU.setdefault(label, []).append(cpu)
    return wall


def heavy_at_help() -> list[str]:
    code = (
        "import sys\n"
        "from custody_cli.main import cli\n"
        "try:\n"
        "    cli(['--help'], prog_name='custody')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in p.stderr.strip().split(",") if m]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=20, help="runs of each command (default 20)")
    ap.add_argument("--custody", default="custody", help="custody executable")
    args = ap.parse_args(argv)
    exe = shutil.which(args.custody)
    custody = [exe] if exe else [sys.executable, "-m", "custody_cli.main"]
    cmds = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "custody --help": [*custody, "--help"],
        "python -m custody_cli.main --help": [sys.executable, "-m", "custody_cli.main", "--help"],
        "custody verify --help": [*custody, "verify", "--help"],
    }
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for argv_ in cmds.values():  # warm the page cache and .pyc files
        timed(argv_)
    for _ in range(args.repeat):
        for label, argv_ in cmds.items():
            times[label].append(timed(argv_, label))
    print(f"{os.cpu_count()} CPUs, load average {' '.join(map(str, os.getloadavg()))}")
    print(f"{'command':<36}{'best ms':>9}{'median ms':>11}{'x pass':>8}{'CPU ms':>9}")
    base = min(times["python -c pass"])
    for label, ts in times.items():
        print(
            f"{label:<36}{min(ts) * 1000:>9.1f}{statistics.median(ts) * 1000:>11.1f}"
            f"{min(ts) / base:>8.2f}{statistics.median(CPU[label]) * 1000:>9.1f}"
        )
    ratio = min(times["custody --help"]) / base
    verdict = "PASS" if ratio <= TARGET else "MISS"
    print(f"\ncustody --help / python -c pass: {ratio:.2f}x (target <= {TARGET}x): {verdict}")
    cpu = statistics.median(CPU["custody --help"]) / statistics.median(CPU["python -c pass"])
    print(f"median CPU time, same ratio: {cpu:.2f}x (10 ms clock ticks: coarse)")
    heavy = heavy_at_help()
    print(f"heavy modules imported by custody --help: {', '.join(heavy) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
