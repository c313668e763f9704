#!/usr/bin/env python3
"""custody capture of a large command output, against peers in the same run.

    python benchmarks/capture.py [--size-mib 1024] [--repeat 2] [--workdir DIR]

The command captured is ``cat big.bin`` (random bytes, warmed in the page cache),
so every tool reads the same stream from the same producer:

* ``custody capture --hash md5,sha1,sha256 -- cat big.bin`` into a fresh case
  (stdout streamed into the store, read back and compared, three digests, signed);
* ``sh -c 'cat big.bin | tee OUT | sha256sum'``: a copy and one digest, no
  read-back, nothing recorded;
* ``sh -c 'cat big.bin | md5sum'``: MD5 alone, the serial ceiling for three digests.

Prints wall time, throughput, peak RSS of each, and custody's ratio to each peer.
Peak RSS of custody must stay flat whatever ``--size-mib`` (streamed, not held).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MIB, make_big, rm, run_quiet, run_timed, warm


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="capture-bench-", dir=a.workdir or Path.cwd()))
    big = work / "big.bin"
    make_big(big, a.size_mib * MIB)
    env = {**os.environ, "CUSTODY_CONFIG_DIR": str(work / "cfg"), "CUSTODY_PASSPHRASE": "bench"}
    custody = [sys.executable, "-m", "custody_cli.main"]
    run_quiet(
        [
            *custody,
            "key",
            "new",
            "--name",
            "B",
            "--role",
            "collector",
            "--out",
            str(work / "k.pem"),
        ],
        env,
    )
    best: dict[str, tuple[float, int]] = {}
    try:
        for i in range(a.repeat):
            case = work / f"case{i}"
            run_quiet([*custody, "init", str(case), "--case-id", f"B{i}", "--title", "b"], env)
            run_quiet(
                [
                    *custody,
                    "capture",
                    "--no-selftest",
                    "--reason",
                    "warm",
                    "--case",
                    str(case),
                    "--",
                    "true",
                ],
                env,
            )
            runs = {
                "custody capture": [
                    *custody,
                    "capture",
                    "--no-selftest",
                    "--reason",
                    "bench",
                    "--case",
                    str(case),
                    "--",
                    "cat",
                    str(big),
                ],
                "cat | tee | sha256sum": [
                    "sh",
                    "-c",
                    f"cat '{big}' | tee '{work}/out' | sha256sum",
                ],
                "cat | md5sum": ["sh", "-c", f"cat '{big}' | md5sum"],
            }
            for name, argv in runs.items():
                warm([big])
                os.sync()
                r = run_timed(argv, env)
                if r.returncode != 0:
                    raise SystemExit(f"{name} failed: {r.output}")
                if name not in best or r.seconds < best[name][0]:
                    best[name] = (r.seconds, r.max_rss_kib)
                rm(work / "out")
    finally:
        rm(work)
    size = a.size_mib * MIB
    mine = best["custody capture"][0]
    print(f"capture of {a.size_mib} MiB of stdout (best of {a.repeat})")
    for name, (sec, rss) in best.items():
        ratio = sec / mine
        print(
            f"  {name:<24} {sec:7.2f} s  {size / sec / MIB:8.1f} MiB/s  peak RSS"
            f" {rss / 1024:6.1f} MiB  custody throughput = {ratio:.2f}x of it"
        )


if __name__ == "__main__":
    main()
