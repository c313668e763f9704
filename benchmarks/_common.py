"""What the benchmark scripts share: running a command timed (wall time, peak RSS,
CPU used by other processes meanwhile), untimed set-up steps, and inputs.

Imported by the scripts beside it (``python benchmarks/field.py`` puts this folder
on ``sys.path``)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20
GIB = 1 << 30
TIME_BIN = "/usr/bin/time"
USE_TIME = os.access(TIME_BIN, os.X_OK)
NOISY_CORES = 0.25  # other processes using more CPU than this during a best run: flagged


# -- running things ---------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    max_rss_kib: int
    returncode: int
    output: str
    other_cores: float | None = None  # CPU used by other processes meanwhile, in cores
    cores: float | None = None  # the tool's own CPU time / wall time


def busy_cpu_seconds() -> float | None:
    """CPU seconds all processes have used since boot (plus steal), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: part of user]
    v = [int(x) for x in fields[1:9]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


def run_timed(
    argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> Run:
    """Run ``argv`` once: wall time and peak RSS.

    Peak RSS comes from ``/usr/bin/time -f %M`` when it exists: wait4() on a child
    of this Python process would report at least this process's own RSS, because
    Linux carries the pre-exec address space's high-water mark into ru_maxrss.
    Without /usr/bin/time that wait4() figure is used (a floor for small tools)."""
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as rss:
        cmd = list(argv)
        if USE_TIME:
            cmd = [TIME_BIN, "-f", "%M", "-o", rss.name, *cmd]
        busy0 = busy_cpu_seconds()
        t0 = time.perf_counter()
        p = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )
        _, status, usage = os.wait4(p.pid, 0)
        elapsed = time.perf_counter() - t0
        busy1 = busy_cpu_seconds()
        other = None
        mine = usage.ru_utime + usage.ru_stime  # includes the tool's waited-for children
        if busy0 is not None and busy1 is not None and elapsed > 0:
            other = max(0.0, (busy1 - busy0 - mine) / elapsed)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
        max_rss = int(usage.ru_maxrss)
        if USE_TIME:
            # the last line is %M; a non-zero exit adds a "Command exited" line before it
            lines = [ln for ln in rss.read().splitlines() if ln.strip()]
            if lines and lines[-1].strip().isdigit():
                max_rss = int(lines[-1])
    return Run(
        elapsed,
        max_rss,
        os.waitstatus_to_exitcode(status),
        text,
        other,
        mine / elapsed if elapsed > 0 else None,
    )


def run_quiet(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    """An untimed setup step; raise with its output if it fails."""
    p = subprocess.run(list(argv), env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): {p.stdout}{p.stderr}")
    return p.stdout


def rm(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)  # store objects are 0444 in 0755 dirs
    else:
        path.unlink(missing_ok=True)


def warm(paths: Sequence[Path]) -> None:
    """cat every input to /dev/null so that every timed run reads the page cache,
    then write back what earlier commands left dirty or deleted (sync(2), off the
    clock): else the file system's writeback of the previous run's 50,000 files
    lands in the next timed command, and the first of each run (the peer) slowed
    from 11,364 to 4,993 files/s over three runs."""
    names = [str(p) for p in paths]
    for i in range(0, len(names), 2000):
        subprocess.run(["cat", *names[i : i + 2000]], stdout=subprocess.DEVNULL, check=True)
    os.sync()


# -- inputs -------------------------------------------------------------------------


def make_big(path: Path, size: int) -> None:
    """``size`` random bytes at ``path``, kept if already there (and not sparse)."""
    if path.exists() and path.stat().st_size == size and path.stat().st_blocks * 512 >= size:
        return
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n
        f.flush()
        os.fsync(f.fileno())


_WORDS = (
    "sshd cron kernel systemd sudo session opened closed for user root from port "
    "accepted publickey failed password invalid connection reset error warning"
).split()


def log_text(rnd: random.Random, size: int) -> bytes:
    """Syslog-like text: what much small evidence looks like, and far costlier for
    libmagic than random bytes (which it gives up on early as "data")."""
    out: list[str] = []
    n = 0
    while n < size:
        line = (
            f"Nov {rnd.randint(1, 30):2d} {rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:"
            f"{rnd.randint(0, 59):02d} host{rnd.randint(1, 9)} {rnd.choice(_WORDS)}"
            f"[{rnd.randint(100, 99999)}]: "
            + " ".join(rnd.choice(_WORDS) for _ in range(rnd.randint(3, 12)))
            + f" 10.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}\n"
        )
        out.append(line)
        n += len(line)
    return "".join(out).encode("ascii")[:size]


def make_tree(root: Path, files: int, size: int, dirs: int, content: str) -> list[Path]:
    """``files`` files of ``size`` bytes (``content``: "random" or log text) spread
    over ``dirs`` folders; kept if a previous run made the same tree."""
    marker = root.with_name(root.name + ".complete")  # outside: custody walks the tree
    want = f"{files} {size} {dirs} {content}"
    paths = [root / f"d{i % dirs:03d}" / f"f{i:06d}.bin" for i in range(files)]
    if marker.exists() and marker.read_text() == want:
        return paths
    rm(root)
    for d in range(min(dirs, files) or 1):
        (root / f"d{d:03d}").mkdir(parents=True, exist_ok=True)
    rnd = random.Random(2026)
    for p in paths:
        with open(p, "wb") as f:
            f.write(os.urandom(size) if content == "random" else log_text(rnd, size))
    marker.write_text(want)
    return paths
