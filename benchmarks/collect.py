#!/usr/bin/env python3
"""Throughput of ``custody collect`` against the usual forensic peers.

    python benchmarks/collect.py [--size-mib 1024] [--small-files 20000]
                                 [--workdir DIR] [--keep] [--repeat N]

Builds, in a work directory (default: a new temporary directory under the
current directory, so on the filesystem the user cares about):

* ``big.bin``: ``--size-mib`` MiB of random bytes (and ``quarter.bin``, a quarter
  of that, used only to show custody's peak RSS does not grow with file size);
* ``tree/``: ``--small-files`` files of ``--small-size`` bytes spread over
  ``--dirs`` directories; random bytes, or syslog-like text with
  ``--small-content text`` (libmagic, which custody runs on every file, costs
  several times more on text than on random "data").

Every input is read once (``cat > /dev/null``) so that peers and custody all
read from the page cache, then each tool is timed in this same invocation:

    openssl dgst -sha256, sha256sum, md5sum        (hash only)
    hashdeep -c md5,sha1,sha256 [-r]                (three digests, no copy)
    dc3dd hash=md5 hash=sha1 hash=sha256 if= of=    (three digests + copy)
    cp [-r]                                         (copy only)
    custody collect --quiet                         (copy + md5 + sha1 + sha256
                                                    + fsync + read-back + libmagic
                                                    + signed ledger record)
    custody verify --quiet / --quick                (re-hash store / ledger only)

dc3dd takes one input file, so for the tree it runs in a shell loop over a sample
of ``--dc3dd-tree-files`` files (default 1000; 0 skips it, -1 loops over all) and
its files/s is extrapolated from the sample; the table says so.  Neither cp nor
dc3dd fsyncs its output while custody does, so ``cp + sync`` and ``dc3dd + sync``
rows are shown as well (the targets are judged against the plain, faster
dc3dd).  Between timed runs the script calls sync(2) (untimed) so that dirty
pages left by one tool are not written back on the next tool's clock.

Each timing is the best of ``--repeat`` runs (default 3 for the big file, 1 for
the tree).  "cores" is the tool's own CPU time over its wall time (how parallel
it is, or how much it waits); "other" is the CPU (in cores, steal included) that
other processes used during the best run, from /proc/stat minus the tool's own
rusage (kernel writeback threads count as other, so "cp + sync" rows may show
some); a "!" marks runs above 0.25 cores, whose times are pessimistic.  Peak RSS comes
from ``/usr/bin/time -f %M`` if present, else from ``wait4(2)`` on the child (then
never below this script's own RSS).  MB/s is 10^6 bytes per second.  The spec
targets (custody >= 1.5x dc3dd and >= 2x hashdeep) are printed as PASS/MISS; they
are informational and the script exits 0 unless something crashes.
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
    MIB,
    NOISY_CORES,
    make_big,
    make_tree,
    rm,
    run_quiet,
    run_timed,
    warm,
)

PASSPHRASE = "custody-benchmark-passphrase"
TARGETS = (("dc3dd", 1.5), ("hashdeep", 2.0))
REFERENCES = ("dc3dd", "hashdeep", "md5sum")
CUSTODY_COLLECT = "custody collect (md5,sha1,sha256)"


# -- running things ---------------------------------------------------------------


@dataclass
class Result:
    tool: str
    seconds: float | None = None  # best of the runs
    max_rss_kib: int | None = None  # peak over the runs
    other_cores: float | None = None  # CPU load from other processes during the best run
    cores: float | None = None  # the tool's own CPU seconds per wall second, best run
    runs: int = 0
    note: str = ""
    failed: str = ""
    extrapolated_from: int | None = None  # files actually processed (dc3dd sample loop)
    ref: str | None = None  # this row is the reference named in REFERENCES / TARGETS
    extra: dict[str, float] = field(default_factory=dict)


def settle() -> None:
    """Write back dirty pages left by the previous run, off the clock."""
    os.sync()


def bench(
    tool: str,
    argv: Sequence[str] | None,
    repeat: int,
    *,
    env: dict[str, str] | None = None,
    before: Callable[[], None] | None = None,
    after: Callable[[], None] | None = None,
    missing: str | None = None,
    note: str = "",
    ref: str | None = None,
) -> Result:
    """Best wall time of ``repeat`` runs of ``argv``.  ``before`` prepares a fresh
    destination (untimed); ``after`` removes what the run wrote (untimed)."""
    res = Result(tool, note=note, ref=ref)
    if missing:
        res.note = f"skipped: {missing} not installed"
        print(f"  {tool:<34} {res.note}", flush=True)
        return res
    assert argv is not None
    for _ in range(repeat):
        if before is not None:
            before()
        settle()
        r = run_timed(argv, env=env)
        if r.returncode != 0:
            res.failed = f"exit {r.returncode}: {r.output.strip()[-400:]}"
            print(f"  {tool:<34} FAILED {res.failed}", flush=True)
            if after is not None:
                after()
            return res
        res.runs += 1
        if res.seconds is None or r.seconds < res.seconds:
            res.seconds = r.seconds
            res.other_cores = r.other_cores
            res.cores = r.cores
        res.max_rss_kib = max(res.max_rss_kib or 0, r.max_rss_kib)
        if after is not None:
            after()
    noise = "" if res.other_cores is None else f"  other CPU {res.other_cores:4.2f} cores"
    print(
        f"  {tool:<34} best {res.seconds:8.3f}s of {res.runs}  peak RSS "
        f"{(res.max_rss_kib or 0) / 1024:7.1f} MiB{noise}",
        flush=True,
    )
    return res


def have(binary: str) -> str | None:
    """None if ``binary`` is on PATH, else its name (the reason to skip)."""
    return None if shutil.which(binary) else binary


# -- custody --------------------------------------------------------------------------


class Custody:
    def __init__(self, exe: str, work: Path) -> None:
        self.exe = exe
        self.work = work
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("CUSTODY_CASE", "CUSTODY_KEY", "CUSTODY_PASSPHRASE")
        }
        self.env["CUSTODY_PASSPHRASE"] = PASSPHRASE
        self.env["CUSTODY_CONFIG_DIR"] = str(work / "config")
        self.key = work / "bench-key.pem"
        self.env["CUSTODY_KEY"] = str(self.key)  # init signs the case with its owner's key
        self._n = 0

    def make_key(self) -> None:
        if self.key.exists():
            return
        run_quiet(
            [
                self.exe,
                "key",
                "new",
                "--name",
                "Benchmark Collector",
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
            [
                self.exe,
                "init",
                str(case),
                "--case-id",
                f"BENCH-{self._n}",
                "--title",
                "custody benchmark",
            ],
            env=self.env,
        )

    def collect_argv(self, case: Path, path: Path) -> list[str]:
        return [
            self.exe,
            "collect",
            "--reason",
            "test",
            "--quiet",
            "--key",
            str(self.key),
            "--case",
            str(case),
            str(path),
        ]

    def verify_argv(self, case: Path, quick: bool) -> list[str]:
        return [self.exe, "verify", "--quick" if quick else "--quiet", "--case", str(case)]


# -- the report -------------------------------------------------------------------------


def _fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def throughput(res: Result, nbytes: int, nfiles: int) -> tuple[float, float] | None:
    """(MB/s, files/s) or None."""
    if res.seconds is None or res.seconds <= 0:
        return None
    files = res.extrapolated_from if res.extrapolated_from is not None else nfiles
    fraction = files / nfiles if nfiles else 1.0
    return nbytes * fraction / res.seconds / 1e6, files / res.seconds


def print_table(
    title: str, results: Sequence[Result], nbytes: int, nfiles: int, per_file: bool
) -> dict[str, float]:
    """Print the table; returns each tool's throughput (MB/s, or files/s)."""
    rates: dict[str, float] = {}  # tool -> rate, and ref name -> rate
    for r in results:
        t = throughput(r, nbytes, nfiles)
        if t is not None:
            rates[r.tool] = t[1] if per_file else t[0]
            if r.ref:
                rates[r.ref] = rates[r.tool]
    unit = "files/s" if per_file else "MB/s"
    head = (
        f"{'tool':<34} {'time s':>8} {unit:>9} {'MB/s' if per_file else '':>8} "
        + " ".join(f"{'vs ' + ref:>11}" for ref in REFERENCES)
        + f" {'peak RSS':>10} {'cores':>6} {'other':>6}"
    )
    print()
    print(title)
    print(head)
    print("-" * len(head))
    for r in results:
        if r.seconds is None:
            why = r.failed or r.note or "not run"
            print(f"{r.tool:<34} {why}")
            continue
        t = throughput(r, nbytes, nfiles)
        assert t is not None
        rate = t[1] if per_file else t[0]
        ratios = []
        for ref in REFERENCES:
            ratios.append(_fmt_ratio(rate / rates[ref] if ref in rates else None))
        rss = f"{(r.max_rss_kib or 0) / 1024:.0f} MiB"
        mbs = f"{t[0]:8.1f}" if per_file else f"{'':>8}"
        other = "-" if r.other_cores is None else f"{r.other_cores:.2f}"
        if r.other_cores is not None and r.other_cores > NOISY_CORES:
            other += "!"
        cores = "-" if r.cores is None else f"{r.cores:.2f}"
        print(
            f"{r.tool:<34} {r.seconds:8.3f} {rate:9.1f} {mbs} "
            + " ".join(f"{x:>11}" for x in ratios)
            + f" {rss:>10} {cores:>6} {other:>6}"
        )
        if r.note:
            print(f"{'':<36}({r.note})")
    noisy = [r.tool for r in results if r.other_cores is not None and r.other_cores > NOISY_CORES]
    if noisy:
        print(
            f"! other processes used more than {NOISY_CORES} cores during the best run of: "
            + ", ".join(noisy)
            + " (their times are pessimistic; rerun on an idle machine)"
        )
    return rates


def print_targets(label: str, rates: dict[str, float], custody_tool: str) -> None:
    mine = rates.get(custody_tool)
    for ref, factor in TARGETS:
        if mine is None or ref not in rates:
            print(
                f"  target [{label}] custody >= {factor}x {ref}: n/a "
                f"({'custody' if mine is None else ref} not measured)"
            )
            continue
        ratio = mine / rates[ref]
        verdict = "PASS" if ratio >= factor else "MISS"
        print(
            f"  target [{label}] custody >= {factor}x {ref}: {verdict} "
            f"({ratio:.2f}x: {mine:.1f} vs {rates[ref]:.1f})"
        )


def environment(custody_exe: str) -> list[str]:
    lines = [
        f"host: {platform.node()}  {platform.platform()}",
        f"cpus: {os.cpu_count()}  python: {sys.version.split()[0]}",
    ]
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    lines.append("cpu: " + line.split(":", 1)[1].strip())
                    break
    except OSError:
        pass
    try:
        with open("/proc/loadavg") as f:
            lines.append("load average: " + " ".join(f.read().split()[:3]))
    except OSError:
        pass
    v = subprocess.run([custody_exe, "--version"], capture_output=True, text=True)
    lines.append(f"custody: {v.stdout.strip() or v.stderr.strip()}")
    repo = Path(__file__).resolve().parent.parent
    g = subprocess.run(
        ["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    if g.returncode == 0:
        lines.append(f"source: {repo} @ {g.stdout.strip()}")
    return lines


# -- the benchmark --------------------------------------------------------------------


def big_file_suite(args: argparse.Namespace, work: Path, cus: Custody) -> list[Result]:
    big = work / "big.bin"
    out = work / "out.bin"
    case = work / "case-big"
    n = args.repeat or 3
    size = big.stat().st_size
    print(f"\nBig file: {big} ({size / MIB:.0f} MiB), best of {n}")

    def drop_out() -> None:
        rm(out)

    results = [
        bench(
            "openssl dgst -sha256",
            ["openssl", "dgst", "-sha256", str(big)],
            n,
            missing=have("openssl"),
        ),
        bench("sha256sum", ["sha256sum", str(big)], n, missing=have("sha256sum")),
        bench("md5sum", ["md5sum", str(big)], n, missing=have("md5sum"), ref="md5sum"),
        bench(
            "hashdeep -c md5,sha1,sha256",
            ["hashdeep", "-c", "md5,sha1,sha256", str(big)],
            n,
            missing=have("hashdeep"),
            ref="hashdeep",
        ),
        bench(
            "dc3dd md5+sha1+sha256 (copy)",
            ["dc3dd", "hash=md5", "hash=sha1", "hash=sha256", f"if={big}", f"of={out}"],
            n,
            before=drop_out,
            after=drop_out,
            missing=have("dc3dd"),
            ref="dc3dd",
        ),
        bench(
            "dc3dd md5+sha1+sha256 + sync",
            [
                "sh",
                "-c",
                'dc3dd hash=md5 hash=sha1 hash=sha256 if="$1" of="$2" && sync "$2"',
                "sh",
                str(big),
                str(out),
            ],
            n,
            before=drop_out,
            after=drop_out,
            missing=have("dc3dd"),
            note="dc3dd then fsync of its output, like custody",
        ),
        bench(
            "cp", ["cp", str(big), str(out)], n, before=drop_out, after=drop_out, missing=have("cp")
        ),
        bench(
            "cp + sync",
            ["sh", "-c", 'cp "$1" "$2" && sync "$2"', "sh", str(big), str(out)],
            n,
            before=drop_out,
            after=drop_out,
            missing=have("cp"),
        ),
    ]

    def fresh_case() -> None:
        cus.new_case(case)

    collect = bench(
        CUSTODY_COLLECT,
        cus.collect_argv(case, big),
        n,
        env=cus.env,
        before=fresh_case,
        note="copy + 3 digests + fsync + read-back + libmagic + signed record",
    )
    results.append(collect)
    if collect.seconds is not None:
        # the last run's case is still there (bench only removes on failure)
        results.append(
            bench("custody verify (re-hash store)", cus.verify_argv(case, False), n, env=cus.env)
        )
        results.append(
            bench(
                "custody verify --quick",
                cus.verify_argv(case, True),
                n,
                env=cus.env,
                note="ledger only: not a throughput, time shown",
            )
        )
    rm(case)
    return results


def rss_scaling(args: argparse.Namespace, work: Path, cus: Custody) -> list[tuple[int, int]]:
    """custody's peak RSS collecting size/4 and size: it should not grow."""
    case = work / "case-rss"
    rows = []
    for name in ("quarter.bin", "big.bin"):
        path = work / name
        cus.new_case(case)
        settle()
        r = run_timed(cus.collect_argv(case, path), env=cus.env)
        if r.returncode != 0:
            print(f"  custody collect {name} FAILED ({r.returncode}): {r.output.strip()[-400:]}")
            continue
        rows.append((path.stat().st_size, r.max_rss_kib))
        rm(case)
    return rows


def small_file_suite(
    args: argparse.Namespace, work: Path, cus: Custody, files: list[Path]
) -> list[Result]:
    tree = work / "tree"
    out = work / "out-tree"
    case = work / "case-tree"
    n = args.repeat or 1
    print(
        f"\nSmall files: {tree} ({len(files)} {args.small_content} files of {args.small_size} B"
        f" in {min(args.dirs, len(files))} directories), best of {n}"
    )

    def drop_out() -> None:
        rm(out)

    # md5sum & co. take many files per process; xargs batches the list as a shell would
    listing = work / "tree.list0"
    listing.write_bytes(b"".join(os.fsencode(p) + b"\0" for p in files))

    def xargs(*cmd: str) -> list[str]:
        return ["xargs", "-0", "-a", str(listing), *cmd]

    results = [
        bench(
            "openssl dgst -sha256 (xargs)",
            xargs("openssl", "dgst", "-sha256"),
            n,
            missing=have("openssl"),
        ),
        bench("sha256sum (xargs)", xargs("sha256sum"), n, missing=have("sha256sum")),
        bench("md5sum (xargs)", xargs("md5sum"), n, missing=have("md5sum"), ref="md5sum"),
        bench(
            "hashdeep -r -c md5,sha1,sha256",
            ["hashdeep", "-r", "-c", "md5,sha1,sha256", str(tree)],
            n,
            missing=have("hashdeep"),
            ref="hashdeep",
        ),
    ]

    sample = len(files) if args.dc3dd_tree_files < 0 else min(args.dc3dd_tree_files, len(files))
    if sample == 0 or have("dc3dd"):
        why = "dc3dd not installed" if have("dc3dd") else "--dc3dd-tree-files 0"
        results.append(Result("dc3dd (per-file loop)", note=f"skipped: {why}"))
    else:
        script = work / "dc3dd-loop.sh"
        lines = ["set -e"]
        for i, p in enumerate(files[:sample]):
            lines.append(
                f"dc3dd hash=md5 hash=sha1 hash=sha256 'if={p}' "
                f"'of={out}/{i:06d}.bin' >/dev/null 2>&1"
            )

        def make_out() -> None:
            rm(out)
            out.mkdir()

        script.write_text("\n".join(lines) + "\n")
        dc = bench(
            "dc3dd (per-file loop)",
            ["sh", str(script)],
            n,
            before=make_out,
            after=drop_out,
            note=f"one dc3dd process per file, {sample} files"
            + ("" if sample == len(files) else ", files/s extrapolated")
            + "; dc3dd idles ~0.1 s per run in timed waits (see 'cores'),"
            " so this measures its start-up, not its hashing",
            ref="dc3dd",
        )
        dc.extrapolated_from = sample
        results.append(dc)

    results.append(
        bench(
            "cp -r",
            ["cp", "-r", str(tree), str(out)],
            n,
            before=drop_out,
            after=drop_out,
            missing=have("cp"),
        )
    )
    results.append(
        bench(
            "cp -r + sync",
            ["sh", "-c", 'cp -r "$1" "$2" && sync -f "$2"', "sh", str(tree), str(out)],
            n,
            before=drop_out,
            after=drop_out,
            missing=have("cp"),
            note="sync -f: syncfs of the work dir's filesystem",
        )
    )

    def fresh_case() -> None:
        cus.new_case(case)

    collect = bench(
        CUSTODY_COLLECT, cus.collect_argv(case, tree), n, env=cus.env, before=fresh_case
    )
    results.append(collect)
    if collect.seconds is not None:
        results.append(
            bench("custody verify (re-hash store)", cus.verify_argv(case, False), n, env=cus.env)
        )
        results.append(
            bench(
                "custody verify --quick",
                cus.verify_argv(case, True),
                n,
                env=cus.env,
                note="ledger only: signatures + chain + index",
            )
        )
    if not args.keep:
        rm(case)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--size-mib", type=int, default=1024, help="big file size (default 1024)")
    ap.add_argument(
        "--small-files",
        type=int,
        default=20000,
        help="number of small files (default 20000; 0 skips the tree)",
    )
    ap.add_argument("--small-size", type=int, default=4096, help="bytes per small file")
    ap.add_argument("--dirs", type=int, default=100, help="directories for the small files")
    ap.add_argument(
        "--small-content",
        choices=("random", "text"),
        default="random",
        help="small files' bytes: random (default) or syslog-like text, which"
        " makes libmagic (custody's file typing) several times costlier",
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        help="work directory (default: a new temp dir under the current directory)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument(
        "--repeat", type=int, help="runs per measurement, best taken (default 3 big, 1 small)"
    )
    ap.add_argument(
        "--dc3dd-tree-files",
        type=int,
        default=1000,
        help="files in the dc3dd per-file loop on the tree (0 skip, -1 all)",
    )
    ap.add_argument("--custody", default="custody", help="custody executable")
    args = ap.parse_args(argv)

    exe = shutil.which(args.custody)
    if exe is None:
        print(f"error: {args.custody} not found on PATH", file=sys.stderr)
        return 2
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        work = args.workdir.resolve()
        created = False
    else:
        work = Path(tempfile.mkdtemp(prefix="custody-bench-", dir=os.getcwd()))
        created = True
    print("\n".join(environment(exe)))
    print(f"work dir: {work}")
    try:
        cus = Custody(exe, work)
        cus.make_key()
        size = args.size_mib * MIB
        t0 = time.perf_counter()
        inputs: list[Path] = []
        if size:
            make_big(work / "big.bin", size)
            make_big(work / "quarter.bin", size // 4)
            inputs += [work / "big.bin", work / "quarter.bin"]
        files: list[Path] = []
        if args.small_files:
            files = make_tree(
                work / "tree", args.small_files, args.small_size, args.dirs, args.small_content
            )
        os.sync()
        print(f"inputs ready in {time.perf_counter() - t0:.1f}s; warming the page cache")
        warm(inputs + files)

        big_results: list[Result] = []
        rss: list[tuple[int, int]] = []
        if size:
            big_results = big_file_suite(args, work, cus)
            print("\nPeak RSS of custody collect vs file size:")
            rss = rss_scaling(args, work, cus)
            for nbytes, kib in rss:
                print(f"  {nbytes / MIB:8.0f} MiB file: peak RSS {kib / 1024:6.1f} MiB")
        small_results: list[Result] = []
        if files:
            small_results = small_file_suite(args, work, cus, files)

        print("\n" + "=" * 100)
        print("\n".join(environment(exe)))
        custody_tool = CUSTODY_COLLECT
        if big_results:
            rates = print_table(
                f"Big file, {size / MIB:.0f} MiB (MB/s = 10^6 B/s; best of {args.repeat or 3})",
                big_results,
                size,
                1,
                per_file=False,
            )
            print()
            print_targets("big file", rates, custody_tool)
            if len(rss) == 2:
                grow = rss[1][1] / rss[0][1] if rss[0][1] else float("nan")
                print(
                    f"  custody peak RSS: {rss[0][1] / 1024:.1f} MiB at "
                    f"{rss[0][0] / MIB:.0f} MiB, {rss[1][1] / 1024:.1f} MiB at "
                    f"{rss[1][0] / MIB:.0f} MiB ({grow:.2f}x for 4x the data): "
                    + ("flat" if grow < 1.2 else "GROWS with file size")
                )
        if small_results:
            nbytes = len(files) * args.small_size
            rates = print_table(
                f"Small files, {len(files)} x {args.small_size} B "
                f"{args.small_content} (best of {args.repeat or 1})",
                small_results,
                nbytes,
                len(files),
                per_file=True,
            )
            print()
            print_targets("small files", rates, custody_tool)
        print(
            "\nTargets are informational: custody default (copy + md5 + sha1 + sha256 + "
            "record) should reach >= 1.5x dc3dd and >= 2x hashdeep throughput."
        )
    finally:
        if args.keep or not created:
            print(f"\nwork dir kept: {work}")
        else:
            rm(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
