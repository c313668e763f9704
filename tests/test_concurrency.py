"""Collectors writing one ledger at once keep one gapless, linear, verifiable
chain with unique item numbers (BEGIN IMMEDIATE + the tail read inside the lock)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from conftest import CLI_MODULE, PASSPHRASE, Case, new_key, sha256sum

FILES_PER_COLLECTOR = 30


def make_files(root: Path, tag: str, n: int = FILES_PER_COLLECTOR) -> list[Path]:
    root.mkdir(parents=True)
    paths = []
    for i in range(n):
        p = root / f"{tag}-{i:02d}.txt"
        p.write_bytes(f"{tag} file {i}\n".encode() * (i + 1))
        paths.append(p)
    return paths


def start_collect(
    case: Case, files: list[Path], reason: str, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    env = {**case.env, **(extra_env or {})}
    return subprocess.Popen(
        [
            *CLI_MODULE,
            "collect",
            "--reason",
            reason,
            "--json",
            *map(str, files),
        ],
        cwd=case.dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return json.loads(out)


def check_ledger(
    case: Case, all_files: list[Path], summaries: list[dict[str, Any]], signers: int
) -> list[dict[str, Any]]:
    """Everything that must hold after concurrent collections; returns the log."""
    k = len(all_files)
    proc = case("verify", "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report["findings"]
    assert report["ok"] is True
    assert report["artifacts"] == k
    assert report["objects_checked"] == k

    events = json.loads(case("log", "--json", check=True).stdout)
    n = len(events)
    # One registration per signer (the owner's in the case's opening event, every
    # other key's when the owner imported it), a start and an end per run, one
    # collect per file, and exactly one self-test: concurrent first collections
    # decide it inside the lock.
    assert [e["type"] for e in events].count("selftest") == 1
    # and the objects' types: one describe event per object a run stored (two runs
    # that store the same bytes at once may both type them)
    described = [e for e in events if e["type"] == "describe"]
    assert n == signers + 2 * len(summaries) + k + 1 + len(described)
    typed = {json.loads(e["body"])["data"]["sha256"] for e in described}
    assert typed == {sha256sum(f) for f in all_files}
    assert [e["seq"] for e in events] == list(range(n))
    for before, after in itertools.pairwise(events):
        assert after["prev"] == before["hash"], after["seq"]
    assert report["head"] == events[-1]["hash"]
    assert [e["type"] for e in events].count("case.open") == 1
    assert sum(e["type"] in ("case.open", "identity") for e in events) == signers
    assert sum(e["type"] == "collection.start" for e in events) == len(summaries)
    assert sum(e["type"] == "collection.end" for e in events) == len(summaries)

    collects = [e for e in events if e["type"] == "collect"]
    ids = [e["item"] for e in collects]
    assert len(ids) == len(set(ids)) == k
    assert sorted(ids, key=lambda s: int(s.removeprefix("ITEM-"))) == [
        f"ITEM-{i}" for i in range(1, k + 1)
    ]

    # Each run reported its own items; together they are every item, once.
    reported = [it["id"] for s in summaries for it in s["items"]]
    assert sorted(reported) == sorted(ids)
    for s in summaries:
        assert s["status"] == "complete"
        assert s["counts"] == {"collected": FILES_PER_COLLECTOR}

    # Every file recorded once, with the digest sha256sum gives.
    items = json.loads(case("list", "--json", check=True).stdout)
    assert sorted(it["id"] for it in items) == sorted(ids)
    by_path = {it["path"]: it for it in items}
    assert len(by_path) == k
    for f in all_files:
        it = by_path[str(f)]
        assert it["outcome"] == "collected"
        assert it["sha256"] == sha256sum(f)
        assert it["size"] == f.stat().st_size
    return events


def test_two_collectors_one_ledger(case: Case, tmp_path: Path) -> None:
    a = make_files(tmp_path / "host-a", "a")
    b = make_files(tmp_path / "host-b", "b")
    pa = start_collect(case, a, "host A")
    pb = start_collect(case, b, "host B")
    sa, sb = finish(pa), finish(pb)
    assert sa["run"] != sb["run"]
    check_ledger(case, a + b, [sa, sb], signers=1)


def import_key(case: Case, pub: Path, name: str) -> None:
    """The owner (Dana, the case's default key) vouches for a collector's key: under
    custody rules 2 a key nobody attested may not collect."""
    proc = case("key", "import", pub, "--name", name, "--role", "collector")
    assert proc.returncode == 0, proc.stderr


def registered_key(e: dict[str, Any]) -> str | None:
    """The key a registering event registers (None for any other event)."""
    data = json.loads(e["body"])["data"]
    if e["type"] == "case.open":
        return str(data["owner"]["fingerprint"])
    return str(data["fingerprint"]) if e["type"] == "identity" else None


def test_two_collectors_two_keys(case: Case, run: Any, tmp_path: Path) -> None:
    """Two different signers write at once: the owner, and a collector the owner
    imported first; each key is registered exactly once, before its first event."""
    other = tmp_path / "lee.pem"
    new_key(run, other, "Lee Park", "collector", default=False)
    import_key(case, other.with_suffix(".pub"), "Lee Park")
    a = make_files(tmp_path / "host-a", "a")
    b = make_files(tmp_path / "host-b", "b")
    pa = start_collect(case, a, "host A")
    pb = start_collect(
        case, b, "host B", {"CUSTODY_KEY": str(other), "CUSTODY_PASSPHRASE": PASSPHRASE}
    )
    sa, sb = finish(pa), finish(pb)
    events = check_ledger(case, a + b, [sa, sb], signers=2)
    names = {e["signer_name"] for e in events}
    assert names == {"Dana Reyes", "Lee Park"}
    # Every event of a signer comes after the event registering that signer's key.
    first_seen: dict[str, int] = {}
    for e in events:
        key = registered_key(e)
        if key is not None:
            first_seen.setdefault(key, e["seq"])
        assert e["signer"] in first_seen, e["seq"]
    assert {e["signer_standing"] for e in events} == {"owner", "attested"}
    # Each run's items are signed by its own collector.
    signer_of = {e["item"]: e["signer_name"] for e in events if e["type"] == "collect"}
    assert {signer_of[it["id"]] for it in sa["items"]} == {"Dana Reyes"}
    assert {signer_of[it["id"]] for it in sb["items"]} == {"Lee Park"}


def test_four_collectors_and_a_verifier(case: Case, run: Any, tmp_path: Path) -> None:
    """Issue 6: four processes collect into one case at once (two keys) while a
    fifth runs `verify` over and over: all complete, one gapless chain, and no
    verify run ever reports a problem while the writers are active."""
    other = tmp_path / "lee.pem"
    new_key(run, other, "Lee Park", "collector", default=False)
    lee = {"CUSTODY_KEY": str(other), "CUSTODY_PASSPHRASE": PASSPHRASE}
    import_key(case, other.with_suffix(".pub"), "Lee Park")
    trees = [make_files(tmp_path / f"host-{t}", t) for t in "abcd"]
    # a big file per collector, so verify runs while objects are being copied
    for t, files in zip("abcd", trees, strict=True):
        big = tmp_path / f"host-{t}" / f"{t}-big.bin"
        big.write_bytes(os.urandom(24 << 20))
        files.insert(0, big)
    procs = [
        start_collect(case, files, f"host {t}", lee if t in "bd" else None)
        for t, files in zip("abcd", trees, strict=True)
    ]
    reports = []
    while any(p.poll() is None for p in procs) or not reports:
        v = case("verify", "--json", process=True, timeout=120)  # a fifth process
        assert "Traceback" not in v.stderr
        rep = json.loads(v.stdout)
        assert (v.returncode, rep["findings"]) == (0, []), rep["findings"]
        reports.append(rep)
    summaries = [finish(p) for p in procs]
    assert len({s["run"] for s in summaries}) == 4
    assert len(reports) >= 2  # verify really ran while the collectors did
    for s in summaries:
        assert s["status"] == "complete"
        assert s["counts"] == {"collected": FILES_PER_COLLECTOR + 1}
    k = sum(len(t) for t in trees)
    proc = case("verify", "--json")
    final = json.loads(proc.stdout)
    assert (proc.returncode, final["findings"], final["notes"]) == (0, [], [])
    assert final["artifacts"] == final["objects_checked"] == k
    events = json.loads(case("log", "--json", check=True).stdout)
    assert [e["seq"] for e in events] == list(range(len(events)))
    for before, after in itertools.pairwise(events):
        assert after["prev"] == before["hash"], after["seq"]
    assert [e["type"] for e in events].count("selftest") == 1
    # the case's opening event and Lee's import, self-test, runs, items, their types
    typed = {json.loads(e["body"])["data"]["sha256"] for e in events if e["type"] == "describe"}
    assert typed == {sha256sum(f) for t in trees for f in t}
    assert len(events) == 2 + 1 + 2 * 4 + k + len(typed)
    ids = sorted(int(e["item"].removeprefix("ITEM-")) for e in events if e["type"] == "collect")
    assert ids == list(range(1, k + 1))
