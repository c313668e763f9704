"""`custody report` at scale (issue 16): a synthetic case of N items and ~3N events,
each format's time and peak RSS, and the verification it runs timed apart.

    python benchmarks/report.py [--items 100000 10000] [--formats pdf html csv json]
                                [--cache /tmp/custody-report-bench] [--rebuild]

The case is built once per size and cached (``--cache``): the events are signed
directly through the library (``Ledger.append``), not by running ``collect`` N
times.  Per item: a collect event, a note and a seal; every 100 items are handed
over (transfer and receipt) in one pair of events, so N items give 3.02 N events.
Most items share one stored object (the store is content-addressed); one item in
1,000 has its own, and three of those are tampered with, so the report has failing
items to put first.

For each size and format, ``custody report --format F`` runs in a child process
(peak RSS from ``/usr/bin/time`` when installed) with ``CUSTODY_REPORT_VERIFIED``
unset; the time beyond verification is the child's total minus ``custody verify``
of the same case (full: the store is re-hashed), timed in the same run.  Targets
(issue 16): PDF and HTML < 60 s and < 1 GiB, CSV and JSON < 20 s, at 100,000 items.

``--in-process`` verifies once (``compact=True``, as ``case_report`` runs it: the
bodies kept for the report share their strings) and times each format's model and
rendering in a forked child, streamed to a file as the CLI does; it prints CPU seconds and the load
average beside each wall time (the machine may be shared: CPU seconds are the
figure that load does not inflate much).  A child's peak RSS includes the memory
of the verification it inherits.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import sys
import time
from pathlib import Path

from _common import run_timed
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from custody.collect import collect
from custody.hashing import parse_algorithms
from custody.keys import Identity, Signer
from custody.ledger import COLLECT_EVENT, EventDraft, Ledger
from custody.lifecycle import RECEIVE_EVENT, TRANSFER_EVENT
from custody.store import object_relpath

BATCH = 2000
PER_TRANSFER = 100
TAMPERED = 3
GIB = 1 << 30


def _digests(data: bytes) -> dict[str, str]:
    return {
        "md5": hashlib.md5(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _put(store: Path, data: bytes) -> str:
    rel = object_relpath(hashlib.sha256(data).hexdigest())
    dest = store / rel
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        dest.chmod(0o400)
    return rel


def build(case_dir: Path, n: int) -> None:
    """A case of ``n`` items and about 3.02 ``n`` events, signed through the library."""
    work = case_dir.parent
    dana = Signer(Ed25519PrivateKey.generate(), "Dana Reyes", "collector")
    lee_key = Ed25519PrivateKey.generate()
    lee = Signer(lee_key, "Lee Okafor", "counsel")
    ledger = Ledger.create(case_dir, f"BENCH-{n}", f"report benchmark, {n} items")
    sample = work / "sample.txt"
    sample.write_bytes(b"shared evidence bytes\n")
    collect(ledger, dana, [str(sample)], reason="template", algorithms=parse_algorithms(None))
    template = next(e for e in ledger.events() if e.type == COLLECT_EVENT).data
    raw = lee_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ledger.register_identity(dana, Identity("Lee Okafor", "counsel", raw))
    store = case_dir / "store"
    shared = (template["store"], template["digests"], template["size"])
    done = 1
    t0 = time.perf_counter()
    while done < n:
        drafts = []
        for i in range(done, min(n, done + BATCH)):
            data = dict(template)
            if i % 1000 == 0:
                content = f"evidence {i}\n".encode()
                rel, digests, size = _put(store, content), _digests(content), len(content)
            else:
                rel, digests, size = shared
            path = f"/srv/payroll/home/user{i // 100}/file-{i}.txt"
            data.update(
                path={"display": path, "hex": path.encode().hex()},
                store=rel,
                digests=digests,
                size=size,
                source={**template["source"], "inode": str(100000 + i), "size": size},
            )
            drafts.append(EventDraft(COLLECT_EVENT, data, new_item=True))
        ledger.append(dana, drafts)
        done += len(drafts)
    items = [f"ITEM-{i}" for i in range(1, n + 1)]
    for start in range(0, n, BATCH):
        chunk = items[start : start + BATCH]
        ledger.append(
            dana,
            [
                EventDraft("note", {"items": [i], "reason": f"catalogued {i}", "location": ""})
                for i in chunk
            ],
        )
    for start in range(0, n, PER_TRANSFER * 20):
        r = ledger.rules().current()
        group = items[start : start + PER_TRANSFER * 20]
        for k in range(0, len(group), PER_TRANSFER):
            part = group[k : k + PER_TRANSFER]
            (tev,) = ledger.append(
                dana,
                [
                    EventDraft(
                        TRANSFER_EVENT,
                        {
                            "items": part,
                            "to": lee.fingerprint,
                            "to_name": "Lee Okafor",
                            "reason": "for counsel, review",
                            "location": "Room 4, HQ",
                            "digests": {i: r.items[i].digests for i in part},
                        },
                    )
                ],
            )
            ledger.append(
                lee,
                [
                    EventDraft(
                        RECEIVE_EVENT,
                        {
                            "transfer": tev.hash,
                            "transfer_seq": tev.seq,
                            "transfer_id": f"TRANSFER-{tev.seq}",
                            "items": {
                                i: {
                                    "expected": r.items[i].digests,
                                    "found": r.items[i].digests,
                                    "match": True,
                                }
                                for i in part
                            },
                            "location": "Counsel's office, safe 2",
                            "reason": "received",
                        },
                    )
                ],
            )
    for start in range(0, n, BATCH):
        chunk = items[start : start + BATCH]
        ledger.append(
            lee,
            [
                EventDraft("seal", {"items": [i], "reason": "sealed in bag", "location": "safe 2"})
                for i in chunk
            ],
        )
    count = ledger.event_count()
    ledger.close()
    # tamper with three items' own stored copies
    for i in (1000, 2000, 3000)[:TAMPERED]:
        if i >= n:
            continue
        obj = store / object_relpath(hashlib.sha256(f"evidence {i}\n".encode()).hexdigest())
        obj.chmod(0o600)
        obj.write_bytes(b"tampered\n")
        obj.chmod(0o400)
    print(f"  built {n:,} items, {count:,} events in {time.perf_counter() - t0:.0f} s", flush=True)


def cached_case(cache: Path, n: int, rebuild: bool) -> Path:
    case_dir = cache / f"case-{n}" / "case"
    done = case_dir.parent / "complete"
    if rebuild or not done.exists():
        shutil.rmtree(case_dir.parent, ignore_errors=True)
        case_dir.parent.mkdir(parents=True)
        build(case_dir, n)
        done.write_text("ok\n")
    return case_dir


def in_process(case_dir: Path, formats: list[str]) -> list[tuple[str, float, int, int]]:
    """Verify once (full: the store re-hashed), timed; then, per format, a forked
    child assembles the model from that verification and renders it: its time is
    the time beyond verification, its peak RSS includes the verification's memory
    (inherited).  Returns (format, seconds, peak RSS KiB, output bytes)."""
    from custody.render import write
    from custody.report import case_report, gc_paused
    from custody.verify import verify_ledger

    ledger = Ledger.open(case_dir, write=False)
    t0, c0 = time.perf_counter(), time.process_time()
    v = verify_ledger(ledger, compact=True)  # as case_report runs it
    print(
        f"  verify (in process): {time.perf_counter() - t0:.1f} s"
        f" (CPU {time.process_time() - c0:.1f} s in this process),"
        f" peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB;"
        f" load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    out = []
    for fmt in formats:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: model and rendering only, written as it goes (as the CLI)
            os.close(r)
            start_rss = _current_rss_kib()
            t, c = time.perf_counter(), time.process_time()
            detail = "auto" if fmt in ("html", "pdf", "json") else "all"
            model = case_report(ledger, verify=v, detail=detail, stream=True)
            target = case_dir.parent / f"inproc.{fmt}"
            with gc_paused(), target.open("wb") as f:
                write(model, fmt, f)
            took, cpu = time.perf_counter() - t, time.process_time() - c
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            grew = max(0, rss - start_rss)
            os.write(w, f"{took} {cpu} {rss} {target.stat().st_size} {grew}".encode())
            os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            took_s, cpu_s, rss_s, size_s, grew_s = f.read().split()
        os.waitpid(pid, 0)
        out.append((fmt, float(took_s), int(rss_s), int(size_s)))
        print(
            f"  {fmt:5} beyond verify {float(took_s):6.1f} s (CPU {float(cpu_s):6.1f} s),"
            f" peak RSS {int(rss_s) / 1024:6.0f} MiB (+{int(grew_s) / 1024:.0f} MiB over the"
            f" verification's), {int(size_s) / 1e6:7.1f} MB;"
            f" load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    ledger.close()
    return out


def _current_rss_kib() -> int:
    """This process's resident set now (KiB), from /proc (0 where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def custody_argv() -> list[str]:
    exe = shutil.which("custody")
    return [exe] if exe else [sys.executable, "-m", "custody_cli.main"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--formats", nargs="+", default=["pdf", "html", "csv", "json"])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/custody-report-bench"))
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="verify once, then time each format's model and rendering in a forked child"
        " (the time beyond verification exactly; faster on a loaded machine)",
    )
    args = ap.parse_args(argv)
    if args.in_process:
        for n in args.items:
            print(f"{n:,} items", flush=True)
            in_process(cached_case(args.cache, n, args.rebuild), args.formats)
        return 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env["SOURCE_DATE_EPOCH"] = "1772445600"
    print(f"custody report benchmark; CPU cores: {os.cpu_count()}; load {os.getloadavg()[0]:.2f}")
    rows = []
    for n in args.items:
        case_dir = cached_case(args.cache, n, args.rebuild)
        out_dir = case_dir.parent / "out"
        out_dir.mkdir(exist_ok=True)
        v = run_timed([*custody_argv(), "verify", "--quiet", "--case", str(case_dir)], env=env)
        print(
            f"  {n:,} items: verify {v.seconds:.1f} s, peak RSS {v.max_rss_kib / 1024:.0f} MiB"
            f" (exit {v.returncode})",
            flush=True,
        )
        for fmt in args.formats:
            out = out_dir / f"report.{fmt}"
            argv_ = [*custody_argv(), "report", "--quiet", "--format", fmt, "--out", str(out)]
            run = run_timed([*argv_, "--case", str(case_dir)], env=env)
            beyond = run.seconds - v.seconds
            size = out.stat().st_size if out.exists() else 0
            rows.append((n, fmt, run.seconds, beyond, run.max_rss_kib, size, run.returncode))
            print(
                f"  {n:>7,} {fmt:5} total {run.seconds:6.1f} s, beyond verify {beyond:6.1f} s,"
                f" peak RSS {run.max_rss_kib / 1024:6.0f} MiB, {size / 1e6:7.1f} MB"
                f" (exit {run.returncode})",
                flush=True,
            )
            if run.returncode not in (0, 1):
                print(run.output[-2000:])
    print("\nitems    format  beyond-verify  peak RSS   output    target")
    limits = {"pdf": 60.0, "html": 60.0, "csv": 20.0, "json": 20.0}
    for n, fmt, _total, beyond, rss, size, _rc in rows:
        limit = limits.get(fmt)
        ok = limit is None or (beyond < limit and (fmt in ("csv", "json") or rss * 1024 < GIB))
        target = "" if n < 100_000 or limit is None else ("PASS" if ok else "MISS")
        print(
            f"{n:>7,}  {fmt:6} {beyond:9.1f} s  {rss / 1024:6.0f} MiB"
            f"  {size / 1e6:7.1f} MB  {target}"
        )
    by = {(n, f): rss for n, f, _t, _b, rss, _s, _r in rows}
    sizes = sorted(args.items)
    if len(sizes) >= 2:
        small, big = sizes[0], sizes[-1]
        for fmt in args.formats:
            if (small, fmt) in by and (big, fmt) in by:
                print(
                    f"peak RSS {fmt}: {big:,} vs {small:,} items:"
                    f" {by[(big, fmt)] / max(by[(small, fmt)], 1):.2f}x"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
