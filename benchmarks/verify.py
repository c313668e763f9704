#!/usr/bin/env python3
"""`custody verify --quick` against raw Ed25519 verification (issue 16).

    python benchmarks/verify.py [--events 100000] [--repeat 2] [--workdir DIR] [--keep]

Builds a case of ``--events`` signed ``note`` events (as ``benchmarks/ledger.py``
does, untimed; its owner's key is the verifier's), then times, in alternation, best of ``--repeat``:

* ``custody verify --quick --quiet`` of that case (a subprocess: chain, canonical
  form, every signature on worker processes, custody replay, derived tables,
  re-derived tree), in events/s;
* ``custody verify --quick --incremental`` after a first such run (a full check)
  recorded the owner's signed "verified through N" note and 1,000 more events
  were appended (once, after the repeated runs);
* raw Ed25519 verification by the same library (``cryptography``): the same
  number of (key, signature, message) triples, messages of the ledger's body
  size, one key object per signer as a fast caller would keep it, on one core
  (this process) and on two (two forked processes, half each), in signatures/s.

Prints the ratio of verify --quick's events/s to the two-core signature rate;
the target is at least 0.7 (PASS/MISS, informational: exit 0 unless something
fails to run).  The machine's load average is printed: other processes on a
shared host make both sides slower, which the ratio (measured in the same run)
mostly absorbs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ledger import custody_argv, fmt_rate, loadavg

from custody import __version__
from custody.keys import Signer, generate_key
from custody.ledger import EventDraft, Ledger

TARGET = 0.7  # verify --quick events/s over raw Ed25519 signatures/s on both cores


def _triples(n: int, size: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes_raw()
    out = []
    for i in range(n):
        msg = (b"%09d" % i) + b"x" * max(0, size - 9)
        out.append((key.sign(msg), msg))
    return pub, out


def _verify_all(pub: bytes, pairs: list[tuple[bytes, bytes]]) -> int:
    k = Ed25519PublicKey.from_public_bytes(pub)
    for sig, msg in pairs:
        k.verify(sig, msg)
    return len(pairs)


def raw_rate(pub: bytes, pairs: list[tuple[bytes, bytes]], procs: int) -> tuple[float, float]:
    """Signatures verified per second by ``procs`` processes sharing the work, and
    per CPU-second (measured for one process only; else 0)."""
    if procs == 1:
        t0, c0 = time.perf_counter(), time.process_time()
        _verify_all(pub, pairs)
        return len(pairs) / (time.perf_counter() - t0), len(pairs) / (time.process_time() - c0)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(procs) as pool:
        pool.map(abs, range(procs))  # the workers exist before the clock starts
        parts = [pairs[i::procs] for i in range(procs)]
        t0 = time.perf_counter()
        done = sum(pool.starmap(_verify_all, [(pub, p) for p in parts]))
        return done / (time.perf_counter() - t0), 0.0


PASSPHRASE = b"benchmark passphrase"


def _drafts(start: int, n: int) -> list[EventDraft]:
    return [
        EventDraft(
            "note",
            {
                "items": [],
                "reason": f"benchmark note {start + i}: examiner's remark on the image",
                "location": "lab 2",
            },
        )
        for i in range(n)
    ]


def build_case(case_dir: Path, key: Path, events: int) -> tuple[Signer, float]:
    """A case owned by a new key (written to ``key``) holding ``events`` signed
    notes, appended 1,000 per transaction.  Returns the signer and the seconds."""
    signer, _ = generate_key("Bench Verifier", "examiner", PASSPHRASE, key)
    t0 = time.perf_counter()
    with Ledger.create(case_dir, "BENCH-VERIFY", "verify benchmark", owner=signer) as ledger:
        done = 0
        while done < events:
            n = min(1000, events - done)
            ledger.append(signer, _drafts(done, n))
            done += n
    return signer, time.perf_counter() - t0


CPU = {"verify": 0.0}  # CPU seconds of the last run_verify (its process and workers)


def run_verify(case_dir: Path, *extra: str) -> tuple[float, int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    argv = [*custody_argv(), "verify", "--quick", "--quiet", *extra, "--case", str(case_dir)]
    before = os.times()
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    after = os.times()
    CPU["verify"] = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return secs, p.returncode, (p.stdout + p.stderr).strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000, help="signed events in the case")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per measure, best taken")
    ap.add_argument("--workdir", type=Path, help="where to create the case (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    if args.events < 2 or args.repeat < 1:
        ap.error("--events must be at least 2, --repeat at least 1")
    work = Path(tempfile.mkdtemp(prefix="custody-bench-verify-", dir=args.workdir))
    print(
        f"custody {__version__} verify benchmark: Python {platform.python_version()},"
        f" {os.cpu_count()} CPUs, {platform.platform()}"
    )
    print(f"work directory {work}; load average {loadavg()}")
    try:
        case_dir = work / "case"
        key = work / "verifier.pem"
        signer, secs = build_case(case_dir, key, args.events)
        with Ledger.open(case_dir, write=False) as ledger:
            total = ledger.event_count()
            size = sum(len(ev.body) for ev in ledger.events()) // total
        print(f"case of {total:,} events (mean body {size} bytes) built in {secs:.1f} s")
        pub, pairs = _triples(total, size)

        best: dict[str, float] = {}
        for _ in range(args.repeat):
            s, rc, out = run_verify(case_dir)
            if rc != 0:
                print(out)
                return 1
            best["verify"] = max(best.get("verify", 0.0), total / s)
            best["verify_cpu"] = max(best.get("verify_cpu", 0.0), total / CPU["verify"])
            for procs in (1, 2):
                r, per_cpu = raw_rate(pub, pairs, procs)
                best[f"raw{procs}"] = max(best.get(f"raw{procs}", 0.0), r)
                best["raw_cpu"] = max(best.get("raw_cpu", 0.0), per_cpu)

        pf = work / "passphrase"
        pf.write_bytes(PASSPHRASE)
        inc_args = ("--incremental", "--key", str(key), "--passphrase-file", str(pf))
        first, rc, out = run_verify(case_dir, *inc_args)  # full, records the note
        if rc != 0:
            print(out)
            return 1
        with Ledger.open(case_dir) as ledger:
            ledger.append(signer, _drafts(total, 1000))
            inc_total = ledger.event_count()
        inc_secs, rc, out = run_verify(case_dir, *inc_args)
        if rc != 0 or "not checked again" not in out:
            print(out)
            return 1
        inc = inc_total / inc_secs

        ratio = best["verify"] / best["raw2"]
        print()
        print(f"{'measure':<48}{'rate/s':>12}")
        print(f"{'custody verify --quick (events)':<48}{best['verify']:>12,.0f}")
        print(f"{'raw Ed25519 verify, 1 core (signatures)':<48}{best['raw1']:>12,.0f}")
        print(f"{'raw Ed25519 verify, 2 cores (signatures)':<48}{best['raw2']:>12,.0f}")
        print(f"{'verify --quick --incremental, 1,000 new (events)':<48}{inc:>12,.0f}")
        print(
            f"  (first --incremental run, a full check recording the note: {first:.2f} s;"
            f" then {inc_secs:.2f} s for {fmt_rate(inc_total)} events)"
        )
        verdict = "PASS" if ratio >= TARGET else "MISS"
        print(
            f"\nratio verify --quick / raw Ed25519 on 2 cores: {ratio:.2f}"
            f" (target >= {TARGET}): {verdict}; load average now {loadavg()}"
        )
        cpu_ratio = best["verify_cpu"] / best["raw_cpu"]
        print(
            f"per CPU-second: verify --quick {best['verify_cpu']:,.0f} events (its process and"
            f" workers), raw Ed25519 {best['raw_cpu']:,.0f} signatures: {cpu_ratio:.2f}, the"
            " ratio two idle cores would give when both saturate them (a shared host's"
            " load barely moves it)"
        )
        extra = 1e6 / best["verify_cpu"] - 1e6 / best["raw_cpu"]
        print(
            f"CPU per event beyond its signature check: {extra:.1f} us (parsing, canonical"
            " form, chain, tree, replay, derived tables, worker traffic, process start)"
        )
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
