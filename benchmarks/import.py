"""Lab import throughput: many collectors' bundles into one case, against
bagit-python's validation of the same bundles.

    python benchmarks/import.py [--bundles 20] [--items 5000] [--size 4096]
                                [--workdir DIR] [--keep]

Builds BUNDLES source cases (hosts of one incident: every one case id NC-001, one
collector key), each collecting ITEMS random files of SIZE bytes, and exports each
as a folder bundle (untimed).  Then times, in one run:

* `custody bundle import` of every bundle into one lab case whose owner trusts the
  collector's key (`custody trust add`): each bundle staged, verified (bag,
  payload digests, signatures, proofs, trust) and its payload written to the store;
* `custody verify` of the merged case (every imported event and object re-checked);
* `bagit.py --validate` of every bundle (payload digests only).

Prints items/s for each and the target of issue 14: import at least 0.5x bagit's
validation rate (import also writes every object).  Exit 0 unless something fails
to run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CPU: dict[str, float] = {}  # command label -> CPU seconds (user + system) of its processes


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(cmd: list[str], env: dict[str, str], label: str = "") -> float:
    subprocess.run(["sync"], check=False)
    cpu = _children_cpu()
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    CPU[label] = CPU.get(label, 0.0) + _children_cpu() - cpu
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return dt


def quiet(cmd: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundles", type=int, default=20)
    ap.add_argument("--items", type=int, default=5000, help="items per bundle")
    ap.add_argument("--size", type=int, default=4096, help="bytes per item")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="custody-import-bench-", dir="."))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CUSTODY_CONFIG_DIR": str(work / "cfg"), "CUSTODY_PASSPHRASE": "bench"}
    custody = [sys.executable, "-m", "custody_cli.main"]
    try:
        for who, role in (("collector", "collector"), ("lab", "examiner")):
            pem = str(work / f"{who}.pem")
            if os.path.exists(pem):  # kept from an earlier run, with its bundles
                continue
            new = ["key", "new", "--name", who.title(), "--role", role, "--out", pem]
            quiet([*custody, *new, "--no-default"], env)
        collector = {**env, "CUSTODY_KEY": str(work / "collector.pem")}
        lab_env = {**env, "CUSTODY_KEY": str(work / "lab.pem")}
        bundles = []
        t0 = time.perf_counter()
        for b in range(args.bundles):
            out = work / f"bundle{b:02d}"
            if (out / "bagit.txt").is_file():  # kept from an earlier run (--workdir, --keep)
                bundles.append(out)
                continue
            src = work / f"host{b:02d}"
            for i in range(args.items):
                d = src / f"d{i % 50:02d}"
                d.mkdir(parents=True, exist_ok=True)
                (d / f"f{i:05d}.bin").write_bytes(os.urandom(args.size))
            case = work / f"case{b:02d}"
            quiet([*custody, "init", str(case), "--case-id", "NC-001", "--title", f"host {b}"],
                  collector)  # fmt: skip
            quiet([*custody, "collect", "--case", str(case), "--reason", "r", "--quiet", str(src)],
                  collector)  # fmt: skip
            quiet([*custody, "bundle", "export", "--all", "--case", str(case), "--out", str(out)],
                  collector)  # fmt: skip
            shutil.rmtree(src)
            bundles.append(out)
        setup = time.perf_counter() - t0
        lab = work / "lab"
        shutil.rmtree(lab, ignore_errors=True)
        quiet([*custody, "init", str(lab), "--case-id", "LAB-1", "--title", "lab"], lab_env)
        quiet([*custody, "trust", "add", str(work / "collector.pub"), "--case", str(lab)], lab_env)
        # every bundle carries its case's directory entries too: count what bagit counts
        files = sum(1 for b in bundles for p in (b / "data").rglob("*") if p.is_file())
        t_import = timed(
            [*custody, "bundle", "import", "--case", str(lab), *map(str, bundles)],
            lab_env,
            "import",
        )
        t_verify = timed([*custody, "verify", "--quiet", "--case", str(lab)], lab_env, "verify")
        bagit = shutil.which("bagit.py")
        t_bagit = (
            sum(timed([bagit, "--validate", str(b)], env, "bagit") for b in bundles)
            if bagit
            else None
        )
        mb = files * args.size / 1e6
        print(
            f"{args.bundles} bundles x {args.items} items ({files} payload files,"
            f" {mb:.0f} MB), set up in {setup:.0f} s"
        )
        print(
            f"  custody bundle import (all, one lab case) {t_import:8.2f} s"
            f"  {files / t_import:9.0f} items/s  {CPU['import']:7.2f} s CPU"
            "  (stage, verify, trust, store)"
        )
        print(
            f"  custody verify (merged case)              {t_verify:8.2f} s"
            f"  {files / t_verify:9.0f} items/s  {CPU['verify']:7.2f} s CPU"
        )
        if t_bagit is None:
            print("  bagit.py --validate      skipped: bagit.py not installed (pip install bagit)")
            return
        print(
            f"  bagit.py --validate (each bundle)         {t_bagit:8.2f} s"
            f"  {files / t_bagit:9.0f} items/s  {CPU['bagit']:7.2f} s CPU  (digests only)"
        )
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"load average at the end: {load} ({os.cpu_count()} CPUs)")
        ratio = t_bagit / t_import
        verdict = "PASS" if ratio >= 0.5 else "MISS"
        print(f"target: import at least 0.5x bagit's validation rate: {verdict} ({ratio:.2f}x)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
