"""Crash consistency of ``custody collect`` (issue 6 §1).

A ``kill -9`` at any moment of a collection must leave a ledger that ``verify``
accepts, no half-recorded artifact, and no store object the ledger does not
explain (an interrupted copy's orphans, complete objects no event names, are
kept: the next run records them in a ``store.cleanup`` event's ``kept`` list and
removes only temporary files; nothing ever deletes a complete object).  The interrupted run shows as unfinished in
``custody log`` and ``custody collect --resume`` finishes it without recollecting
what is already recorded.

The kill loop is seeded (``CUSTODY_CRASH_SEED`` overrides the seed; every
assertion message names it).  The kill *delays* are reproducible; where a kill
lands also depends on the machine's speed, which is why the loop kills across the
whole span of a collection, from interpreter start-up to the last commit.
``CUSTODY_CRASH_KILLS`` changes the number of kills (default 30: about 17 of them
land mid-run, and the test requires 10) and ``CUSTODY_CRASH_TRACE=1`` prints every
step (with ``-s``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import CLI_MODULE, Case, invoke, one_error_line

from custody.collect import CLEANUP_EVENT, RUN_END_EVENT, RUN_START_EVENT, runs, unfinished_runs
from custody.ledger import COLLECT_EVENT, Ledger
from custody.store import object_relpath
from custody.verify import verify_ledger

SEED = int(os.environ.get("CUSTODY_CRASH_SEED", "20260617"))
MIN_KILLS = int(os.environ.get("CUSTODY_CRASH_KILLS", "30"))
MAX_ROUNDS = 90  # a safety net: each round ends in a completed collection
#: kills that must land mid-run (an unfinished run left behind); the loop goes on
#: until it has them, so a loaded machine (fewer mid-run landings) takes longer,
#: not fails
MIN_MID_RUN = 10
FINISH_PROBABILITY = 0.15  # on this share of the steps the process is left to finish
# this share of the kill delays is drawn from 0, the rest from near start-up's end
EARLY_SHARE = 0.5
N_FILES = 150
N_BIG = 6  # files of 1–4 MiB, so kills land mid-copy too
ORPHAN_NOTE = "no event names"
UNFINISHED = "UNFINISHED: collection "
NOTHING_TO_RESUME = "no interrupted collection"
WANTED_OUTCOMES = {"collected", "directory", "symlink"}


# -- helpers ----------------------------------------------------------------------


def cli(
    case_dir: Path, env: dict[str, str], *args: str | os.PathLike[str]
) -> subprocess.CompletedProcess[str]:
    """The CLI in-process (conftest.invoke), in ``case_dir`` with ``env``."""
    return invoke(args, env=env, cwd=case_dir)


def spawn(
    case_dir: Path, env: dict[str, str], args: list[str], out: Path
) -> subprocess.Popen[bytes]:
    """Start the CLI as a process (to be killed or stopped) with stdout and stderr
    in ``out`` (no pipe to fill up).  Its temporary files (the self-test's scratch
    folder) go beside the case: a process killed with SIGKILL cannot remove them,
    and they are the test's to keep, not the machine's /tmp."""
    with open(out, "wb") as fh:
        return subprocess.Popen(
            [*CLI_MODULE, *args],
            cwd=case_dir,
            env={**env, "TMPDIR": os.fspath(case_dir.parent)},
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def new_case(case_dir: Path, case_id: str) -> None:
    """What ``custody init`` does (Ledger.create), in-process: no interpreter start."""
    Ledger.create(case_dir, case_id, "crash and resume").close()


def build_tree(root: Path, rng: random.Random) -> None:
    """~150 files in nested directories: many tiny ones (some empty or identical:
    deduplicated objects), N_BIG of 1–4 MiB, one symlink, one empty directory."""
    root.mkdir()
    dirs = [root]
    for i in range(14):
        d = rng.choice(dirs) / f"dir{i:02d}"
        d.mkdir()
        dirs.append(d)
    for i in range(N_FILES):
        if i < N_BIG:
            size = rng.randint(1 << 20, 4 << 20)
        else:
            size = rng.choice(
                [0, 1, rng.randint(2, 64), rng.randint(65, 4096), rng.randint(4097, 65536)]
            )
        data = b"same" if i % 37 == 5 else rng.randbytes(size)
        (rng.choice(dirs) / f"file{i:03d}.bin").write_bytes(data)
    (rng.choice(dirs[1:]) / "link").symlink_to("../file-that-may-not-exist")
    (root / "empty-dir").mkdir()


def tree_paths(root: Path) -> dict[str, str]:
    """Every path under (and including) ``root`` as recorded (hex of the absolute
    path) -> its kind."""
    out = {os.fsencode(root).hex(): "directory"}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            kind = "symlink" if p.is_symlink() else "directory" if p.is_dir() else "file"
            out[os.fsencode(p).hex()] = kind
    return out


def sha256sum(files: list[Path]) -> dict[str, str]:
    """path hex -> digest, by coreutils ``sha256sum`` (not the library)."""
    out: dict[str, str] = {}
    for i in range(0, len(files), 100):
        chunk = files[i : i + 100]
        proc = subprocess.run(
            ["sha256sum", "--", *map(str, chunk)], capture_output=True, text=True, check=True
        )
        lines = proc.stdout.splitlines()
        assert len(lines) == len(chunk)
        for p, line in zip(chunk, lines, strict=True):
            digest, name = line.split(maxsplit=1)
            assert name.lstrip("*") == str(p)
            out[os.fsencode(p).hex()] = digest
    return out


def store_objects(case_dir: Path) -> dict[str, Path]:
    """relpath -> path of every file under store/sha256 (walked, not the library's view)."""
    store = case_dir / "store"
    base = store / "sha256"
    if not base.is_dir():
        return {}
    return {p.relative_to(store).as_posix(): p for p in base.rglob("*") if not p.is_dir()}


def temp_files(case_dir: Path) -> list[str]:
    tmp = case_dir / "store" / "tmp"
    return (
        sorted(p.name for p in tmp.iterdir() if p.name.startswith("ingest-"))
        if tmp.is_dir()
        else []
    )


def run_locks(case_dir: Path) -> list[str]:
    tmp = case_dir / "store" / "tmp"
    return sorted(p.name for p in tmp.glob("run-*.lock")) if tmp.is_dir() else []


def has_start(case_dir: Path) -> bool:
    """Has a collection.start been committed (read-only peek, safe mid-run: WAL)?"""
    import sqlite3

    conn = sqlite3.connect(f"file:{case_dir / 'custody.db'}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT 1 FROM events WHERE type = ? LIMIT 1", (RUN_START_EVENT,)
        ).fetchone()
        return row is not None
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def wait_mid_copy(case_dir: Path, p: subprocess.Popen[bytes], out: Path) -> str:
    """Wait until collector ``p`` has started its run and is copying a file of more
    than 1 MiB (an ingest temp file that big exists); return the run id."""
    deadline = time.monotonic() + 60
    tmp = case_dir / "store" / "tmp"
    while True:
        assert p.poll() is None, f"the collection ended too soon: {out.read_text()}"
        assert time.monotonic() < deadline, "the collection never got to its big file"
        try:
            copying = any(t.stat().st_size > 1 << 20 for t in tmp.glob("ingest-*") if t.is_file())
        except FileNotFoundError:
            copying = False  # renamed into place meanwhile
        if copying:
            with Ledger.open(case_dir) as ledger:
                open_runs = [r.run for r in runs(ledger) if r.status is None]
            assert len(open_runs) == 1, open_runs
            return open_runs[0]
        time.sleep(0.005)


def body_of(e: dict[str, Any]) -> dict[str, Any]:
    b = e["body"]
    return b if isinstance(b, dict) else json.loads(b)


class Hasher:
    """sha256 of store objects; objects are immutable (0444), so one hash per
    (path, inode, size, mtime) keeps the per-kill checks fast."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, int, int, int], str] = {}

    def __call__(self, p: Path) -> str:
        st = p.lstat()
        key = (str(p), st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in self.cache:
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            self.cache[key] = h.hexdigest()
        return self.cache[key]


@dataclass
class Snapshot:
    """The state of a case after a process ended (killed or not), every invariant checked."""

    max_seq: int
    runs: dict[str, Any]  # run id -> custody.collect.Run
    open_runs: list[str]  # a start and no end
    unfinished: list[str]
    collect_events: int
    orphans: dict[str, int]  # unnamed store object -> size
    kept: set[str]  # objects a store.cleanup event recorded as kept
    referenced: set[str]
    temps: list[str]
    cleanups: list[tuple[int, dict[str, Any]]]
    chain_paths: dict[str, list[str]]  # chain root run -> path hex recorded, in order
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """A collection ran to its end and nothing is left to resume."""
        return bool(self.runs) and not self.open_runs


def chain_root(rs: dict[str, Any], run: str) -> str:
    seen = [run]
    while rs[run].resumes is not None:
        run = rs[run].resumes
        assert run in rs and run not in seen, f"broken resume chain {seen} -> {run}"
        seen.append(run)
    return run


def snapshot(case_dir: Path, ctx: str, hasher: Hasher) -> Snapshot:
    """Verify the case with the library and check the crash invariants; ``ctx``
    (which names the seed) prefixes every failure."""
    with Ledger.open(case_dir) as ledger:
        report = verify_ledger(ledger)
        events = list(ledger.events())
        rs = {r.run: r for r in runs(ledger)}
        unfinished = [r.run for r in unfinished_runs(ledger)]
        arts = ledger.artifacts()
    findings = [f.as_json() for f in report.findings]
    assert report.ok and not findings, f"{ctx}: verify found problems: {findings}"

    # the chain: gapless seqs; items numbered from ITEM-1 in event order, each one
    # above the last, skipping only the numbers a cleanup reserved (next_item)
    assert [e.seq for e in events] == list(range(len(events))), f"{ctx}: seq gap"
    collects = [e for e in events if e.type == COLLECT_EVENT]
    want, numbers = 1, []
    for e in events:
        if e.type == CLEANUP_EVENT and "next_item" in e.data:
            want = max(want, e.data["next_item"])
        elif e.type == COLLECT_EVENT:
            numbers.append((e.item, f"ITEM-{want}"))
            want += 1
    assert all(got == expect for got, expect in numbers), (
        f"{ctx}: item numbers not as allocated: {numbers}"
    )
    assert [a["id"] for a in arts] == [e.item for e in collects], f"{ctx}: artifacts index"
    assert [a["event_seq"] for a in arts] == [e.seq for e in collects], f"{ctx}: artifacts index"

    # every named object exists, read-only, with the recorded digest and size
    objects = store_objects(case_dir)
    referenced: set[str] = set()
    for e in collects:
        d = e.data
        assert d["outcome"] in WANTED_OUTCOMES, f"{ctx}: {e.item} outcome {d['outcome']}: {d}"
        if d["outcome"] != "collected":
            assert "store" not in d, f"{ctx}: {e.item} {d['outcome']} names a store object"
            continue
        sha = d["digests"]["sha256"]
        rel = d["store"]
        assert rel == object_relpath(sha), f"{ctx}: {e.item} store {rel} for sha256 {sha}"
        assert rel in objects, f"{ctx}: {e.item} names {rel}, which is not in the store"
        p = objects[rel]
        assert hasher(p) == sha, f"{ctx}: {e.item}: store object {rel} does not hash to {sha}"
        assert p.stat().st_size == d["size"], f"{ctx}: {e.item}: size of {rel}"
        assert p.stat().st_mode & 0o222 == 0, f"{ctx}: {e.item}: {rel} is writable"
        referenced.add(rel)

    # no torn object anywhere: even an orphan is a whole, read-only copy
    for rel, p in objects.items():
        assert hasher(p) == rel.rsplit("/", 1)[-1], f"{ctx}: torn store object {rel}"
        assert p.stat().st_mode & 0o222 == 0, f"{ctx}: writable store object {rel}"
    orphans = {rel: p.stat().st_size for rel, p in objects.items() if rel not in referenced}
    has_note = any(ORPHAN_NOTE in n for n in report.notes)
    assert has_note == bool(orphans), (
        f"{ctx}: orphans {sorted(orphans)} but verify notes {report.notes}"
    )

    # runs: a start, at most one end; only the last may be open, and only if dead
    starts = {e.data["run"]: e for e in events if e.type == RUN_START_EVENT}
    ends: dict[str, Any] = {}
    for e in events:
        if e.type == RUN_END_EVENT:
            run = e.data["run"]
            assert run in starts and starts[run].seq < e.seq, f"{ctx}: end before start {run}"
            assert run not in ends, f"{ctx}: run {run} ended twice"
            ends[run] = e
    assert set(starts) == set(rs), f"{ctx}: runs() disagrees with the events"
    open_runs = [r for r in starts if r not in ends]
    assert len(open_runs) <= 1, f"{ctx}: several open runs {open_runs}"
    assert sorted(unfinished) == sorted(open_runs), (
        f"{ctx}: no process is alive, yet unfinished {unfinished} != open {open_runs}"
    )
    for e in collects:
        run = e.data["run"]
        assert run in starts and starts[run].seq < e.seq, f"{ctx}: {e.item} outside its run"
        assert run not in ends or e.seq < ends[run].seq, f"{ctx}: {e.item} after its run ended"
    for run, end in ends.items():
        d = end.data
        assert d["status"] in ("complete", "interrupted"), f"{ctx}: run {run} ended {d}"
        mine = [a for a in arts if a["run"] == run]
        assert d["counts"] == dict(Counter(a["outcome"] for a in mine)), (
            f"{ctx}: end of {run} counts {d['counts']}"
        )
        assert d["bytes"] == sum(a["size"] for a in mine if a["sha256"]), f"{ctx}: end bytes {run}"
        if d["status"] == "interrupted":
            nxt = d["resumed_by"]
            assert nxt in starts and starts[nxt].data.get("resumes") == run, (
                f"{ctx}: {run} resumed_by {nxt}, whose start does not say so"
            )
            # one transaction: the old run's end and the new run's start
            assert starts[nxt].seq == end.seq + 1, f"{ctx}: resume end/start not adjacent"
    for run, start in starts.items():
        old = start.data.get("resumes")
        if old is not None:
            assert old in ends and ends[old].data["status"] == "interrupted", (
                f"{ctx}: {run} resumes {old}, which did not end as interrupted"
            )
            assert ends[old].data["resumed_by"] == run, f"{ctx}: resumed_by mismatch"

    # no path recorded twice within one run chain
    chain_paths: dict[str, list[str]] = {}
    for a in arts:
        chain_paths.setdefault(chain_root(rs, a["run"]), []).append(a["path_hex"])
    for root, paths in chain_paths.items():
        dupes = [bytes.fromhex(p) for p, n in Counter(paths).items() if n > 1]
        assert not dupes, f"{ctx}: chain {root} recorded {dupes} twice"

    # a cleanup removes no object; it records as kept only objects no earlier
    # collect event named, each once, with the SHA-256 of its bytes
    cleanups = [(e.seq, e.data) for e in events if e.type == CLEANUP_EVENT]
    kept: set[str] = set()
    for seq, d in cleanups:
        named_before = {e.data["store"] for e in collects if e.seq < seq and "store" in e.data}
        assert d["removed"] == [], f"{ctx}: cleanup event {seq} removed objects {d['removed']}"
        listed = [k["store"] for k in d["kept"]]
        assert not set(listed) & (named_before | kept), (
            f"{ctx}: cleanup event {seq} lists recorded objects {set(listed) & named_before}"
        )
        assert len(set(listed)) == len(listed), f"{ctx}: cleanup {seq} lists an object twice"
        for k in d["kept"]:
            assert k["store"] in objects, f"{ctx}: kept object {k['store']} is gone"
            assert k["store"] == object_relpath(k["sha256"]), f"{ctx}: kept {k}"
            assert k["size"] == objects[k["store"]].stat().st_size, f"{ctx}: kept {k}"
        assert d["kept"] or d["temp_files"], f"{ctx}: empty cleanup event {seq}"
        kept |= set(listed)

    return Snapshot(
        max_seq=events[-1].seq if events else -1,
        runs=rs,
        open_runs=open_runs,
        unfinished=unfinished,
        collect_events=len(collects),
        orphans=orphans,
        kept=kept,
        referenced=referenced,
        temps=temp_files(case_dir),
        cleanups=cleanups,
        chain_paths=chain_paths,
        artifacts=arts,
        events=events,
    )


def check_step(pre: Snapshot, post: Snapshot, rc: int | None, case_dir: Path, ctx: str) -> None:
    """What one process (killed: rc None) did between two snapshots."""
    new = [(s, d) for s, d in post.cleanups if s > pre.max_seq]
    assert len(new) <= 1, f"{ctx}: {len(new)} cleanup events in one run"
    if new:
        seq, d = new[0]
        listed = {k["store"]: k["size"] for k in d["kept"]}
        new_orphans = {r: n for r, n in pre.orphans.items() if r not in pre.kept}
        # nothing else wrote to the store meanwhile: the cleanup saw what we saw
        assert listed == new_orphans, (
            f"{ctx}: cleanup event {seq} kept {sorted(listed)}, orphans not yet recorded"
            f" were {sorted(new_orphans)}"
        )
        assert d["temp_files"] == len(pre.temps), (
            f"{ctx}: cleanup event {seq} counts {d['temp_files']} temp files, there were"
            f" {len(pre.temps)}"
        )
        left = set(pre.temps) & set(post.temps)
        if rc == 0:
            assert not left, f"{ctx}: temp files {left} survived a recorded cleanup"
    # nothing deletes a complete object
    before = set(pre.orphans) | pre.referenced
    after = set(post.orphans) | post.referenced
    assert before <= after, f"{ctx}: store objects deleted: {sorted(before - after)}"
    if rc == 0:
        if set(pre.orphans) - pre.kept or pre.temps:
            assert new, f"{ctx}: a completed run left orphans/temps unrecorded: {pre.orphans}"
        assert set(post.orphans) <= post.kept, (
            f"{ctx}: completed run left orphans not recorded as kept"
            f" {sorted(set(post.orphans) - post.kept)}"
        )
        assert not post.temps, f"{ctx}: completed run left temp files {post.temps}"
        assert not run_locks(case_dir), f"{ctx}: completed run left {run_locks(case_dir)}"
        assert post.complete, f"{ctx}: exit 0 but open runs {post.open_runs}"
    # append-only: what was recorded stays recorded
    assert post.artifacts[: len(pre.artifacts)] == pre.artifacts, f"{ctx}: items changed"


def check_round_end(
    case_dir: Path,
    env: dict[str, str],
    snap: Snapshot,
    expected: dict[str, str],
    kinds: dict[str, str],
    ctx: str,
    *,
    cli_checks: bool,
) -> None:
    """A finished round: every path of the tree is recorded exactly once in the
    (single) run chain, the store is exactly what the ledger names (``snapshot``
    already verified the ledger in-process); with ``cli_checks``, the CLI agrees:
    nothing to resume, ``verify`` clean, no UNFINISHED line in ``log``."""
    if cli_checks:
        proc = cli(case_dir, env, "collect", "--resume", "--quiet")
        assert proc.returncode == 2 and NOTHING_TO_RESUME in proc.stderr, f"{ctx}: {proc}"
        proc = cli(case_dir, env, "verify", "--json")
        assert proc.returncode == 0, f"{ctx}: verify exited {proc.returncode}: {proc.stdout}"
        rep = json.loads(proc.stdout)
        assert rep["ok"] and rep["findings"] == [], f"{ctx}: {rep['findings']}"
        has_note = bool([n for n in rep["notes"] if ORPHAN_NOTE in n])
        assert has_note == bool(snap.orphans), f"{ctx}: {rep['notes']}"
        proc = cli(case_dir, env, "log")
        assert proc.returncode == 0, f"{ctx}: {proc.stderr}"
        assert not [ln for ln in proc.stdout.splitlines() if ln.startswith("UNFINISHED")], (
            f"{ctx}: {proc.stdout[-2000:]}"
        )
        proc = cli(case_dir, env, "log", "--json")
        assert proc.returncode == 0, f"{ctx}: {proc.stderr}"
        status = [e["run_status"] for e in json.loads(proc.stdout) if e["type"] == RUN_START_EVENT]
        assert status == ["interrupted"] * (len(status) - 1) + ["complete"], f"{ctx}: {status}"
    assert not snap.unfinished, f"{ctx}: unfinished {snap.unfinished}"

    assert len(snap.chain_paths) == 1, f"{ctx}: several run chains {list(snap.chain_paths)}"
    (paths,) = snap.chain_paths.values()
    assert Counter(paths) == Counter(list(kinds)), (
        f"{ctx}: recorded paths differ from the tree: missing"
        f" {[bytes.fromhex(p) for p in set(kinds) - set(paths)]},"
        f" extra {[bytes.fromhex(p) for p in set(paths) - set(kinds)]}"
    )
    for a in snap.artifacts:
        kind = kinds[a["path_hex"]]
        want = {"file": "collected", "directory": "directory", "symlink": "symlink"}[kind]
        assert a["outcome"] == want, f"{ctx}: {a['display_path']}: {a['outcome']}"
        if kind == "file":
            assert a["sha256"] == expected[a["path_hex"]], (
                f"{ctx}: {a['display_path']}: sha256 {a['sha256']} != sha256sum"
                f" {expected[a['path_hex']]}"
            )
    assert set(store_objects(case_dir)) == snap.referenced | set(snap.orphans), (
        f"{ctx}: store != ledger's objects and the orphans"
    )
    assert set(snap.orphans) <= snap.kept, f"{ctx}: orphans not recorded as kept {snap.orphans}"
    assert not snap.temps, f"{ctx}: {snap.temps}"


# -- 1. the kill loop -----------------------------------------------------------------


@pytest.mark.slow
def test_kill_nine_anywhere_then_verify_and_resume(case: Case, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    env = case.env
    tree = tmp_path / "evidence"
    build_tree(tree, rng)
    kinds = tree_paths(tree)
    files = [Path(os.fsdecode(bytes.fromhex(h))) for h, k in kinds.items() if k == "file"]
    assert len(files) == N_FILES
    expected = sha256sum(files)
    hasher = Hasher()
    t_begin = time.monotonic()

    # how long an uninterrupted collection of the tree takes (start-up included), and
    # when its collection.start commits (before that, a kill can only hit start-up)
    calib = tmp_path / "calibration"
    new_case(calib, "CALIB")
    out = tmp_path / "calibration.txt"
    t0 = time.monotonic()
    # --no-describe: the delays are drawn over the collection itself (typing comes after
    # its end event and would stretch the window past it)
    p = spawn(
        calib, env, ["collect", "--reason", "test", str(tree), "--quiet", "--no-describe"], out
    )
    t_start = None
    while p.poll() is None:
        if t_start is None and has_start(calib):
            t_start = time.monotonic() - t0
        time.sleep(0.02)
    full = time.monotonic() - t0
    assert p.returncode == 0, f"seed {SEED}: calibration collect failed: {out.read_text()}"
    t_start = t_start or full / 2
    # the start event's place in a run, as a share of the whole: the machine's speed
    # drifts (other tests, other load), so the start is re-estimated from the full
    # runs' median as it is re-measured (a start measured once under load would aim
    # every later kill past the end of a fast run)
    start_share = t_start / full
    fulls = [full]
    snap = snapshot(calib, f"seed {SEED} calibration", hasher)
    check_round_end(calib, env, snap, expected, kinds, f"seed {SEED} calibration", cli_checks=False)

    kills = 0
    landed: Counter[str] = Counter()  # where the kills landed, as the ledger tells it
    steps_total = 0
    rounds = 0

    def enough() -> bool:
        return kills >= MIN_KILLS and landed["mid-run (left unfinished)"] >= MIN_MID_RUN

    while not enough():
        rounds += 1
        assert rounds <= MAX_ROUNDS, f"seed {SEED}: {kills} kills after {MAX_ROUNDS} rounds"
        case_dir = tmp_path / f"round-{rounds:02d}"
        new_case(case_dir, f"R{rounds}")
        pre = snapshot(case_dir, f"seed {SEED} round {rounds} start", hasher)
        step = 0
        while not pre.complete:
            step += 1
            steps_total += 1
            assert step <= 40, f"seed {SEED} round {rounds}: no progress after 40 steps"
            args = ["collect", "--quiet", "--no-describe"]
            args += ["--resume"] if pre.unfinished else ["--reason", "test", str(tree)]
            # every delay lies in [0, 1.2 x full] (later, inside the run when the mid-run
            # kills are short); most start late enough to miss the
            # interpreter's start-up, which no kill can harm, some from 0 anyway
            finish = rng.random() < FINISH_PROBABILITY or enough()
            lo = 0.0 if rng.random() < EARLY_SHARE else 0.8 * t_start
            hi = 1.2 * full
            if kills >= MIN_KILLS:  # enough kills, too few mid-run: aim inside the run
                lo, hi = t_start, max(full, t_start * 1.1)
            delay = rng.uniform(lo, hi)
            what = "--resume" if pre.unfinished else "collect <tree>"
            ctx = (
                f"seed {SEED} round {rounds} step {step} ({what},"
                f" {'let finish' if finish else f'SIGKILL after {delay:.3f}s'})"
            )
            out = tmp_path / f"out-{rounds}-{step}.txt"
            t0 = time.monotonic()
            p = spawn(case_dir, env, args, out)
            killed = False
            try:
                p.wait(timeout=120 if finish else delay)
            except subprocess.TimeoutExpired:
                if finish:
                    p.kill()
                    p.wait()
                    pytest.fail(f"{ctx}: collection hung")
                p.send_signal(signal.SIGKILL)
                p.wait()
                killed = True
            rc = None if killed else p.returncode
            if not killed and not pre.unfinished and not pre.runs:
                # the machine's speed drifts (other load): keep measuring the full run,
                # also from every run that finished before its kill was due (else a
                # slow calibration makes most kills come too late to land)
                fulls.append(time.monotonic() - t0)
                full = statistics.median(fulls)
                t_start = start_share * full
            if os.environ.get("CUSTODY_CRASH_TRACE"):
                print(
                    f"{ctx}: {'killed' if killed else rc} at {time.monotonic() - t_begin:.1f}s"
                    f" (full {full:.2f}s, start event at {t_start:.2f}s)"
                )
            assert killed or rc == 0, f"{ctx}: exited {rc}: {out.read_text()[-3000:]}"
            post = snapshot(case_dir, ctx, hasher)
            check_step(pre, post, rc, case_dir, ctx)
            if killed:
                kills += 1
                new_types = Counter(e.type for e in post.events[len(pre.events) :])
                if not new_types:
                    landed["nothing recorded yet"] += 1
                elif post.open_runs:
                    landed["mid-run (left unfinished)"] += 1
                elif RUN_START_EVENT in new_types:
                    landed["after its run's end"] += 1
                else:
                    landed["before its run's start"] += 1
                if set(post.temps) - set(pre.temps):
                    landed["left a temp file (mid-copy)"] += 1
                if set(post.orphans) - set(pre.orphans):
                    landed["left an orphan object (renamed, not recorded)"] += 1
                if new_types[COLLECT_EVENT]:
                    landed["after recording some items"] += 1
                if new_types[CLEANUP_EVENT]:
                    landed["after recording a cleanup"] += 1
            elif pre.unfinished:
                landed["resume let finish"] += 1
            pre = post
        final = enough()
        check_round_end(
            case_dir, env, pre, expected, kinds, f"seed {SEED} round {rounds} end", cli_checks=final
        )
        if not final:
            shutil.rmtree(case_dir)  # a round's store is ~45 MB

    elapsed = time.monotonic() - t_begin
    print(
        f"\nseed {SEED}: {kills} kills in {rounds} rounds, {steps_total} steps; full"
        f" collection {full:.2f}s (start event at {t_start:.2f}s); {elapsed:.1f}s in all;"
        f" {dict(landed)}"
    )
    # the loop must actually have interrupted collections, not only start-ups
    assert landed["mid-run (left unfinished)"] >= MIN_MID_RUN, f"seed {SEED}: {dict(landed)}"


# -- 2. an orphan no interrupted run explains: a finding, then kept and recorded -------


def test_planted_orphan_is_a_finding_then_kept_and_logged(case: Case, tmp_path: Path) -> None:
    """An object no event names while every run ended: no interrupted collection
    explains it, so verify reports it (``object-unrecorded``); the next collect
    removes the dead temporary copy, keeps the object and records it as kept."""
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_bytes(b"first exhibit\n")
    two.write_bytes(b"second exhibit\n")
    proc = case("collect", "--reason", "test", one, "--quiet")
    assert proc.returncode == 0, proc.stderr

    orphan_bytes = b"copied by a run killed before it recorded this"
    name = "abcd" + hashlib.sha256(b"orphan").hexdigest()[4:]
    rel = f"sha256/ab/cd/{name}"
    orphan = case.dir / "store" / rel
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(orphan_bytes)
    orphan.chmod(0o400)
    temp = case.dir / "store" / "tmp" / "ingest-123-abcdef"
    temp.parent.mkdir(exist_ok=True)
    temp.write_bytes(b"half a copy")

    proc = case("verify", "--json")
    assert proc.returncode == 1, proc.stdout
    rep = json.loads(proc.stdout)
    assert [(f["kind"], f["subject"]) for f in rep["findings"]] == [("object-unrecorded", rel)]
    assert not [n for n in rep["notes"] if ORPHAN_NOTE in n], rep["notes"]

    proc = case("collect", "--reason", "test", two, "--quiet")
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("Store tidied")]
    assert len(lines) == 1, proc.stdout
    assert "1 temporary file(s) removed; 1 complete object(s) no event names KEPT" in lines[0], (
        lines[0]
    )

    events = json.loads(case("log", "--json", check=True).stdout)
    cleanups = [e for e in events if e["type"] == CLEANUP_EVENT]
    assert len(cleanups) == 1, cleanups
    data = body_of(cleanups[0])["data"]
    assert data["removed"] == [], data
    assert data["kept"] == [
        {
            "store": rel,
            "sha256": hashlib.sha256(orphan_bytes).hexdigest(),
            "size": len(orphan_bytes),
        }
    ], data
    assert data["temp_files"] == 1 and data["temp_bytes"] == len(b"half a copy"), data
    assert f"event {cleanups[0]['seq']})" in lines[0], lines[0]
    # recorded before the collection it preceded
    starts = [e for e in events if e["type"] == RUN_START_EVENT]
    assert cleanups[0]["seq"] < starts[-1]["seq"]
    assert orphan.read_bytes() == orphan_bytes and not temp.exists()

    proc = case("verify", "--json")
    assert proc.returncode == 1, proc.stdout
    rep = json.loads(proc.stdout)
    assert [(f["kind"], f["subject"]) for f in rep["findings"]] == [("object-unrecorded", rel)]
    # and the next collect has nothing to record again
    proc = case("collect", "--reason", "test", one, "--quiet")
    assert proc.returncode == 0 and "Store tidied" not in proc.stdout, proc.stdout
    events = json.loads(case("log", "--json", check=True).stdout)
    assert len([e for e in events if e["type"] == CLEANUP_EVENT]) == 1
    assert orphan.read_bytes() == orphan_bytes


# -- 3. a run still going on is not unfinished ----------------------------------------


def _start_seen(case_dir: Path) -> str | None:
    with Ledger.open(case_dir) as ledger:
        open_runs = [r.run for r in runs(ledger) if r.status is None]
    return open_runs[-1] if open_runs else None


def test_live_run_is_not_unfinished(case: Case, tmp_path: Path) -> None:
    env = case.env
    ev = tmp_path / "ev"
    ev.mkdir()
    big = ev / "disk.img"
    with open(big, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    (ev / "small.txt").write_text("small\n")
    proc = case(
        "collect", "--reason", "test", ev / "small.txt", "--quiet"
    )  # the self-test, out of the way
    assert proc.returncode == 0, proc.stderr

    out = tmp_path / "live.txt"
    p = spawn(case.dir, env, ["collect", "--reason", "test", str(ev), "--quiet"], out)
    try:
        run = wait_mid_copy(case.dir, p, out)
        # freeze it mid-copy: alive, holding its locks, with no end event (and not
        # inside a ledger transaction: it is copying)
        p.send_signal(signal.SIGSTOP)
        assert _start_seen(case.dir) == run

        proc = case("log")
        assert proc.returncode == 0, proc.stderr
        assert UNFINISHED not in proc.stdout, proc.stdout
        events = json.loads(case("log", "--json", check=True).stdout)
        status = {
            body_of(e)["data"]["run"]: e["run_status"]
            for e in events
            if e["type"] == RUN_START_EVENT
        }
        assert status[run] == "running", status
        proc = case("collect", "--resume", "--quiet")
        assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
        assert NOTHING_TO_RESUME in proc.stderr, proc.stderr
        with Ledger.open(case.dir) as ledger:
            assert len(runs(ledger)) == 2, "a resume duplicated the live run"
    finally:
        p.send_signal(signal.SIGCONT)
    assert p.wait(timeout=120) == 0, out.read_text()

    proc = case("log")
    assert proc.returncode == 0 and UNFINISHED not in proc.stdout, proc.stdout
    events = json.loads(case("log", "--json", check=True).stdout)
    assert [e["run_status"] for e in events if e["type"] == RUN_START_EVENT] == [
        "complete",
        "complete",
    ]
    proc = case("collect", "--resume", "--quiet")
    assert proc.returncode == 2 and NOTHING_TO_RESUME in proc.stderr, proc.stderr
    snap = snapshot(case.dir, "live run", Hasher())
    assert not snap.orphans and not snap.temps


# -- 4. log after a kill, and after the resume ----------------------------------------


def test_log_shows_the_killed_run_until_resumed(case: Case, tmp_path: Path) -> None:
    env = case.env
    ev = tmp_path / "ev"
    (ev / "sub").mkdir(parents=True)
    for i in range(20):
        (ev / "sub" / f"note{i}.txt").write_text(f"note {i}\n")
    with open(ev / "zz-disk.img", "wb") as f:  # walked last: the kill lands mid-copy
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    proc = case("collect", "--reason", "test", ev / "sub" / "note0.txt", "--quiet")  # the self-test
    assert proc.returncode == 0, proc.stderr

    out = tmp_path / "killed.txt"
    p = spawn(case.dir, env, ["collect", "--reason", "test", str(ev), "--quiet"], out)
    run = wait_mid_copy(case.dir, p, out)
    p.send_signal(signal.SIGKILL)
    p.wait()
    with Ledger.open(case.dir) as ledger:
        assert [r.run for r in runs(ledger) if r.status is None] == [run]

    proc = case("log")
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("UNFINISHED")]
    assert len(lines) == 1 and lines[0].startswith(f"{UNFINISHED}{run} "), proc.stdout
    events = json.loads(case("log", "--json", check=True).stdout)
    status = {
        body_of(e)["data"]["run"]: e["run_status"] for e in events if e["type"] == RUN_START_EVENT
    }
    assert status[run] == "unfinished", status
    assert list(status.values()).count("unfinished") == 1

    temps = temp_files(case.dir)
    assert temps, "killed mid-copy, yet no temp file left"
    proc = case("collect", "--resume", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert f"Resumed collection {run}:" in proc.stdout, proc.stdout
    assert f"{len(temps)} temporary file(s) removed" in proc.stdout, proc.stdout
    assert not [t for t in temps if (case.dir / "store" / "tmp" / t).exists()]

    events = json.loads(case("log", "--json", check=True).stdout)
    starts = {body_of(e)["data"]["run"]: e for e in events if e["type"] == RUN_START_EVENT}
    assert starts[run]["run_status"] == "interrupted"
    (new,) = [r for r, e in starts.items() if body_of(e)["data"].get("resumes") == run]
    assert starts[new]["run_status"] == "complete"
    ends = {
        body_of(e)["data"]["run"]: body_of(e)["data"] for e in events if e["type"] == RUN_END_EVENT
    }
    assert ends[run]["status"] == "interrupted" and ends[run]["resumed_by"] == new
    assert ends[new]["status"] == "complete"
    proc = case("log")
    assert UNFINISHED not in proc.stdout, proc.stdout

    snap = snapshot(case.dir, "log after kill", Hasher())
    assert set(snap.orphans) <= snap.kept and not snap.temps
    chain = [p for root, ps in snap.chain_paths.items() if root == run for p in ps]
    assert Counter(chain) == Counter(list(tree_paths(ev))), (
        "resume did not finish the tree exactly once"
    )


# -- 5. --resume usage ------------------------------------------------------------------


def test_resume_usage_errors(case: Case, tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("a\n")
    proc = case("collect", "--resume", f)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "--resume takes no paths" in one_error_line(proc)

    proc = case("collect", "--resume")  # a new case: nothing to resume
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert NOTHING_TO_RESUME in one_error_line(proc)

    assert case("collect", "--reason", "test", f, "--quiet").returncode == 0
    proc = case("collect", "--resume")  # the only run completed
    assert proc.returncode == 2
    assert NOTHING_TO_RESUME in one_error_line(proc)
    with Ledger.open(case.dir) as ledger:  # nothing written by the refusals
        assert [r.status for r in runs(ledger)] == ["complete"]


# -- 6. two resumes at once ------------------------------------------------------------


def _held(lock: Path) -> bool:
    import fcntl

    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_two_concurrent_resumes_finish_the_run_once(case: Case, tmp_path: Path) -> None:
    """Deterministic: the test holds the ledger's write lock until both resumers
    hold their run locks (both are past their "is it unfinished?" check), then lets
    them commit."""
    import sqlite3

    env = case.env
    ev = tmp_path / "ev"
    (ev / "sub").mkdir(parents=True)
    for i in range(10):
        (ev / "sub" / f"note{i}.txt").write_text(f"note {i}\n")
    with open(ev / "zz-disk.img", "wb") as f:  # walked last: killed while copying it
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    assert (
        case("collect", "--reason", "test", ev / "sub" / "note0.txt", "--quiet").returncode == 0
    )  # self-test

    out = tmp_path / "killed.txt"
    p = spawn(case.dir, env, ["collect", "--reason", "test", str(ev), "--quiet"], out)
    run = wait_mid_copy(case.dir, p, out)
    p.send_signal(signal.SIGKILL)
    p.wait()
    # an unrelated collection cleans what the kill left, so neither resumer needs to
    other = tmp_path / "other.txt"
    other.write_text("other\n")
    assert case("collect", "--reason", "test", other, "--quiet").returncode == 0
    with Ledger.open(case.dir) as ledger:
        assert [r.run for r in unfinished_runs(ledger)] == [run]

    tmp = case.dir / "store" / "tmp"
    blocker = sqlite3.connect(case.dir / "custody.db", isolation_level=None, timeout=30)
    blocker.execute("BEGIN IMMEDIATE")  # readers go on (WAL); writers wait
    outs = [tmp_path / f"resume-{i}.txt" for i in range(2)]
    procs = []
    try:
        procs = [spawn(case.dir, env, ["collect", "--resume", "--quiet"], o) for o in outs]
        # (well within the resumers' 30 s wait for the ledger's lock)
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            held = [lk for lk in tmp.glob("run-*.lock") if _held(lk)]
            if len(held) == 2:
                break  # both decided to resume, and wait for the ledger
            if any(pr.poll() is not None for pr in procs):
                break  # one gave up
            time.sleep(0.02)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    for pr in procs:
        pr.wait(timeout=120)
    texts = [o.read_text() for o in outs]
    assert all("Traceback" not in t for t in texts), texts
    snap = snapshot(case.dir, "two resumes", Hasher())  # one end per run, no path twice
    (chain,) = [ps for root, ps in snap.chain_paths.items() if root == run]
    assert Counter(chain) == Counter(list(tree_paths(ev)))
    resumed = [
        t
        for pr, t in zip(procs, texts, strict=True)
        if pr.returncode == 0 and f"Resumed collection {run}" in t
    ]
    assert len(resumed) == 1, texts
