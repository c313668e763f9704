#!/usr/bin/env python3
"""Ledger and Merkle-proof throughput: the performance targets of issue 3.

    python benchmarks/ledger.py [--events 100000] [--tree 1000000] [--batch 1000]
                                [--repeat 20] [--workdir DIR] [--keep]

1. **append**: creates a case in a temporary directory, collects one small file
   (so the events have a real item to name) and appends ``--events`` signed
   ``note`` events through the library (``custody.ledger.Ledger.append`` with a
   ``Signer`` built from a fresh Ed25519 key), ``--batch`` drafts per call, i.e.
   per ``BEGIN IMMEDIATE`` transaction.  Each event is canonicalised (RFC 8785),
   hashed, chained, signed, inserted, indexed (``event_items``) and added to the
   stored Merkle tree (``merkle_nodes``).  Reports events/s.
2. **verify --quick**: runs ``custody verify --quick --quiet`` on that case in a
   subprocess (chain, canonical form, every signature, custody replay, derived
   tables, re-derived tree, recorded checkpoints; no store re-hash).  Reports
   seconds and events/s.
3. **proofs**: one inclusion and one consistency proof, median of ``--repeat``
   runs, in milliseconds, from

   * the ledger's ``StoredTree`` (the real ledger, ``--events`` + a few leaves),
     built fresh for each proof (``custody checkpoint`` reads its root so);
   * the tree ``custody prove`` answers from: recomputed from the event bodies,
     hash chain and every stored node checked (``custody.checkpoint.body_tree``,
     one pass over the ledger; seconds, one run);
   * a ``StoredTree`` over a synthetic ``merkle_nodes`` table of ``--tree``
     leaves (the same SQL lookups a million-event ledger would make);
   * a ``custody.merkle.TreeCache`` of ``--tree`` synthetic leaves, at size
     ``--events`` and at ``--tree``.

   Every proof timed is also verified (untimed) with ``custody.merkle``.

Targets (issue 3, "Performance"): at least 5,000 signed events/s appended in
batches; proofs under 10 ms at a million leaves.  They are printed as PASS/MISS;
the script exits 0 unless something crashes or a proof does not verify.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody import __version__, merkle
from custody.checkpoint import body_tree
from custody.collect import collect
from custody.hashing import parse_algorithms
from custody.keys import Signer
from custody.ledger import EventDraft, Ledger, StoredTree

APPEND_TARGET = 5_000  # signed events/s, appended in batches
PROOF_TARGET_MS = 10.0  # at a million leaves
SEED = 20261127


def fmt_rate(n: float) -> str:
    return f"{n:,.0f}"


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# -- 1. append ----------------------------------------------------------------------


def build_ledger(case_dir: Path, events: int, batch: int) -> tuple[Ledger, float, float, int]:
    """Create the case and append ``events`` signed note events.  Returns the open
    ledger, the wall and CPU seconds the appends took and the number of events."""
    ledger = Ledger.create(case_dir, "BENCH-LEDGER", "ledger benchmark")
    signer = Signer(Ed25519PrivateKey.generate(), "Bench Examiner", "examiner")
    sample = case_dir.parent / "sample.txt"
    sample.write_text("benchmark evidence\n")
    collect(ledger, signer, [str(sample)], reason="benchmark", algorithms=parse_algorithms(None))
    item = ledger.artifacts()[0]["id"]
    before = ledger.event_count()
    done = 0
    c0 = time.process_time()
    t0 = time.perf_counter()
    last_report = t0
    while done < events:
        n = min(batch, events - done)
        drafts = [
            EventDraft(
                "note",
                {
                    "items": [item],
                    "reason": f"benchmark note {done + i}: examiner's remark on the image",
                    "location": "lab 2",
                },
            )
            for i in range(n)
        ]
        ledger.append(signer, drafts)
        done += n
        now = time.perf_counter()
        if now - last_report >= 10:
            print(f"    ... {done:,} events, {fmt_rate(done / (now - t0))}/s", flush=True)
            last_report = now
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    assert ledger.event_count() == before + events
    return ledger, elapsed, cpu, done


# -- 2. verify --quick ------------------------------------------------------------


def custody_argv() -> list[str]:
    exe = shutil.which("custody")
    return [exe] if exe else [sys.executable, "-m", "custody_cli.main"]


def run_verify(case_dir: Path) -> tuple[float, float, int, str]:
    """Wall and CPU seconds (of the child) of ``custody verify --quick --quiet``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    argv = [*custody_argv(), "verify", "--quick", "--quiet", "--case", str(case_dir)]
    before = os.times()
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return elapsed, cpu, p.returncode, (p.stdout + p.stderr).strip()


# -- 3. proofs ----------------------------------------------------------------------


def proof_times(
    label: str,
    tree_of: Callable[[], merkle.TreeCache],
    size: int,
    repeat: int,
    rng: random.Random,
) -> tuple[float, float]:
    """Median ms of one inclusion and one consistency proof at ``size``; each proof
    is verified against the root (untimed)."""
    tree = tree_of()
    root = tree.root(size)
    index = rng.randrange(size)
    old = rng.randrange(1, size)
    old_root = tree.root(old)

    def incl() -> list[bytes]:
        return tree_of().inclusion_proof(index, size)

    def cons() -> list[bytes]:
        return tree_of().consistency_proof(old, size)

    merkle.verify_inclusion(tree.leaf_hash(index), index, size, incl(), root)
    merkle.verify_consistency(old, size, cons(), old_root, root)
    t_incl = median_ms(incl, repeat)
    t_cons = median_ms(cons, repeat)
    print(
        f"  {label:<44} inclusion {t_incl:7.3f} ms   consistency {t_cons:7.3f} ms"
        f"   (leaf {index:,}, old size {old:,})",
        flush=True,
    )
    return t_incl, t_cons


def synthetic_leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(8, "big")) for i in range(n)]


def synthetic_stored_tree(path: Path, cache: merkle.TreeCache) -> sqlite3.Connection:
    """A SQLite file with a ``merkle_nodes`` table (same DDL as migration 002) holding
    every complete subtree of ``cache``: what a ledger of that many events stores."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE merkle_nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL,"
        " hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID"
    )
    conn.execute("BEGIN")

    def rows() -> Iterator[tuple[int, int, bytes]]:
        n = len(cache)
        level = 0
        while n >> level:
            for i in range(n >> level):
                yield level, i, cache._node(level, i)
            level += 1

    conn.executemany("INSERT INTO merkle_nodes (level, idx, hash) VALUES (?, ?, ?)", rows())
    conn.execute("COMMIT")
    return conn


# -- main -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000, help="signed events to append")
    ap.add_argument("--tree", type=int, default=1_000_000, help="synthetic tree size")
    ap.add_argument("--batch", type=int, default=1000, help="events per Ledger.append call")
    ap.add_argument("--repeat", type=int, default=20, help="proof timings per median")
    ap.add_argument("--workdir", type=Path, help="where to create the case (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    if args.events < 2 or args.tree < 2 or args.batch < 1 or args.repeat < 1:
        ap.error("--events and --tree must be at least 2, --batch and --repeat at least 1")

    work = Path(tempfile.mkdtemp(prefix="custody-bench-ledger-", dir=args.workdir))
    rng = random.Random(SEED)
    print(
        f"custody {__version__} ledger benchmark: Python {platform.python_version()},"
        f" SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, {platform.platform()}"
    )
    print(f"work directory {work}; load average {loadavg()}")
    results: dict[str, float] = {}
    try:
        case_dir = work / "case"
        print(f"\n1. append {args.events:,} signed events, {args.batch} per transaction")
        ledger, secs, cpu, n = build_ledger(case_dir, args.events, args.batch)
        results["append_rate"] = n / secs
        results["append_cpu_rate"] = n / cpu
        print(f"  appended {n:,} events in {secs:.2f} s: {fmt_rate(n / secs)} events/s")
        print(
            f"  this process used {cpu:.2f} s of CPU: {fmt_rate(n / cpu)} events per CPU-second"
            " (what an idle core would allow, fsync waits aside)"
        )
        total = ledger.event_count()
        db_mib = sum(p.stat().st_size for p in case_dir.glob("custody.db*") if p.is_file()) / (
            1 << 20
        )
        print(f"  ledger: {total:,} events, custody.db + WAL {db_mib:.1f} MiB")

        print(f"\n2. custody verify --quick --quiet over {total:,} events (subprocess)")
        secs, cpu, rc, out = run_verify(case_dir)
        results["verify_secs"] = secs
        print(
            f"  exit {rc} in {secs:.2f} s: {fmt_rate(total / secs)} events/s"
            f" ({cpu:.2f} s CPU: {fmt_rate(total / cpu if cpu else 0)} events per CPU-second)"
        )
        print("  " + (out.splitlines()[-1] if out else "(no output)"))
        if rc != 0:
            print(out)
            return 1

        print(f"\n3. proofs, median of {args.repeat} (ms)")
        stored = ledger.tree
        t_si, t_sc = proof_times(f"ledger StoredTree at {total:,}", stored, total, args.repeat, rng)
        t0 = time.perf_counter()
        body_tree(ledger)
        print(
            f"  tree recomputed from {total:,} event bodies and checked (custody prove):"
            f" {time.perf_counter() - t0:.2f} s"
        )
        ledger.close()

        t0 = time.perf_counter()
        cache = merkle.TreeCache(synthetic_leaves(args.tree))
        build = time.perf_counter() - t0
        print(f"  (TreeCache of {args.tree:,} synthetic leaves built in {build:.2f} s)")
        small = min(args.events, args.tree)
        proof_times(
            f"TreeCache at {small:,}",
            lambda: cache,
            small,
            args.repeat,
            rng,
        )
        t_ci, t_cc = proof_times(
            f"TreeCache at {args.tree:,}", lambda: cache, args.tree, args.repeat, rng
        )

        t0 = time.perf_counter()
        conn = synthetic_stored_tree(work / "nodes.db", cache)
        build = time.perf_counter() - t0
        print(f"  (merkle_nodes table of {args.tree:,} leaves written in {build:.2f} s)")
        t_mi, t_mc = proof_times(
            f"StoredTree (SQLite) at {args.tree:,}",
            lambda: StoredTree(conn),
            args.tree,
            args.repeat,
            rng,
        )
        conn.close()
    finally:
        if args.keep:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nload average at the end {loadavg()} (other processes share these CPUs)")
    big = f"{args.tree:,} leaves"
    print("\nTargets (issue 3):")
    rate = results["append_rate"]
    print(
        f"  {verdict(rate >= APPEND_TARGET)}  append >= {APPEND_TARGET:,} signed events/s"
        f" in batches: {fmt_rate(rate)}/s"
        f" ({fmt_rate(results['append_cpu_rate'])} per CPU-second)"
    )
    for label, ms in (
        (f"TreeCache inclusion at {big}", t_ci),
        (f"TreeCache consistency at {big}", t_cc),
        (f"StoredTree inclusion at {big}", t_mi),
        (f"StoredTree consistency at {big}", t_mc),
    ):
        print(f"  {verdict(ms < PROOF_TARGET_MS)}  {label} < {PROOF_TARGET_MS:g} ms: {ms:.3f} ms")
    print(
        f"  info  ledger StoredTree at {args.events:,}+ events: inclusion {t_si:.3f} ms,"
        f" consistency {t_sc:.3f} ms; verify --quick {results['verify_secs']:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
