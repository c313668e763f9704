"""Issue 13: proofs answer from the event bodies, never from the stored tree alone;
``show`` of an item whose record fails verification says so first and exits 1; the
store and the bundles are for their owner alone (objects 0400, directories 0700,
bundle files 0600) and ``verify`` notes a store object others may read."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import Case, cli, drop_dac_capabilities, new_key, ok_json, one_error_line
from tampering import bypass, q

from custody import merkle

# -- helpers ------------------------------------------------------------------------------


def collect_two(case: Case, tmp_path: Path) -> dict[str, str]:
    """Collect two files; returns {item id: sha256 hex}."""
    src = tmp_path / "evidence"
    src.mkdir()
    (src / "payroll.csv").write_text("name,amount\nDana,1000\n")
    (src / "auth.log").write_text("Nov 27 sshd[1]: Accepted publickey for svc\n")
    files = [src / "payroll.csv", src / "auth.log"]
    ok_json(case, "collect", "--reason", "suspected credential theft", *files, "--json")
    items = {it["id"]: it["sha256"] for it in ok_json(case, "list", "--json")}
    assert set(items) == {"ITEM-1", "ITEM-2"} and all(items.values()), items
    return items


def events(case: Case) -> list[dict[str, Any]]:
    return list(ok_json(case, "log", "--json"))


def collect_seq(case: Case, item: str) -> int:
    (seq,) = [e["seq"] for e in events(case) if e["type"] == "collect" and e["item"] == item]
    return int(seq)


def bodies(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [str(r[0]) for r in conn.execute("SELECT body FROM events ORDER BY seq")]
    finally:
        conn.close()


def tree_sql(leaves: list[bytes]) -> str:
    """SQL replacing every stored Merkle node by those of ``leaves``."""
    rows = ", ".join(
        f"({lv}, {i}, X'{h.hex()}')" for lv, i, h in merkle.TreeCache(leaves).complete_nodes()
    )
    return f"DELETE FROM merkle_nodes;INSERT INTO merkle_nodes (level, idx, hash) VALUES {rows};"


def edit_event(
    case: Case, seq: int, old: str, new: str, *, tree: bool = False, rehash: bool = False
) -> None:
    """Edit event ``seq``'s body (``old`` -> ``new``) with the append-only triggers
    dropped; with ``tree``, also rewrite the stored Merkle tree to fit the edited
    bodies, and with ``rehash`` the event's hash column too: a thorough attacker."""
    db = case.dir / "custody.db"
    all_bodies = bodies(db)
    assert old in all_bodies[seq]
    body = all_bodies[seq].replace(old, new)
    all_bodies[seq] = body
    sql = f"UPDATE events SET body = {q(body)} WHERE seq = {seq};"
    tables: tuple[str, ...] = ("events",)
    if rehash:
        digest = "sha256:" + hashlib.sha256(body.encode()).hexdigest()
        sql += f"UPDATE events SET hash = {q(digest)} WHERE seq = {seq};"
    if tree:
        sql += tree_sql([merkle.leaf_hash(b.encode()) for b in all_bodies])
        tables += ("merkle_nodes",)
    bypass(db, tables, sql)


def checkpoint(case: Case, out: Path) -> Path:
    proc = cli(case, "checkpoint", "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out


# -- A. proofs are computed from the event bodies ----------------------------------------


@pytest.fixture
def proved(case: Case, tmp_path: Path) -> tuple[Case, Path, Path, str]:
    """Two items, checkpoint cp1, a note on ITEM-2, checkpoint cp2, a note on ITEM-1
    (newer than both checkpoints); every proof answers on the clean ledger."""
    digests = collect_two(case, tmp_path)
    cp1 = checkpoint(case, tmp_path / "cp1.txt")
    assert cli(case, "event", "note", "ITEM-2", "--reason", "imaged").returncode == 0
    cp2 = checkpoint(case, tmp_path / "cp2.txt")
    assert cli(case, "event", "note", "ITEM-1", "--reason", "looked at").returncode == 0
    proc = cli(case, "prove", "consistency", cp1, cp2)
    assert proc.returncode == 0 and proc.stdout.startswith("Consistent"), proc.stderr
    assert cli(case, "prove", "inclusion", "ITEM-2", "--checkpoint", cp2).returncode == 0
    return case, cp1, cp2, digests["ITEM-1"]


def refused(proc: Any, *words: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Consistent" not in proc.stdout and "included" not in proc.stdout
    line = one_error_line(proc)
    for w in words:
        assert w in line, line
    assert "custody verify" in line, line


@pytest.mark.parametrize("attacker", ["body", "body+tree", "body+hash+tree"])
def test_prove_refuses_a_ledger_with_an_edited_event(
    proved: tuple[Case, Path, Path, str], attacker: str
) -> None:
    """An event inside both checkpoints edited (the collect of ITEM-1): the stored
    tree still fits the checkpoints ("body"), or was rewritten to fit the edited
    bodies, the event's hash column too.  Every proof is refused, naming the
    edited event (or the broken link after it), even for the untouched ITEM-2."""
    case, cp1, cp2, hexd = proved
    seq = collect_seq(case, "ITEM-1")
    fake = hashlib.sha256(b"other bytes").hexdigest()
    edit_event(case, seq, hexd, fake, tree="tree" in attacker, rehash="hash" in attacker)
    if "hash" in attacker:
        words: tuple[str, ...] = (f"event {seq + 1}'s prev is not the hash of event {seq}",)
    else:
        words = (f"event {seq}'s body does not hash to its recorded hash",)
    refused(cli(case, "prove", "consistency", cp1, cp2), *words)
    refused(cli(case, "prove", "consistency", cp1, cp2, "--json"), *words)
    refused(cli(case, "prove", "inclusion", "ITEM-2", "--checkpoint", cp2), *words)
    refused(cli(case, "prove", "inclusion", "ITEM-1", "--checkpoint", cp1, "--json"), *words)


def test_prove_refuses_an_edited_event_newer_than_the_checkpoints(
    proved: tuple[Case, Path, Path, str],
) -> None:
    """The note on ITEM-1 after cp2 edited and the stored tree rewritten to fit: the
    stored tree still extends both checkpoints, but the ledger fails verification,
    and no proof is given from it."""
    case, cp1, cp2, _ = proved
    seq = events(case)[-1]["seq"]
    edit_event(case, seq, "looked at", "never looked at", tree=True)
    words = (f"event {seq}'s body does not hash to its recorded hash",)
    refused(cli(case, "prove", "consistency", cp1, cp2), *words)
    refused(cli(case, "prove", "inclusion", "ITEM-1", "--checkpoint", cp2), *words)


def test_prove_refuses_when_the_stored_tree_disagrees_with_the_bodies(
    proved: tuple[Case, Path, Path, str],
) -> None:
    """The bodies are intact but a stored tree node is not (the leaf of the newest
    event): the proofs from the bodies would be right, but a ledger whose stored
    tree disagrees with its events fails verification, and prove says so."""
    case, cp1, cp2, _ = proved
    last = events(case)[-1]["seq"]
    bypass(
        case.dir / "custody.db",
        "merkle_nodes",
        f"UPDATE merkle_nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = {last};",
    )
    words = ("stored Merkle tree disagrees", f"level 0 index {last}")
    refused(cli(case, "prove", "consistency", cp1, cp2), *words)
    refused(cli(case, "prove", "inclusion", "ITEM-2", "--checkpoint", cp2), *words)


# -- B. show says first when the item's record fails verification ---------------------------


def test_show_of_an_item_whose_event_was_edited_fails_first(case: Case, tmp_path: Path) -> None:
    """ITEM-1's collect event edited (a substituted digest, triggers dropped): show
    ITEM-1 says so on its first line, with the finding kinds, and exits 1, in text
    and JSON.  ITEM-2's own events verify: show ITEM-2 exits 0 and its first line
    notes the problems elsewhere in the ledger (documented in custody-model.md)."""
    digests = collect_two(case, tmp_path)
    seq = collect_seq(case, "ITEM-1")
    fake = hashlib.sha256(b"something else").hexdigest()
    edit_event(case, seq, digests["ITEM-1"], fake)
    # the signed note kept beside the ledger no longer matches it: the whole history
    # is in doubt, and every show fails (the next test); this attacker also removes it
    note = case.dir / "checkpoint.latest"
    assert note.is_file()
    assert cli(case, "show", "ITEM-2").returncode == 1
    note.unlink()

    proc = cli(case, "show", "ITEM-1")
    assert proc.returncode == 1, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("FAILED: the record of ITEM-1 fails verification ("), first
    assert "event-hash" in first and "signature" in first
    assert f"[event-hash] event {seq}:" in proc.stdout
    assert fake in proc.stdout  # what the ledger holds now is still shown, after the verdict

    proc = cli(case, "show", "ITEM-1", "--json")
    assert proc.returncode == 1, proc.stderr
    verdict = json.loads(proc.stdout)["verification"]
    assert verdict["ok"] is False
    assert {"event-hash", "signature"} <= {f["kind"] for f in verdict["findings"]}
    assert {f["subject"] for f in verdict["findings"]} <= {f"event {seq}", "ITEM-1"}

    proc = cli(case, "show", "ITEM-2")
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("Note: the ledger has "), first
    assert "do not concern ITEM-2" in first
    shown = ok_json(case, "show", "ITEM-2", "--json")
    assert shown["verification"]["ok"] is True
    assert shown["verification"]["findings"] == []
    assert shown["verification"]["other_problems"] >= 2


def test_show_fails_every_item_when_the_history_fails(case: Case, tmp_path: Path) -> None:
    """A recorded checkpoint the edited ledger no longer extends puts the whole
    history in doubt: show of the untouched ITEM-2 fails too (exit 1)."""
    digests = collect_two(case, tmp_path)
    checkpoint(case, tmp_path / "cp.txt")
    seq = collect_seq(case, "ITEM-1")
    fake = hashlib.sha256(b"other bytes").hexdigest()
    edit_event(case, seq, digests["ITEM-1"], fake, tree=True)

    proc = cli(case, "show", "ITEM-2")
    assert proc.returncode == 1, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("FAILED: the ledger's history fails verification (checkpoint)"), first
    proc = cli(case, "show", "ITEM-2", "--json")
    assert proc.returncode == 1
    verdict = json.loads(proc.stdout)["verification"]
    assert verdict["ok"] is False
    assert {f["kind"] for f in verdict["findings"]} == {"checkpoint"}


# -- C. the store and the bundles are their owner's alone ----------------------------------


def modes(root: Path) -> dict[str, int]:
    """Permission bits of ``root`` and everything under it, by relative path."""
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for p in root.rglob("*"):
        out[p.relative_to(root).as_posix()] = stat.S_IMODE(p.lstat().st_mode)
    return out


def test_store_objects_are_0400_and_store_directories_0700(case: Case, tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$salt$hash:19000:0:99999:7:::\n")
    secret.chmod(0o600)
    digests = collect_two(case, tmp_path)
    ok_json(case, "collect", "--reason", "root-only file", secret, "--json")
    store = case.dir / "store"
    found = modes(store)
    objects = {rel for rel in found if rel.startswith("sha256/") and rel.count("/") == 2}
    assert {rel.rsplit("/", 1)[1] for rel in objects} >= set(digests.values())
    assert len(objects) == 3
    for rel, mode in found.items():
        if rel in objects:
            assert mode == 0o400, (rel, oct(mode))
        elif (store / rel).is_dir():
            assert mode == 0o700, (rel, oct(mode))
    assert found["."] == found["sha256"] == found["tmp"] == 0o700
    # everything that reads the store still works on 0400 objects
    assert cli(case, "verify", "--quiet").returncode == 0


@pytest.mark.parametrize("name", ["bundle", "bundle.tar", "bundle.tar.gz", "bundle.zip"])
def test_bundle_files_are_0600_and_directories_0700(case: Case, tmp_path: Path, name: str) -> None:
    collect_two(case, tmp_path)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / name
    proc = cli(case, "bundle", "export", "--all", "--out", out)
    assert proc.returncode == 0, proc.stderr
    if name == "bundle":
        found = modes(out)
        assert any(rel.startswith("data/") and (out / rel).is_file() for rel in found)
        for rel, mode in found.items():
            want = 0o700 if (out / rel).is_dir() else 0o600
            assert mode == want, (rel, oct(mode))
    else:
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        members: dict[str, tuple[bool, int]] = {}
        if name.endswith(".zip"):
            with zipfile.ZipFile(out) as z:
                for i in z.infolist():
                    members[i.filename.rstrip("/")] = (
                        i.is_dir(),
                        stat.S_IMODE(i.external_attr >> 16),
                    )
        else:
            with tarfile.open(out) as t:
                members = {m.name: (m.isdir(), m.mode) for m in t.getmembers()}
        assert any(n.startswith("bundle/data/") and not d for n, (d, _) in members.items())
        dirs = {n for n, (d, _) in members.items() if d}
        # every directory a file lies in is a member of its own, mode 0700
        assert {n.rsplit("/", 1)[0] for n, (d, _) in members.items() if not d} <= dirs
        for n, (is_dir, mode) in members.items():
            assert mode == (0o700 if is_dir else 0o600), (n, oct(mode))
    # the bundle still verifies and imports (the import reads it, the export read 0400 objects)
    assert (
        cli(case, "bundle", "verify", out, "--trust", case.key.with_suffix(".pub")).returncode == 0
    )
    if name != "bundle":
        other = tmp_path / "other"
        assert cli(case, "init", other, "--case-id", "2026-018", "--title", "t").returncode == 0
        proc = cli(
            case, "bundle", "import", out, "--case", other, "--trust", case.key.with_suffix(".pub")
        )
        assert proc.returncode == 0, proc.stderr
        assert cli(case, "verify", "--quiet", "--case", other).returncode == 0


def test_verify_notes_a_store_object_others_may_read(case: Case, tmp_path: Path) -> None:
    digests = collect_two(case, tmp_path)
    hexd = digests["ITEM-1"]
    obj = case.dir / "store" / "sha256" / hexd[:2] / hexd
    os.chmod(obj, 0o444)
    proc = cli(case, "verify", "--quiet")
    assert proc.returncode == 0, proc.stdout
    (note,) = [line for line in proc.stdout.splitlines() if line.startswith("Note: ITEM-1")]
    assert "readable by its group and every local user (mode 0444)" in note
    assert "chmod 0400" in note
    report = ok_json(case, "verify", "--json", "--quiet")
    assert report["ok"] is True and report["findings"] == []
    assert any("readable by its group" in n and hexd in n for n in report["notes"])
    # still writable is still a finding, and the note stays a note
    os.chmod(obj, 0o644)
    report = json.loads(cli(case, "verify", "--json", "--quiet").stdout)
    assert [f["kind"] for f in report["findings"]] == ["object-writable"]
    assert any("readable by its group" in n for n in report["notes"])


def _as_nobody() -> None:
    """preexec_fn: become another local user (nobody)."""
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as another local user needs root")
def test_another_local_user_cannot_read_the_stored_copy(case: Case, tmp_path: Path) -> None:
    """A root-only file collected: its stored copy is not readable by another local
    user, even in a case whose own directory is 0755; the owner, bound by the
    permission bits (root without CAP_DAC_*), still verifies, exports and reports."""
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$salt$hash:19000:0:99999:7:::\n")
    secret.chmod(0o600)
    ok_json(case, "collect", "--reason", "root-only file", secret, "--json")
    (item,) = ok_json(case, "list", "--json")
    # a copy of the case, modes kept, where every local user may reach it
    shared = Path(tempfile.mkdtemp(prefix="custody-shared-"))
    try:
        shared.chmod(0o755)
        copy = shared / "case"
        shutil.copytree(case.dir, copy, symlinks=True)
        # a new case directory is 0700 (tests/test_case_perms.py); opened up here as
        # cases made before that were, the store must still keep its objects private
        assert stat.S_IMODE(copy.stat().st_mode) == 0o700
        copy.chmod(0o755)
        obj = copy / "store" / item["store"]
        assert obj.read_bytes() == secret.read_bytes()
        other = subprocess.run(
            ["cat", str(obj)], preexec_fn=_as_nobody, capture_output=True, text=True
        )
        assert other.returncode != 0 and "Permission denied" in other.stderr, other
        assert "root:" not in other.stdout
    finally:
        shutil.rmtree(shared)
    # the owner reads 0400 objects in 0700 directories: verify, bundle export, report
    owner = {"preexec_fn": drop_dac_capabilities}
    proc = cli(case, "verify", "--quiet", **owner)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tmp_path / "out").mkdir()
    proc = cli(case, "bundle", "export", "--all", "--out", tmp_path / "out" / "b.tar", **owner)
    assert proc.returncode == 0, proc.stderr
    pub = case.key.with_suffix(".pub")
    proc = cli(case, "bundle", "verify", tmp_path / "out" / "b.tar", "--trust", pub, **owner)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    other = tmp_path / "other"
    assert cli(case, "init", other, "--case-id", "2026-018", "--title", "t").returncode == 0
    proc = cli(
        case,
        "bundle",
        "import",
        tmp_path / "out" / "b.tar",
        "--case",
        other,
        "--trust",
        pub,
        **owner,
    )
    assert proc.returncode == 0, proc.stderr
    assert cli(case, "verify", "--quiet", "--case", other, **owner).returncode == 0
    out = tmp_path / "out" / "r.json"
    proc = cli(case, "report", "--format", "json", "--out", out, **owner)
    assert proc.returncode == 0, proc.stderr
    # a hand-over: receive re-hashes the stored copy
    new_key(case.run, tmp_path / "lee.pem", "Lee Okafor", "counsel", default=False)
    lee = ("--name", "Lee Okafor", "--role", "counsel")
    assert cli(case, "key", "import", tmp_path / "lee.pub", *lee).returncode == 0
    proc = cli(case, "transfer", item["id"], "--to", "Lee Okafor", "--reason", "r", "--json")
    assert proc.returncode == 0, proc.stderr
    tid = json.loads(proc.stdout)["id"]
    proc = cli(case, "receive", tid, "--key", tmp_path / "lee.pem", "--json", **owner)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["items"][item["id"]]["match"] is True
