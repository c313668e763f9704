"""Bundle export and verify throughput against bagit-python's validation.

    python benchmarks/bundle.py [--files 10000] [--size-mib 1024] [--workdir DIR] [--keep]

Builds a case holding FILES random files totalling SIZE, exports it as a folder
bundle, then times in one run: `custody bundle export`, `custody bundle verify`
(bag completeness, payload digests, every signature, every inclusion proof) and
`bagit.py --validate` (payload digests only) on the same bundle.  Target (issue 4):
custody's verify at least as fast as bagit's validation.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], env: dict[str, str]) -> float:
    subprocess.run(["sync"], check=False)
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="custody-bundle-bench-", dir="."))
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CUSTODY_CONFIG_DIR": str(work / "cfg"),
        "CUSTODY_PASSPHRASE": "bench",
        "CUSTODY_CASE": str(work / "case"),
    }
    custody = [sys.executable, "-m", "custody_cli.main"]
    try:
        src = work / "src"
        per = max(1, args.size_mib * (1 << 20) // args.files)
        for i in range(args.files):
            d = src / f"d{i % 100:02d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i:05d}.bin").write_bytes(os.urandom(per))
        key = work / "bench.pem"
        subprocess.run(
            [
                *custody,
                "key",
                "new",
                "--name",
                "Bench",
                "--role",
                "collector",
                "--out",
                str(key),
                "--no-default",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        env["CUSTODY_KEY"] = str(key)
        subprocess.run(
            [*custody, "init", str(work / "case"), "--case-id", "B-1", "--title", "bench"],
            env=env,
            check=True,
            capture_output=True,
        )
        t_collect = timed([*custody, "collect", "--reason", "test", "--quiet", str(src)], env)
        total = args.files * per
        bundle = work / "bundle"
        t_export = timed([*custody, "bundle", "export", "--all", "--out", str(bundle)], env)
        trust = ["--trust", str(key.with_suffix(".pub"))]  # without a key: never VERIFIED, exit 1
        t_verify = min(
            timed([*custody, "bundle", "verify", str(bundle), *trust], env) for _ in range(2)
        )
        bagit = shutil.which("bagit.py")
        t_bagit = (
            min(timed([bagit, "--validate", str(bundle)], env) for _ in range(2)) if bagit else None
        )
        mb = total / 1e6
        print(f"{args.files} files, {mb:.0f} MB payload")
        print(f"  custody collect          {t_collect:8.2f} s  {mb / t_collect:8.1f} MB/s")
        print(f"  custody bundle export    {t_export:8.2f} s  {mb / t_export:8.1f} MB/s")
        print(
            f"  custody bundle verify    {t_verify:8.2f} s  {mb / t_verify:8.1f} MB/s"
            " (bag, digests, signatures, proofs)"
        )
        if t_bagit is None:
            print("  bagit.py --validate      skipped: bagit.py not installed (pip install bagit)")
        else:
            rate = mb / t_bagit
            print(f"  bagit.py --validate      {t_bagit:8.2f} s  {rate:8.1f} MB/s (digests)")
            verdict = "PASS" if t_verify <= t_bagit else "MISS"
            print(
                f"target: custody bundle verify at least as fast as bagit: {verdict}"
                f" ({t_bagit / t_verify:.2f}x)"
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
