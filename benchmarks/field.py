#!/usr/bin/env python3
"""Field performance targets of issue 6, against peers measured in the same run.

    python benchmarks/field.py [--size-gib 2] [--files 50000] [--sparse-gib 16]
                               [--workdir DIR] [--keep] [--quick] [--repeat 2]

Builds, in a work directory (default: a new temporary directory under the
current directory, so on the filesystem the user cares about):

* ``big.bin``: ``--size-gib`` GiB of random bytes;
* ``tree/``: ``--files`` files of 4 KiB of random bytes in 100 directories;
* ``sparse-small.bin`` and ``sparse-big.bin``: sparse files (all holes) of
  ``--size-gib`` and ``--sparse-gib`` GiB.

and then measures (each timed command run ``--repeat`` times, default 2, the
best taken; the commands compared with each other are run in alternation, so a
load change on the machine hits both; before every timed run the inputs are
read once with ``cat > /dev/null`` so that they come from the page cache, and
dirty pages are written back with sync(2) off the clock):

1. copy + md5 + sha1 + sha256 into the store, signed and recorded: ``custody
   collect --hash md5,sha1,sha256 --quiet big.bin`` into a fresh case, against
   ``dc3dd if=big.bin of=OUT hash=md5 hash=sha1 hash=sha256`` (target >= 1.5x
   its throughput) and ``md5sum big.bin`` (target >= 0.7x: MD5 is serial, so
   md5sum is the ceiling for three digests);
2. ``custody verify`` of that case (re-hashes the store object with the three
   recorded digests) against ``hashdeep -c md5,sha1,sha256 big.bin`` (>= 3x)
   and ``md5sum`` (>= 0.9x); ``custody verify`` of a case collected with
   ``--hash sha256`` against ``openssl dgst -sha256 big.bin`` (>= 0.9x);
3. the tree: ``custody collect --quiet tree/`` (digests, metadata, MIME, signed
   records, and the copy) in files/s against ``hashdeep -r -c md5,sha1,sha256
   tree/`` (>= 1x) and, for the copy, against ``cp -r`` (reported, no target);
   ``custody --help`` against a bare ``python -c pass`` of the same interpreter
   (<= 5x the time; these two run max(5, --repeat) times);
4. peak RSS (``/usr/bin/time -f %M``) of ``custody collect`` of the small and of
   the big sparse file, each in its own case: equal within 10%.  The store
   writes real zeros, so the big one needs ``--sparse-gib`` GiB free; when that
   is not free the row says SKIPPED and why.  These cases are always removed.

Every collect goes into a fresh case, so each one includes the self-test a
case's first collection runs and records; its cost (a 1-byte collect into a
fresh case with and without ``--no-selftest``) is printed under the table.
MB/s is 10^6 bytes per second.  "cpu" in the log is the command's own CPU time
(user + sys, children included); "other" is the CPU (in cores) other
processes used during that run, from /proc/stat; a "!" in the table marks
a comparison where some run saw more than 0.25 cores of it (times pessimistic,
rerun on an idle machine).  Targets are printed as PASS/MISS; they are
informational: the script exits 0 whatever they say, 1 if a command failed, 2
if a tool is missing or the disk is too small for the run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    GIB,
    MIB,
    NOISY_CORES,
    TIME_BIN,
    USE_TIME,
    make_big,
    make_tree,
    rm,
    run_quiet,
    run_timed,
    warm,
)

SMALL_SIZE = 4096
DIRS = 100
PASSPHRASE = "custody-field-benchmark"
STARTUP_RUNS = 5
# Type every file under argv[1] the way custody's collector does (a description,
# and the MIME type unless libmagic recognised nothing), on a thread per core.
MAGIC_ONLY = """
import os, sys, threading
from concurrent.futures import ThreadPoolExecutor
import magic
local = threading.local()
def detect(path):
    m = getattr(local, "m", None)
    if m is None:
        m = local.m = (magic.Magic(mime=True), magic.Magic())
    if m[1].from_file(path) != "data":
        m[0].from_file(path)
paths = [os.path.join(d, f) for d, _, fs in os.walk(sys.argv[1]) for f in fs]
with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
    list(pool.map(detect, paths, chunksize=64))
"""
QUICK = {"size_gib": 0.25, "files": 5000, "sparse_gib": 2.0}
DEFAULTS = {"size_gib": 2.0, "files": 50000, "sparse_gib": 16.0}


# -- running things ---------------------------------------------------------------


@dataclass
class Cmd:
    label: str
    argv: list[str]
    env: dict[str, str] | None = None
    before: Callable[[], None] | None = None  # untimed: fresh case, warm the cache
    after: Callable[[], None] | None = None  # untimed: remove what the run wrote


@dataclass
class Best:
    label: str
    seconds: float | None = None
    max_rss_kib: int = 0
    other_cores: float | None = None  # during the best run
    worst_other: float = 0.0  # over all runs
    runs: int = 0
    failed: str = ""


def measure(cmds: Sequence[Cmd], repeat: int) -> dict[str, Best]:
    """Best of ``repeat`` runs of each command, the commands in alternation."""
    best = {c.label: Best(c.label) for c in cmds}
    for _ in range(repeat):
        for c in cmds:
            b = best[c.label]
            if b.failed:
                continue
            if c.before is not None:
                c.before()
            os.sync()
            r = run_timed(c.argv, c.env)
            if c.after is not None:
                c.after()
            if r.returncode != 0:
                b.failed = f"exit {r.returncode}: {r.output.strip()[-300:]}"
                print(f"  {c.label:<44} FAILED {b.failed}", flush=True)
                continue
            b.runs += 1
            b.max_rss_kib = max(b.max_rss_kib, r.max_rss_kib)
            b.worst_other = max(b.worst_other, r.other_cores or 0.0)
            if b.seconds is None or r.seconds < b.seconds:
                b.seconds, b.other_cores = r.seconds, r.other_cores
            other = "" if r.other_cores is None else f"  other {r.other_cores:4.2f}"
            # the tool's own CPU time (user + sys, with its children): steadier than the
            # wall time on a shared machine
            cpu = "" if r.cores is None else f"  cpu {r.cores * r.seconds:7.2f}s"
            print(
                f"  {c.label:<44} {r.seconds:8.3f}s  RSS {r.max_rss_kib / 1024:7.1f} MiB"
                f"{cpu}{other}",
                flush=True,
            )
    return best


# -- custody ------------------------------------------------------------------------


def resolve_custody(name: str) -> list[str]:
    """The custody command, past a pyenv shim (a bash script that would add tens of
    milliseconds to every start-up); ``python -m custody_cli.main`` if not installed."""
    exe = shutil.which(name)
    if exe is None:
        return [sys.executable, "-m", "custody_cli.main"]
    if "/shims/" in exe and shutil.which("pyenv"):
        p = subprocess.run(["pyenv", "which", Path(exe).name], capture_output=True, text=True)
        if p.returncode == 0 and p.stdout.strip():
            exe = p.stdout.strip()
    return [exe]


def interpreter_of(cmd: list[str]) -> str:
    """The Python that runs custody (the console script's shebang), for the bare
    ``python -c pass`` start-up reference."""
    if len(cmd) > 1:
        return cmd[0]
    try:
        with open(cmd[0], "rb") as f:
            first = f.readline().decode("utf-8", "replace").strip()
    except OSError:
        return sys.executable
    if first.startswith("#!") and "python" in first:
        parts = first[2:].split()
        if parts and Path(parts[0]).name == "env" and len(parts) > 1:
            return shutil.which(parts[1]) or sys.executable
        if parts:
            return parts[0]
    return sys.executable


class Custody:
    def __init__(self, cmd: list[str], work: Path) -> None:
        self.cmd = cmd
        # PYTHONDONTWRITEBYTECODE dropped: an installed custody runs from compiled
        # bytecode (pip compiles at install); an editable checkout would otherwise
        # recompile its sources at every start and be timed doing so
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in ("CUSTODY_CASE", "CUSTODY_KEY", "CUSTODY_PASSPHRASE", "PYTHONDONTWRITEBYTECODE")
        }
        self.env["CUSTODY_CONFIG_DIR"] = str(work / "config")
        self.env["CUSTODY_PASSPHRASE"] = PASSPHRASE
        self.key = work / "bench-key.pem"
        self.env["CUSTODY_KEY"] = str(self.key)
        self._n = 0
        helptext = run_quiet([*cmd, "collect", "--help"], env=self.env)
        self.has_no_selftest = "--no-selftest" in helptext

    def make_key(self) -> None:
        if not self.key.exists():
            run_quiet(
                [
                    *self.cmd,
                    "key",
                    "new",
                    "--name",
                    "Bench",
                    "--role",
                    "collector",
                    "--out",
                    str(self.key),
                    "--no-default",
                ],
                env=self.env,
            )

    def new_case(self, case: Path) -> None:
        rm(case)
        self._n += 1
        run_quiet(
            [*self.cmd, "init", str(case), "--case-id", f"B-{self._n}", "--title", "bench"],
            env=self.env,
        )

    def collect(self, case: Path, path: Path, *extra: str) -> list[str]:
        return [
            *self.cmd,
            "--case",
            str(case),
            "collect",
            "--reason",
            "test",
            "--quiet",
            *extra,
            str(path),
        ]

    def verify(self, case: Path) -> list[str]:
        return [*self.cmd, "--case", str(case), "verify", "--quiet"]


def store_objects(case: Path) -> list[Path]:
    base = case / "store" / "sha256"
    # sha256/ab/<hex> (a new store) or sha256/ab/cd/<hex> (one made before 0.16)
    found = [*base.glob("*/*"), *base.glob("*/*/*")] if base.is_dir() else []
    return sorted(p for p in found if p.is_file())


# -- inputs ---------------------------------------------------------------------------


def make_sparse(path: Path, size: int) -> None:
    rm(path)
    with open(path, "wb") as f:
        f.truncate(size)


def small_tree(root: Path, files: int) -> list[Path]:
    return make_tree(root, files, SMALL_SIZE, DIRS, "random")


# -- disk space -------------------------------------------------------------------------


def gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def tree_bytes(files: int, block: int) -> int:
    """On-disk size of a tree of ``files`` 4 KiB files: data blocks plus an inode-ish
    allowance per file."""
    per = -(-SMALL_SIZE // block) * block + 512
    return files * per


def needed_main(args: argparse.Namespace, work: Path, size: int) -> int:
    """Bytes the timed suites (not the sparse RSS) still need on the work dir's
    filesystem: the big file (unless already there), its store copy in the collect
    case and dc3dd's or the sha256 case's copy (one at a time, both removed after
    use; kept with --keep), the tree three times (input, cp -r copy, store), ledgers."""
    block = os.statvfs(work).f_bsize or 4096
    big = work / "big.bin"
    have_big = big.exists() and big.stat().st_size == size
    need = 0 if have_big else size
    need += 2 * size if not args.keep else 3 * size
    have_tree = (work / "tree.complete").exists()
    need += (2 if have_tree else 3) * tree_bytes(args.files, block)
    need += 512 * MIB  # ledgers, sqlite journals, key, slack
    return need


# -- the report -------------------------------------------------------------------------


@dataclass
class Row:
    measure: str
    custody: str
    peer: str
    ratio: float | None
    target: str  # e.g. ">= 1.5x", "<= 5x", "0.9-1.1", "-" (reported only)
    verdict: str  # PASS, MISS, info, SKIPPED, FAILED
    noisy: bool = False
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def rate_str(nbytes: int, b: Best) -> str:
    return "-" if not b.seconds else f"{nbytes / b.seconds / 1e6:.0f} MB/s"


def files_str(nfiles: int, b: Best) -> str:
    return "-" if not b.seconds else f"{nfiles / b.seconds:.0f} files/s"


def noisy(*bs: Best) -> bool:
    return any(b.worst_other > NOISY_CORES for b in bs)


def compare(
    report: Report,
    measure: str,
    mine: Best,
    peer: Best,
    peer_name: str,
    fmt: Callable[[Best], str],
    factor: float | None,
) -> None:
    """A throughput row: ratio = peer time / custody time (same work); PASS when it
    reaches ``factor`` (None: reported only)."""
    target = "-" if factor is None else f">= {factor:g}x"
    if not mine.seconds or not peer.seconds:
        failed = mine.failed or peer.failed or "not run"
        report.rows.append(
            Row(measure, fmt(mine), f"{peer_name} {fmt(peer)}", None, target, "FAILED", note=failed)
        )
        return
    ratio = peer.seconds / mine.seconds
    verdict = "info" if factor is None else ("PASS" if ratio >= factor else "MISS")
    report.rows.append(
        Row(
            measure,
            fmt(mine),
            f"{peer_name} {fmt(peer)}",
            ratio,
            target,
            verdict,
            noisy(mine, peer),
        )
    )


def print_table(report: Report) -> None:
    head = ("measure", "custody", "peer", "ratio", "target", "result")
    cells = [head]
    for r in report.rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x" + ("!" if r.noisy else "")
        cells.append((r.measure, r.custody, r.peer, ratio, r.target, r.verdict))
    w = [max(len(c[i]) for c in cells) for i in range(len(head))]

    def line(c: Sequence[str]) -> str:
        return "  ".join(
            (c[i].rjust(w[i]) if i == 3 else c[i].ljust(w[i])) for i in range(len(c))
        ).rstrip()

    print(line(head))
    print("-" * (sum(w) + 2 * (len(w) - 1)))
    for c, r in zip(cells[1:], report.rows, strict=True):
        print(line(c))
        if r.note:
            print(f"    ({r.note})")


def environment(cmd: list[str]) -> list[str]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    model = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    lines = [
        f"CPU: {model}",
        f"cores: {os.cpu_count()} ({usable} usable by this process)",
        f"host: {platform.node()}  {platform.platform()}  python {sys.version.split()[0]}",
    ]
    try:
        with open("/proc/loadavg") as f:
            lines.append("load average: " + " ".join(f.read().split()[:3]))
    except OSError:
        pass
    v = subprocess.run([*cmd, "--version"], capture_output=True, text=True)
    lines.append(f"custody: {v.stdout.strip() or v.stderr.strip()} ({' '.join(cmd)})")
    repo = Path(__file__).resolve().parent.parent
    g = subprocess.run(
        ["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    if g.returncode == 0:
        lines.append(f"source: {repo} @ {g.stdout.strip()}")
    return lines


# -- the suites -----------------------------------------------------------------------


def have(*tools: str) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


def big_suite(args: argparse.Namespace, work: Path, cus: Custody, report: Report) -> None:
    big = work / "big.bin"
    size = big.stat().st_size
    out = work / "out.bin"
    case3 = work / "case-md5-sha1-sha256"
    case256 = work / "case-sha256"
    n = args.repeat
    label = f"{size / GIB:g} GiB" if size >= GIB else f"{size / MIB:g} MiB"
    print(f"\n[1] big file {big} ({label}), best of {n}")

    def warm_big() -> None:
        warm([big])

    def fresh(case: Path) -> Callable[[], None]:
        def f() -> None:
            cus.new_case(case)
            warm_big()

        return f

    def drop_out() -> None:
        rm(out)

    def before_dc3dd() -> None:
        rm(out)
        warm_big()

    collect3 = Cmd(
        "custody collect --hash md5,sha1,sha256",
        cus.collect(case3, big, "--hash", "md5,sha1,sha256"),
        cus.env,
        before=fresh(case3),
    )
    dc3dd = Cmd(
        "dc3dd hash=md5 hash=sha1 hash=sha256",
        ["dc3dd", f"if={big}", f"of={out}", "hash=md5", "hash=sha1", "hash=sha256"],
        before=before_dc3dd,
        after=drop_out,
    )
    md5sum = Cmd("md5sum", ["md5sum", str(big)], before=warm_big)
    res = measure([collect3, dc3dd, md5sum], n)
    fmt = lambda b: rate_str(size, b)  # noqa: E731
    m = f"collect md5+sha1+sha256, {label}"
    compare(report, m, res[collect3.label], res[dc3dd.label], "dc3dd", fmt, 1.5)
    compare(report, m, res[collect3.label], res[md5sum.label], "md5sum", fmt, 0.7)

    # verify: the case of the last collect run is still there
    objs = store_objects(case3)
    if res[collect3.label].seconds and len(objs) == 1:

        def warm_obj() -> None:
            warm(objs)

        verify3 = Cmd(
            "custody verify (md5,sha1,sha256 recorded)", cus.verify(case3), cus.env, before=warm_obj
        )
        hashdeep = Cmd(
            "hashdeep -c md5,sha1,sha256",
            ["hashdeep", "-c", "md5,sha1,sha256", str(big)],
            before=warm_big,
        )
        res.update(measure([verify3, hashdeep, md5sum], n))
        m = f"verify md5+sha1+sha256, {label}"
        compare(report, m, res[verify3.label], res[hashdeep.label], "hashdeep", fmt, 3.0)
        compare(report, m, res[verify3.label], res[md5sum.label], "md5sum", fmt, 0.9)
    else:
        report.rows.append(
            Row(
                f"verify md5+sha1+sha256, {label}",
                "-",
                "-",
                None,
                ">= 3x",
                "FAILED",
                note="no store object from the collect",
            )
        )
    if not args.keep:
        rm(case3)

    collect256 = Cmd(
        "custody collect --hash sha256",
        cus.collect(case256, big, "--hash", "sha256"),
        cus.env,
        before=fresh(case256),
    )
    openssl = Cmd("openssl dgst -sha256", ["openssl", "dgst", "-sha256", str(big)], before=warm_big)
    res.update(measure([collect256], n))
    objs = store_objects(case256)
    if res[collect256.label].seconds and len(objs) == 1:

        def warm_obj256() -> None:
            warm(objs)

        verify256 = Cmd(
            "custody verify (sha256 recorded)", cus.verify(case256), cus.env, before=warm_obj256
        )
        res.update(measure([verify256, openssl], n))
        compare(
            report,
            f"verify sha256 only, {label}",
            res[verify256.label],
            res[openssl.label],
            "openssl",
            fmt,
            0.9,
        )
        compare(
            report,
            f"collect sha256 only, {label}",
            res[collect256.label],
            res[openssl.label],
            "openssl",
            fmt,
            None,
        )
    else:
        report.rows.append(
            Row(
                f"verify sha256 only, {label}",
                "-",
                "-",
                None,
                ">= 0.9x",
                "FAILED",
                note=res[collect256.label].failed or "no object",
            )
        )
    if not args.keep:
        rm(case256)


def tree_suite(
    args: argparse.Namespace, work: Path, cus: Custody, report: Report, files: list[Path]
) -> None:
    tree = work / "tree"
    out = work / "out-tree"
    case = work / "case-tree"
    n = args.repeat
    nfiles = len(files)
    print(f"\n[2] {nfiles} files of {SMALL_SIZE} B in {min(DIRS, nfiles)} directories, best of {n}")

    def warm_tree() -> None:
        warm(files)

    def fresh() -> None:
        cus.new_case(case)
        warm_tree()

    def before_cp() -> None:
        rm(out)
        warm_tree()

    def drop_out() -> None:
        rm(out)

    collect = Cmd("custody collect DIR", cus.collect(case, tree), cus.env, before=fresh)
    hashdeep = Cmd(
        "hashdeep -r -c md5,sha1,sha256",
        ["hashdeep", "-r", "-c", "md5,sha1,sha256", str(tree)],
        before=warm_tree,
    )
    cp = Cmd("cp -r", ["cp", "-r", str(tree), str(out)], before=before_cp, after=drop_out)
    # libmagic alone, as custody calls it (one handle per thread, a thread per core):
    # the MIME part of cataloguing, which hashdeep does not do, timed on its own
    magic_only = Cmd(
        "libmagic alone (python-magic)",
        [interpreter_of(cus.cmd), "-c", MAGIC_ONLY, str(tree)],
        before=warm_tree,
    )
    res = measure([collect, hashdeep, cp, magic_only], n)
    fmt = lambda b: files_str(nfiles, b)  # noqa: E731
    m = f"catalog {nfiles} x 4 KiB (collect DIR)"
    compare(report, m, res[collect.label], res[hashdeep.label], "hashdeep -r", fmt, 1.0)
    compare(
        report,
        f"with the copy, {nfiles} x 4 KiB",
        res[collect.label],
        res[cp.label],
        "cp -r",
        fmt,
        None,
    )
    compare(
        report,
        f"libmagic alone, {nfiles} x 4 KiB",
        res[magic_only.label],
        res[hashdeep.label],
        "hashdeep -r",
        fmt,
        None,
    )
    if not args.keep:
        rm(case)

    py = interpreter_of(cus.cmd)
    k = max(STARTUP_RUNS, n)
    print(f"\n[3] start-up, best of {k}")
    helpc = Cmd("custody --help", [*cus.cmd, "--help"], cus.env)
    bare = Cmd("python -c pass", [py, "-c", "pass"])
    res = measure([helpc, bare], k)
    h, b = res[helpc.label], res[bare.label]
    if h.seconds and b.seconds:
        ratio = h.seconds / b.seconds
        report.rows.append(
            Row(
                "custody --help (time)",
                f"{h.seconds * 1000:.0f} ms",
                f"python -c pass {b.seconds * 1000:.0f} ms",
                ratio,
                "<= 5x",
                "PASS" if ratio <= 5 else "MISS",
                noisy(h, b),
            )
        )
    else:
        report.rows.append(
            Row(
                "custody --help (time)",
                "-",
                "-",
                None,
                "<= 5x",
                "FAILED",
                note=h.failed or b.failed,
            )
        )


def sparse_suite(args: argparse.Namespace, work: Path, cus: Custody, report: Report) -> None:
    small = int(args.size_gib * GIB)
    big = int(args.sparse_gib * GIB)
    sizes = [("sparse-small.bin", small), ("sparse-big.bin", big)]
    print(
        f"\n[4] peak RSS, custody collect of sparse files of {small / GIB:g} and {big / GIB:g} GiB"
    )
    measure_name = f"peak RSS sparse {small / GIB:g} vs {big / GIB:g} GiB"
    rss: list[int] = []
    for name, size in sizes:
        free = shutil.disk_usage(work).free
        need = size + 256 * MIB
        if free < need:
            why = (
                f"collecting the {size / GIB:g} GiB sparse file writes {gib(size)} of zeros"
                f" into the store; {gib(free)} free in {work}, {gib(need)} needed"
            )
            print(f"  SKIPPED: {why}")
            report.rows.append(Row(measure_name, "-", "-", None, "0.9-1.1x", "SKIPPED", note=why))
            return
        path = work / name
        case = work / f"case-{name.removesuffix('.bin')}"
        make_sparse(path, size)
        cus.new_case(case)
        os.sync()
        try:
            r = run_timed(cus.collect(case, path), cus.env)
        finally:
            rm(case)  # its store holds the full apparent size in real zeros
            rm(path)
            os.sync()
        if r.returncode != 0:
            why = f"collect of {name} exit {r.returncode}: {r.output.strip()[-300:]}"
            print(f"  FAILED {why}")
            report.rows.append(Row(measure_name, "-", "-", None, "0.9-1.1x", "FAILED", note=why))
            return
        print(
            f"  custody collect {name:<18} {size / GIB:6g} GiB  {r.seconds:8.1f}s  "
            f"peak RSS {r.max_rss_kib / 1024:7.1f} MiB",
            flush=True,
        )
        rss.append(r.max_rss_kib)
    ratio = rss[1] / rss[0]
    report.rows.append(
        Row(
            measure_name,
            f"{big / GIB:g} GiB: {rss[1] / 1024:.1f} MiB",
            f"{small / GIB:g} GiB: {rss[0] / 1024:.1f} MiB",
            ratio,
            "0.9-1.1x",
            "PASS" if 0.9 <= ratio <= 1.1 else "MISS",
        )
    )
    if not USE_TIME:
        report.notes.append(
            f"{TIME_BIN} missing: peak RSS from wait4(), floored at this script's own RSS"
        )


def selftest_cost(work: Path, cus: Custody, report: Report, repeat: int) -> None:
    """What a fresh case adds to every collect: start-up, key, ledger, self-test."""
    tiny = work / "tiny.bin"
    tiny.write_bytes(b"x")
    case_on, case_off = work / "case-tiny-selftest", work / "case-tiny-noselftest"
    cmds = [
        Cmd(
            "custody collect 1 byte, fresh case",
            cus.collect(case_on, tiny),
            cus.env,
            before=lambda: cus.new_case(case_on),
        )
    ]
    if cus.has_no_selftest:
        cmds.append(
            Cmd(
                "custody collect 1 byte, --no-selftest",
                cus.collect(case_off, tiny, "--no-selftest"),
                cus.env,
                before=lambda: cus.new_case(case_off),
            )
        )
    print(f"\n[0] fixed cost of a collect into a fresh case, best of {repeat}")
    res = measure(cmds, repeat)
    on = res[cmds[0].label].seconds
    off = res[cmds[1].label].seconds if len(cmds) > 1 else None
    if on is not None and off is not None:
        report.notes.append(
            f"every collect above goes into a fresh case and includes its self-test: a 1-byte "
            f"collect takes {on:.2f} s with it, {off:.2f} s with --no-selftest, so the "
            f"self-test costs about {max(0.0, on - off):.2f} s per case"
        )
    elif on is not None:
        report.notes.append(
            f"a 1-byte collect into a fresh case (self-test included) takes "
            f"{on:.2f} s; this custody has no --no-selftest to subtract it"
        )
    for c in (case_on, case_off):
        rm(c)
    tiny.unlink(missing_ok=True)


# -- main ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument(
        "--size-gib",
        type=float,
        help="big file and small sparse file, GiB (default 2; --quick 0.25)",
    )
    ap.add_argument(
        "--files", type=int, help="number of 4 KiB files (default 50000; --quick 5000; 0 skips)"
    )
    ap.add_argument(
        "--sparse-gib",
        type=float,
        help="big sparse file, GiB (default 16; --quick 2; 0 skips the RSS check)",
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        help="work directory (default: a new temp dir under the current directory;"
        " a given one keeps its inputs for the next run)",
    )
    ap.add_argument(
        "--keep",
        action="store_true",
        help="keep the work directory and the timed cases (not the sparse ones)",
    )
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: 256 MiB, 5,000 files, 2 GiB sparse"
    )
    ap.add_argument(
        "--repeat", type=int, default=2, help="runs per timed command, best taken (default 2)"
    )
    ap.add_argument("--custody", default="custody", help="custody executable")
    args = ap.parse_args(argv)
    preset = QUICK if args.quick else DEFAULTS
    for k, v in preset.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.repeat = max(1, args.repeat)

    missing = have("dc3dd", "md5sum", "hashdeep", "openssl", "cp", "cat")
    if missing:
        print(f"error: not installed: {', '.join(missing)}", file=sys.stderr)
        return 2
    cmd = resolve_custody(args.custody)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        work, created = args.workdir.resolve(), False
    else:
        work, created = Path(tempfile.mkdtemp(prefix="custody-field-", dir=os.getcwd())), True
    size = int(args.size_gib * GIB)
    need = needed_main(args, work, size)
    free = shutil.disk_usage(work).free
    if need > free:
        print(
            f"error: this run needs about {gib(need)} free in {work} (a {gib(size)} file, "
            f"its store copy and dc3dd's copy, {args.files} small files three times, "
            f"ledgers); only {gib(free)} is free.  Use --workdir on a larger file system, "
            f"or smaller --size-gib / --files.",
            file=sys.stderr,
        )
        if created:
            rm(work)
        return 2

    env_lines = environment(cmd)
    print("\n".join(env_lines))
    print(
        f"work dir: {work} ({gib(free)} free, about {gib(need)} needed"
        f" + {args.sparse_gib:g} GiB for the sparse RSS check)"
    )
    report = Report()
    try:
        cus = Custody(cmd, work)
        cus.make_key()
        t0 = time.perf_counter()
        if size:
            make_big(work / "big.bin", size)
        files = small_tree(work / "tree", args.files) if args.files else []
        os.sync()
        print(f"inputs ready in {time.perf_counter() - t0:.1f}s")

        selftest_cost(work, cus, report, args.repeat)
        if size:
            big_suite(args, work, cus, report)
        if files:
            tree_suite(args, work, cus, report, files)
        if size and args.sparse_gib:
            sparse_suite(args, work, cus, report)

        print("\n" + "=" * 78)
        print("\n".join(environment(cmd)))  # again: the load average at the end
        print(
            f"best of {args.repeat} runs (start-up: {max(STARTUP_RUNS, args.repeat)}), inputs "
            "in the page cache; ratio: custody throughput / peer's (time for --help, RSS "
            "big/small for the sparse files); MB/s = 10^6 B/s\n"
        )
        print_table(report)
        if any(r.noisy for r in report.rows):
            report.notes.append(
                f"'!': other processes used more than {NOISY_CORES} cores "
                "during at least one run of that comparison; rerun on an idle "
                "machine"
            )
        for note in report.notes:
            print(f"note: {note}")
        verdicts = [r.verdict for r in report.rows if r.verdict in ("PASS", "MISS")]
        print(
            f"\n{verdicts.count('PASS')} PASS, {verdicts.count('MISS')} MISS"
            + "".join(
                f", {sum(r.verdict == v for r in report.rows)} {v}"
                for v in ("SKIPPED", "FAILED")
                if any(r.verdict == v for r in report.rows)
            )
        )
    finally:
        if args.keep or not created:
            for leftover in ("out.bin", "out-tree"):
                rm(work / leftover)
            print(f"\nwork dir kept: {work}")
        else:
            rm(work)
    return 1 if any(r.verdict == "FAILED" for r in report.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
