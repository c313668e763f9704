"""Small-file collection against the pipeline a user would otherwise script (issue 16).

      python benchmarks/collect_small.py [--files 50000] [--size 4096] [--runs 3]
                                       [--baseline /path/to/older/checkout]

Timed back to back in each run, on the same tree (page cache warm):

* peer: ``cp -r TREE OUT && hashdeep -r -c md5,sha1,sha256 TREE`` (a copy plus three
  digests; no signature, no record);
* ``custody collect --no-describe --no-selftest`` into a fresh case: copy, three
  digests, metadata, one signed record per item (the collection record);
* the same with ``CUSTODY_READERS=0`` (every file read in the collector's own
  process: how much the reader processes give);
* ``--baseline DIR``: the same collect by the custody of another checkout (its
  ``custody/`` and ``cli/``), e.g. the main branch before this change;
* typing: ``custody describe --all`` on that case (objects/s) against libmagic
  alone (python-magic, custody's own two calls per file, one process per core).

Each line also gives the CPU time the command used per file (its own and its
children's, user + system): on a loaded machine wall times follow the cores
left over, the CPU per file much less.  custody runs with its compiled modules
cached (as an installed package has them), whatever PYTHONDONTWRITEBYTECODE says.

Printed: files/s of each, custody's ratio to the peer per run, the median, and
the target (>= 0.5x).  File creation on a shared disk is noisy: every run is
shown, and the CPU other processes used meanwhile (cores) flags a disturbed run.
Exit 0 unless something fails to run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Run, make_tree, rm, run_quiet, run_timed, warm

PASSPHRASE = "benchmark passphrase"
TARGET = 0.5

_LIBMAGIC_ALONE = r"""
import os, sys
from multiprocessing import Pool
from custody import filetype

def chunk(paths):
    h = filetype.open_handles()
    for p in paths:
        filetype.detect(p, h)
    return len(paths)

paths = [os.path.join(d, f) for d, _, fs in os.walk(sys.argv[1]) for f in fs]
n = len(os.sched_getaffinity(0))
with Pool(n) as pool:
    print(sum(pool.map(chunk, [paths[i::n] for i in range(n)])))
"""


class Custody:
    """The custody CLI (this checkout's, or ``baseline``'s) with its own config."""

    def __init__(self, work: Path, baseline: Path | None = None) -> None:
        self.work = work
        self.env = {k: v for k, v in os.environ.items() if k not in ("CUSTODY_CASE", "CUSTODY_KEY")}
        self.env["CUSTODY_PASSPHRASE"] = PASSPHRASE
        self.env["CUSTODY_CONFIG_DIR"] = str(work / "config")
        # compiled modules cached, as an installed package has them (the untimed set-up
        # commands write them): a shell with PYTHONDONTWRITEBYTECODE would otherwise
        # time the compilation of every module custody imports, on every run
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        self.key = work / "bench-key.pem"
        self.argv0 = [sys.executable, "-P", "-m", "custody_cli.main"]  # -P: not the cwd first
        if baseline is not None:  # its packages first on the path, under their installed names
            pkgs = work / "baseline-path"
            pkgs.mkdir(parents=True, exist_ok=True)
            for name, target in (("custody", "custody"), ("custody_cli", "cli")):
                link = pkgs / name
                if not link.exists():
                    link.symlink_to(baseline / target)
            self.env["PYTHONPATH"] = str(pkgs)
        self.n = 0
        # a checkout from before typing moved after the run has no --no-describe
        cli = (baseline or Path(__file__).resolve().parent.parent) / "cli"
        self.describes = any("no-describe" in p.read_text() for p in cli.glob("*.py"))

    def __call__(self, *args: str) -> list[str]:
        return [*self.argv0, *args]

    def setup(self) -> None:
        if not self.key.exists():
            run_quiet(
                self(
                    "key",
                    "new",
                    "--name",
                    "Bench",
                    "--role",
                    "collector",
                    "--out",
                    str(self.key),
                    "--no-default",
                ),
                env=self.env,
            )

    def fresh_case(self, case: Path) -> None:
        rm(case)
        self.n += 1
        run_quiet(
            self("init", str(case), "--case-id", f"BENCH-{self.n}", "--title", "bench"),
            env={**self.env, "CUSTODY_KEY": str(self.key)},
        )

    def collect(self, case: Path, tree: Path, *extra: str) -> list[str]:
        return self(
            "collect",
            "--reason",
            "bench",
            "--quiet",
            "--no-selftest",
            "--key",
            str(self.key),
            "--case",
            str(case),
            *extra,
            str(tree),
        )


def rate(n: int, r: Run) -> float:
    return n / r.seconds if r.seconds > 0 else 0.0


def line(label: str, n: int, r: Run, peer: float | None = None) -> str:
    ratio = f"{rate(n, r) / peer:6.2f}x" if peer else "       "
    other = f"{r.other_cores:.2f}" if r.other_cores is not None else "?"
    cpu = f"{r.cores * r.seconds / n * 1e6:5.0f}" if r.cores is not None and n else "    ?"
    return (
        f"  {label:<46} {r.seconds:8.2f} s {rate(n, r):9.0f} /s {ratio}"
        f"  cpu {cpu} us/file  rss {r.max_rss_kib / 1024:4.0f} MiB  others {other} cores"
    )


def checked(r: Run, what: str) -> Run:
    if r.returncode != 0:
        raise SystemExit(f"{what} failed ({r.returncode}): {r.output[-2000:]}")
    return r


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--files", type=int, default=50_000, help="small files (default 50000)")
    ap.add_argument("--size", type=int, default=4096, help="bytes per file (default 4096)")
    ap.add_argument("--dirs", type=int, default=100, help="folders (default 100)")
    ap.add_argument("--content", choices=("random", "text"), default="random")
    ap.add_argument("--runs", type=int, default=3, help="runs (default 3)")
    ap.add_argument("--baseline", type=Path, help="another checkout to time beside this one")
    ap.add_argument("--no-typing", action="store_true", help="skip the typing measures")
    ap.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="custody-small-"))
    work.mkdir(parents=True, exist_ok=True)
    tree, out, case = work / "tree", work / "out", work / "case"
    try:
        files = make_tree(tree, args.files, args.size, args.dirs, args.content)
        n = len(files)
        cus = Custody(work)
        cus.setup()
        base = None
        if args.baseline is not None:
            base = Custody(work / "baseline", args.baseline.resolve())
            base.key = cus.key
        hashdeep = shutil.which("hashdeep")
        cpus = len(os.sched_getaffinity(0))
        print(f"{n} files of {args.size} B ({args.content}) in {args.dirs} folders; {cpus} CPUs")
        print(f"  load average {os.getloadavg()[0]:.2f} at the start")
        if hashdeep is None:
            print("  peer skipped: hashdeep is not installed (apt-get install hashdeep)")
        ratios: dict[str, list[float]] = {}
        for k in range(1, args.runs + 1):
            print(f"run {k}:")
            rm(out)
            warm(files)
            peer = None
            if hashdeep is not None:
                r = checked(
                    run_timed(
                        [
                            "sh",
                            "-c",
                            'cp -r "$1" "$2" && hashdeep -r -c md5,sha1,sha256 "$1" > /dev/null',
                            "sh",
                            str(tree),
                            str(out),
                        ]
                    ),
                    "cp -r + hashdeep",
                )
                rm(out)
                peer = rate(n, r)
                print(line("cp -r, then hashdeep -r -c md5,sha1,sha256", n, r))
            variants: list[tuple[str, Custody, dict[str, str]]] = [
                ("custody collect --no-describe", cus, {}),
                ("  same, CUSTODY_READERS=0 (no reader processes)", cus, {"CUSTODY_READERS": "0"}),
            ]
            if base is not None:
                variants.append((f"  same, baseline {args.baseline}", base, {}))
            for label, tool, extra_env in variants:
                tool.fresh_case(case)
                warm(files)
                r = checked(
                    run_timed(
                        tool.collect(case, tree, *(["--no-describe"] if tool.describes else [])),
                        env={**tool.env, **extra_env},
                    ),
                    label,
                )
                print(line(label, n, r, peer))
                if peer:
                    ratios.setdefault(label, []).append(rate(n, r) / peer)
            if not args.no_typing and k == 1:
                r = checked(
                    run_timed(
                        cus(
                            "describe",
                            "--all",
                            "--quiet",
                            "--case",
                            str(case),
                            "--key",
                            str(cus.key),
                        ),
                        env=cus.env,
                    ),
                    "custody describe --all",
                )
                print(line("custody describe --all (typing, objects/s)", n, r))
                r = checked(
                    run_timed([sys.executable, "-c", _LIBMAGIC_ALONE, str(tree)], env=cus.env),
                    "libmagic alone",
                )
                print(line(f"libmagic alone (python-magic, {cpus} processes)", n, r))
        if ratios:
            print("median ratio to cp -r + hashdeep (target >= 0.5x):")
            for label, rs in ratios.items():
                med = statistics.median(rs)
                verdict = "PASS" if med >= TARGET else "MISS"
                runs = ", ".join(f"{x:.2f}" for x in rs)
                print(f"  {label.strip():<48} {med:5.2f}x  {verdict}  (runs: {runs})")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
