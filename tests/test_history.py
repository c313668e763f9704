"""Invariant 5: a checkpoint pins history even against someone who holds the signing key.

The module builds one case through the CLI: Dana collects three files (events 0-5),
signs checkpoint 1 (event 6, size 6), records three lifecycle events (7-9), signs
checkpoint 2 (event 10, size 10) and records one more event (11).  Checkpoints are
checked independently of custody (``custody.note``, ``custody.merkle`` and the raw
event bodies), then the ledger is rewritten the way Dana herself could: events cut off
the end, or one event edited and everything after it re-signed and re-chained with
her real key, checkpoints inside the ledger re-made, derived tables rebuilt.  Such
a ledger is perfect on its own; only a checkpoint handed out earlier exposes it.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, Case, Run, one_error_line, template_case
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody import merkle, note
from custody.canonical import canonical_json, content_hash
from custody.checkpoint import note_key_name
from custody.keys import Signer, load_signer
from custody.ledger import Ledger, artifact_index_row, event_items
from custody.writers import lifecycle_event

CASE_ID = "2026-017"
ORIGIN = f"custody/{CASE_ID}"
CP1_SIZE, CP2_SIZE, EVENTS = 6, 10, 12

# -- helpers ---------------------------------------------------------------------------


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def verify(case: Case, *flags: str | Path) -> tuple[int, dict[str, Any]]:
    proc = case("verify", "--json", "--quick", *flags)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def leaves_of(events: list[dict[str, Any]]) -> list[bytes]:
    return [merkle.leaf_hash(e["body"].encode("utf-8")) for e in events]


def signed_checkpoint(
    signer: Signer, size: int, root: bytes, origin: str = ORIGIN, name: str | None = None
) -> str:
    body = note.format_checkpoint(
        note.Checkpoint(origin=origin, size=size, root=root, extensions=[])
    )
    key_name = name or note_key_name(signer.identity.name)
    return note.sign_note(body, key_name, signer.sign, signer.identity.public_raw)


class Triggerless:
    """A write connection to custody.db with every append-only trigger dropped,
    recreated exactly as it was on exit (what anyone holding the file can do)."""

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(db, isolation_level=None)

    def __enter__(self) -> sqlite3.Connection:
        self.triggers = self.conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
        ).fetchall()
        assert len(self.triggers) >= 10
        self.conn.execute("BEGIN IMMEDIATE")
        for name, _ in self.triggers:
            self.conn.execute(f"DROP TRIGGER {name}")
        return self.conn

    def __exit__(self, *exc: object) -> None:
        try:
            for _, sql in self.triggers:
                self.conn.execute(sql)
            self.conn.execute("COMMIT" if exc[0] is None else "ROLLBACK")
        finally:
            self.conn.close()


def store_tree(conn: sqlite3.Connection, leaves: list[bytes]) -> None:
    """Replace the stored Merkle nodes by the complete subtrees of ``leaves``."""
    conn.execute("DELETE FROM merkle_nodes")
    levels: list[list[bytes]] = [list(leaves)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append(
            [merkle.node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        )
    conn.executemany(
        "INSERT INTO merkle_nodes (level, idx, hash) VALUES (?, ?, ?)",
        [(lv, i, h) for lv, hs in enumerate(levels) for i, h in enumerate(hs)],
    )


Edit = Callable[[int, dict[str, Any], list[bytes]], None]


def drop_case_note(case_dir: Path, keep_note: bool) -> None:
    """The forger also removes the signed checkpoint note custody keeps in the case
    folder (``checkpoint.latest``), unless ``keep_note``; a copy kept off the
    case's media (``CUSTODY_STATE_DIR``) is out of the forger's reach here."""
    note_file = case_dir / "checkpoint.latest"
    assert note_file.is_file()
    if not keep_note:
        note_file.unlink()


def rewrite_history(
    case_dir: Path, signer: Signer, start: int, edit: Edit, *, keep_note: bool = False
) -> None:
    """The key holder's forgery: from event ``start`` on, let ``edit`` change each
    body, then re-chain, re-hash and re-sign it with the real key; every checkpoint
    event in that range gets a freshly signed note over the rewritten tree; the
    derived tables (event_items, artifacts, merkle_nodes) are rebuilt to match; the
    case folder's checkpoint note is removed (:func:`drop_case_note`)."""
    drop_case_note(case_dir, keep_note)
    db = case_dir / "custody.db"
    with Triggerless(db) as conn:
        (header_hash,) = conn.execute("SELECT hash FROM case_info").fetchone()
        events = conn.execute("SELECT seq, body FROM events ORDER BY seq").fetchall()
        prev, leaves, final = header_hash, [], []
        for seq, text in events:
            body = json.loads(text)
            if seq >= start:
                assert body["signer"] == signer.fingerprint, "the forger signs as Dana only"
                body["prev"] = prev
                if body["type"] == "checkpoint":
                    size = body["data"]["size"]
                    root = merkle.root(leaves[:size])
                    body["data"]["root"] = b64(root)
                    body["data"]["note"] = signed_checkpoint(signer, size, root)
                edit(seq, body, leaves)
                raw = canonical_json(body)
                conn.execute(
                    "UPDATE events SET body = ?, hash = ?, prev = ?, signature = ? WHERE seq = ?",
                    (raw.decode("utf-8"), content_hash(raw), prev, b64(signer.sign(raw)), seq),
                )
            else:
                raw = text.encode("utf-8")
            prev = content_hash(raw)
            leaves.append(merkle.leaf_hash(raw))
            final.append((seq, body))
        conn.execute("DELETE FROM event_items")
        for seq, body in final:
            data = body["data"]
            for item in event_items(data.get("item"), data):
                conn.execute("INSERT INTO event_items (item, seq) VALUES (?, ?)", (item, seq))
            if body["type"] == "collect":
                row = artifact_index_row(seq, data)
                conn.execute(
                    f"UPDATE artifacts SET {', '.join(f'{k} = ?' for k in row)} WHERE id = ?",
                    (*row.values(), row["id"]),
                )
        store_tree(conn, leaves)


def truncate(case_dir: Path, keep: int, *, keep_note: bool = False) -> None:
    """Delete every event from seq ``keep`` on, and their derived rows (and the case
    folder's checkpoint note: :func:`drop_case_note`)."""
    drop_case_note(case_dir, keep_note)
    with Triggerless(case_dir / "custody.db") as conn:
        for table, col in (
            ("event_items", "seq"),
            ("artifacts", "event_seq"),
            ("identities", "event_seq"),
            ("events", "seq"),
        ):
            conn.execute(f"DELETE FROM {table} WHERE {col} >= ?", (keep,))
        conn.execute("DELETE FROM merkle_nodes WHERE ((idx + 1) << level) > ?", (keep,))


# -- the case --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("history")
    case = template_case(root)
    ev = root / "evidence"
    ev.mkdir()
    files = []
    for i in range(1, 4):
        f = ev / f"exhibit-{i}.log"
        f.write_bytes(f"evidence {i}: user=svc-payroll src=10.0.0.{i}\n".encode() * (5 * i))
        files.append(f)
    case(  # no describe events: the history below is counted event by event
        "collect",
        "--no-selftest",
        "--no-describe",
        "--reason",
        "suspected credential theft",
        *files,
        check=True,
    )
    cp1 = case("checkpoint", "--out", root / "cp1.txt", check=True)
    signer = load_signer(root / "dana.pem", PASSPHRASE.encode())
    with Ledger.open(case.dir) as ledger:  # set-up only: the CLI runs this same code
        for action, item in (("note", "ITEM-1"), ("seal", "ITEM-2"), ("access", "ITEM-3")):
            lifecycle_event(ledger, signer, action, [item], f"{action} for the record")
    cp2 = case("checkpoint", "--out", root / "cp2.txt", "--json", check=True)
    with Ledger.open(case.dir) as ledger:
        lifecycle_event(ledger, signer, "analysis", ["ITEM-1"], "login timeline")
    keys = json.loads(case("key", "list", "--json", check=True).stdout)
    events = json.loads(case("log", "--json", check=True).stdout)
    assert len(events) == EVENTS
    assert [events[i]["type"] for i in (6, 10)] == ["checkpoint", "checkpoint"]
    return {
        "root": root,
        "cp1_stdout": cp1.stdout,
        "cp2_json": json.loads(cp2.stdout),
        "vkey": keys[0]["vkey"],
        "events": events,
    }


class Hist:
    def __init__(self, case: Case, template: dict[str, Any], tmp: Path) -> None:
        self.case = case
        self.t = template
        self.tmp = tmp
        self.cp1 = tmp / "cp1.txt"
        self.cp2 = tmp / "cp2.txt"
        self.events: list[dict[str, Any]] = template["events"]
        self.leaves = leaves_of(self.events)

    def signer(self) -> Signer:
        return load_signer(self.tmp / "dana.pem", PASSPHRASE.encode())


@pytest.fixture
def hist(template: dict[str, Any], run: Run, tmp_path: Path) -> Hist:
    root: Path = template["root"]
    shutil.copytree(root / "case", tmp_path / "case", symlinks=True)
    for f in ("dana.pem", "dana.pub", "cp1.txt", "cp2.txt"):
        shutil.copy2(root / f, tmp_path / f)
    run.env["CUSTODY_KEY"] = str(tmp_path / "dana.pem")
    return Hist(Case(dir=tmp_path / "case", key=tmp_path / "dana.pem", run=run), template, tmp_path)


# -- checkpoints, checked without custody's help -----------------------------------------


def test_checkpoint_is_a_signed_note_over_the_ledger(hist: Hist) -> None:
    events = hist.events
    verifier = note.parse_verifier_key(hist.t["vkey"])
    assert verifier.name == "dana-reyes"
    for path, size, seq in ((hist.cp1, CP1_SIZE, 6), (hist.cp2, CP2_SIZE, 10)):
        text = path.read_text(encoding="utf-8")
        opened = note.open_note(text, [verifier])
        assert opened.verified_by == [verifier]
        (sig,) = opened.sigs
        assert (sig.name, sig.key_id) == ("dana-reyes", verifier.key_id)
        cp = note.parse_checkpoint(opened.text)
        # size = the events before the checkpoint event, root = RFC 9162 root of their bodies
        assert (cp.origin, cp.size, cp.extensions) == (ORIGIN, size, [])
        assert cp.root == merkle.root(leaves_of(events[:size]))
        assert opened.text == f"{ORIGIN}\n{size}\n{b64(cp.root)}\n"
        # ...and it is recorded in the ledger as the next event
        ev = events[seq]
        data = json.loads(ev["body"])["data"]
        assert (ev["type"], data["size"], data["root"], data["note"], data["vkey"]) == (
            "checkpoint",
            size,
            b64(cp.root),
            text,
            hist.t["vkey"],
        )
        # One changed byte, or another key, and it no longer opens.
        forged = text.replace(f"\n{size}\n", f"\n{size - 1}\n")
        with pytest.raises(note.InvalidSignatureError):
            note.open_note(forged, [verifier])
        other = note.Verifier.from_public(
            "dana-reyes", Signer(Ed25519PrivateKey.generate(), "x", "y").identity.public_raw
        )
        with pytest.raises(note.UnverifiedNoteError):
            note.open_note(text, [other])
    assert hist.t["cp1_stdout"] == hist.cp1.read_text(encoding="utf-8")
    cp2 = hist.t["cp2_json"]
    assert (cp2["event"], cp2["size"], cp2["origin"], cp2["vkey"]) == (
        10,
        CP2_SIZE,
        ORIGIN,
        hist.t["vkey"],
    )
    assert cp2["note"] == hist.cp2.read_text(encoding="utf-8")


def test_prove_inclusion_verifies_independently(hist: Hist) -> None:
    c = hist.case
    proc = c("prove", "inclusion", "ITEM-1", "--checkpoint", hist.cp2, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    root2 = note.parse_checkpoint(
        note.open_note(hist.cp2.read_text(), [note.parse_verifier_key(hist.t["vkey"])]).text
    ).root
    assert out["checkpoint"] == {
        "origin": ORIGIN,
        "size": CP2_SIZE,
        "root": b64(root2),
        "signed_by": ["dana-reyes"],
    }
    # ITEM-1: collected (2), noted (7), analysed (11, after the checkpoint)
    assert [(p["seq"], p["included"]) for p in out["proofs"]] == [(2, True), (7, True), (11, False)]
    for p in out["proofs"][:2]:
        ev = hist.events[p["seq"]]
        leaf = merkle.leaf_hash(ev["body"].encode("utf-8"))
        assert (p["hash"], p["leaf_hash"], p["leaf_index"], p["tree_size"]) == (
            ev["hash"],
            leaf.hex(),
            ev["seq"],
            CP2_SIZE,
        )
        proof = [bytes.fromhex(h) for h in p["proof"]]
        merkle.verify_inclusion(leaf, ev["seq"], CP2_SIZE, proof, root2)
        assert proof == merkle.inclusion_proof(hist.leaves, ev["seq"], CP2_SIZE)
        bad = list(proof)
        bad[0] = bytes(32)
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaf, ev["seq"], CP2_SIZE, bad, root2)
        with pytest.raises(merkle.ProofError):  # another event's leaf
            merkle.verify_inclusion(hist.leaves[3], ev["seq"], CP2_SIZE, proof, root2)
    # by event hash against checkpoint 1 (size 6)
    proc = c("prove", "inclusion", hist.events[4]["hash"], "--checkpoint", hist.cp1, "--json")
    assert proc.returncode == 0, proc.stderr
    (p,) = json.loads(proc.stdout)["proofs"]
    root1 = merkle.root(hist.leaves[:CP1_SIZE])
    merkle.verify_inclusion(
        hist.leaves[4], 4, CP1_SIZE, [bytes.fromhex(h) for h in p["proof"]], root1
    )


def test_prove_consistency_verifies_independently(hist: Hist) -> None:
    c = hist.case
    proc = c("prove", "consistency", hist.cp1, hist.cp2, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    root1 = merkle.root(hist.leaves[:CP1_SIZE])
    root2 = merkle.root(hist.leaves[:CP2_SIZE])
    assert (out["old"]["size"], out["old"]["root"], out["new"]["size"], out["new"]["root"]) == (
        CP1_SIZE,
        b64(root1),
        CP2_SIZE,
        b64(root2),
    )
    assert out["consistent"] is True
    proof = [bytes.fromhex(h) for h in out["proof"]]
    merkle.verify_consistency(CP1_SIZE, CP2_SIZE, proof, root1, root2)
    assert proof == merkle.consistency_proof(hist.leaves, CP1_SIZE, CP2_SIZE)
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(CP1_SIZE, CP2_SIZE, proof, root2, root1)
    # the wrong way round is a usage error
    proc = c("prove", "consistency", hist.cp2, hist.cp1)
    assert proc.returncode == 2
    assert "newer" in one_error_line(proc)


# -- history rewritten by the key holder -----------------------------------------------


def test_truncated_history_caught_only_by_checkpoint(hist: Hist) -> None:
    """Cut events 8-11 (seal, access, checkpoint 2, analysis): the chain is intact and
    the checkpoint still recorded (event 6) is consistent, so the ledger alone looks
    fine.  Checkpoint 2, handed to counsel, commits to 10 events."""
    keep = 8
    truncate(hist.case.dir, keep)
    rc, report = verify(hist.case)
    assert (rc, report["findings"], report["events"]) == (0, [], keep)
    assert report["checkpoints_checked"] == 1

    rc, report = verify(hist.case, "--checkpoint", hist.cp1, "--checkpoint", hist.cp2)
    assert rc == 1
    assert report["findings"] == [
        {
            "kind": "checkpoint",
            "subject": str(hist.cp2),
            "detail": f"ledger has {keep} events, fewer than the {CP2_SIZE} the checkpoint commits"
            " to: events were removed (truncated history)",
        }
    ]
    proc = hist.case("prove", "consistency", hist.cp1, hist.cp2)
    assert proc.returncode == 1
    assert "fewer" in proc.stderr and "Traceback" not in proc.stderr


def test_rewritten_and_resigned_history_caught_only_by_checkpoint(hist: Hist) -> None:
    """Edit the reason of ITEM-2's collection (event 3) and re-sign everything after it
    with Dana's real key, re-making both recorded checkpoints."""
    old = hist.events[3]["body"]
    assert '"reason":"suspected credential theft"' in old

    def edit(seq: int, body: dict[str, Any], leaves: list[bytes]) -> None:
        if seq == 3:
            assert body["data"]["reason"] == "suspected credential theft"
            body["data"]["reason"] = "routine backup"

    rewrite_history(hist.case.dir, hist.signer(), 3, edit)
    events = json.loads(hist.case("log", "--json", check=True).stdout)
    assert json.loads(events[3]["body"])["data"]["reason"] == "routine backup"
    assert [e["hash"] for e in events[:3]] == [e["hash"] for e in hist.events[:3]]
    assert all(a["hash"] != b["hash"] for a, b in zip(events[3:], hist.events[3:], strict=True))

    # A perfect forgery against the ledger alone: every hash, link, signature, derived
    # table and recorded checkpoint checks out.
    rc, report = verify(hist.case)
    assert (rc, report["findings"], report["checkpoints_checked"]) == (0, [], 2)

    # Counsel's checkpoints, saved before the rewrite, expose it.
    rc, report = verify(hist.case, "--checkpoint", hist.cp1, "--checkpoint", hist.cp2)
    assert rc == 1
    assert [(f["kind"], f["subject"]) for f in report["findings"]] == [
        ("checkpoint", str(hist.cp1)),
        ("checkpoint", str(hist.cp2)),
    ]
    new_leaves = leaves_of(events)
    for f, size in zip(report["findings"], (CP1_SIZE, CP2_SIZE), strict=True):
        assert "not consistent" in f["detail"]
        assert b64(merkle.root(new_leaves[:size])) in f["detail"]
        assert b64(merkle.root(hist.leaves[:size])) in f["detail"]

    # A new checkpoint of the forged ledger cannot be shown to extend the old one.
    proc = hist.case("checkpoint", "--out", hist.tmp / "cp2-new.txt")
    assert proc.returncode == 0, proc.stderr
    proc = hist.case("prove", "consistency", hist.cp1, hist.tmp / "cp2-new.txt")
    assert proc.returncode == 1
    assert "not consistent" in proc.stderr and "Traceback" not in proc.stderr
    proc = hist.case("prove", "inclusion", "ITEM-2", "--checkpoint", hist.cp1)
    assert proc.returncode == 1
    assert "not consistent" in proc.stderr and "Traceback" not in proc.stderr


def test_case_folders_note_catches_what_the_ledger_alone_hides(hist: Hist) -> None:
    """The same truncation and rewrite, the case folder's signed checkpoint note
    (written after the last writing command, size 12) left in place: plain verify,
    with no checkpoint given, finds both."""
    note_file = hist.case.dir / "checkpoint.latest"
    lines = note_file.read_text(encoding="utf-8").splitlines()
    assert lines[:3] == [ORIGIN, str(EVENTS), b64(merkle.root(hist.leaves))]
    saved = hist.tmp / "saved-case"
    shutil.copytree(hist.case.dir, saved, symlinks=True)

    truncate(hist.case.dir, 8, keep_note=True)
    rc, report = verify(hist.case)
    assert rc == 1
    assert report["findings"] == [
        {
            "kind": "checkpoint",
            "subject": str(note_file),
            "detail": f"ledger has 8 events, fewer than the {EVENTS} the checkpoint commits"
            " to: events were removed (truncated history)",
        }
    ]

    shutil.rmtree(hist.case.dir)
    shutil.copytree(saved, hist.case.dir, symlinks=True)

    def edit(seq: int, body: dict[str, Any], leaves: list[bytes]) -> None:
        if seq == 11:
            body["data"]["reason"] = "nothing found"

    rewrite_history(hist.case.dir, hist.signer(), 11, edit, keep_note=True)
    rc, report = verify(hist.case)
    assert rc == 1
    assert [(f["kind"], f["subject"]) for f in report["findings"]] == [
        ("checkpoint", str(note_file))
    ]
    assert "(history was rewritten)" in report["findings"][0]["detail"]


def test_rewrite_that_keeps_the_checkpointed_prefix_is_consistent(hist: Hist) -> None:
    """The other side of the coin: re-signing only events after checkpoint 2 (here,
    changing the analysis reason) is invisible to it - a checkpoint pins what it
    covers, no more."""

    def edit(seq: int, body: dict[str, Any], leaves: list[bytes]) -> None:
        if seq == 11:
            body["data"]["reason"] = "nothing found"

    rewrite_history(hist.case.dir, hist.signer(), 11, edit)
    rc, report = verify(hist.case, "--checkpoint", hist.cp1, "--checkpoint", hist.cp2)
    assert (rc, report["findings"], report["checkpoints_checked"]) == (0, [], 4)


# -- checkpoints that are not what they claim ------------------------------------------


def test_checkpoint_from_unknown_key_or_other_case(hist: Hist) -> None:
    root = merkle.root(hist.leaves[:CP1_SIZE])
    stranger = Signer(Ed25519PrivateKey.generate(), "Dana Reyes", "collector")  # same name
    (hist.tmp / "stranger.txt").write_text(signed_checkpoint(stranger, CP1_SIZE, root))
    (hist.tmp / "other.txt").write_text(
        signed_checkpoint(hist.signer(), CP1_SIZE, root, origin="custody/2026-099")
    )
    rc, report = verify(
        hist.case, "--checkpoint", hist.tmp / "stranger.txt", "--checkpoint", hist.tmp / "other.txt"
    )
    assert rc == 1
    assert [(f["kind"], f["subject"]) for f in report["findings"]] == [
        ("checkpoint", str(hist.tmp / "stranger.txt")),
        ("checkpoint", str(hist.tmp / "other.txt")),
    ]
    assert "not signed by any key this case knows" in report["findings"][0]["detail"]
    assert "another log or case" in report["findings"][1]["detail"]
    proc = hist.case("prove", "inclusion", "ITEM-1", "--checkpoint", hist.tmp / "stranger.txt")
    assert proc.returncode == 1
    assert "not signed by any key this case knows" in one_error_line(proc)


MALFORMED = "custody/2026-017\n6\nnot base64!\n\n— dana-reyes AAAA\n"


def test_malformed_checkpoint_is_bad_input_for_prove(hist: Hist) -> None:
    bad = hist.tmp / "bad.txt"
    bad.write_text(MALFORMED)
    for args in (
        ["inclusion", "ITEM-1", "--checkpoint", bad],
        ["consistency", bad, hist.cp2],
        ["inclusion", "ITEM-1", "--checkpoint", hist.tmp / "missing.txt"],
    ):
        proc = hist.case("prove", *args)
        assert proc.returncode == 2, args
        one_error_line(proc)


@pytest.mark.parametrize("which", ["malformed", "missing"])
def test_malformed_checkpoint_is_bad_input_for_verify(hist: Hist, which: str) -> None:
    path = hist.tmp / f"{which}.txt"
    if which == "malformed":
        path.write_text(MALFORMED)
    proc = hist.case("verify", "--checkpoint", path)
    assert proc.returncode == 2
    one_error_line(proc)


def test_recorded_checkpoint_note_edited(hist: Hist) -> None:
    """The root inside checkpoint 1's recorded note changed in place: its signature no
    longer verifies (nor does the event's), and checkpoint 2, which covers event 6,
    no longer matches the events."""
    ev = hist.events[6]
    data = json.loads(ev["body"])["data"]
    fake = b64(bytes(32))
    body = ev["body"].replace(f"\\n{data['root']}\\n", f"\\n{fake}\\n")
    assert body != ev["body"]
    with Triggerless(hist.case.dir / "custody.db") as conn:
        conn.execute("UPDATE events SET body = ? WHERE seq = 6", (body,))
    rc, report = verify(hist.case)
    assert rc == 1
    assert {(f["kind"], f["subject"]) for f in report["findings"]} == {
        ("event-hash", "event 6"),
        ("signature", "event 6"),
        ("index", "merkle tree"),
        ("checkpoint", "event 6"),
        ("checkpoint", "event 10"),
        ("checkpoint", str(hist.case.dir / "checkpoint.latest")),  # the case folder's note
    }
    cp1, cp2, latest = [f["detail"] for f in report["findings"] if f["kind"] == "checkpoint"]
    assert "not signed by any key this case knows" in cp1
    assert "not consistent" in cp2
    assert "not consistent" in latest


@pytest.mark.parametrize("claim", ["wrong-root", "too-large"])
def test_recorded_checkpoint_forged_by_key_holder(hist: Hist, claim: str) -> None:
    """Checkpoint 1 re-made with Dana's real key over a false tree, the ledger
    re-signed after it: verify checks every recorded checkpoint against the events."""
    true_root = merkle.root(hist.leaves[:CP1_SIZE])
    lie = {}

    def edit(seq: int, body: dict[str, Any], leaves: list[bytes]) -> None:
        if seq == 6:
            size = CP1_SIZE if claim == "wrong-root" else CP1_SIZE + 1
            root = (
                merkle.root(leaves[: CP1_SIZE - 1])
                if claim == "wrong-root"
                else merkle.root(hist.leaves[:size])
            )
            lie["root"] = root
            body["data"].update(
                size=size, root=b64(root), note=signed_checkpoint(hist.signer(), size, root)
            )

    rewrite_history(hist.case.dir, hist.signer(), 6, edit)
    rc, report = verify(hist.case)
    assert rc == 1
    if claim == "wrong-root":
        assert report["findings"] == [
            {
                "kind": "checkpoint",
                "subject": "event 6",
                "detail": f"ledger is not consistent with the checkpoint: its first {CP1_SIZE}"
                f" events hash to root {b64(true_root)}, the checkpoint says"
                f" {b64(lie['root'])} (history was rewritten)",
            }
        ]
    else:
        assert {(f["kind"], f["subject"]) for f in report["findings"]} == {
            ("checkpoint", "event 6")
        }
        assert any(
            f["detail"] == f"commits to {CP1_SIZE + 1} events but was recorded as event 6"
            for f in report["findings"]
        )


def test_recorded_checkpoint_of_a_prefix_is_accepted(hist: Hist) -> None:
    """ledger-format §9.1: a verifier MUST accept a checkpoint event whose size n is
    below its own seq (earlier custody versions recorded n = seq − 1); the prefix it
    names is still checked against its root (issue 15)."""

    def edit(seq: int, body: dict[str, Any], leaves: list[bytes]) -> None:
        if seq == 6:
            size = CP1_SIZE - 1
            root = merkle.root(leaves[:size])
            body["data"].update(
                size=size, root=b64(root), note=signed_checkpoint(hist.signer(), size, root)
            )

    rewrite_history(hist.case.dir, hist.signer(), 6, edit)
    rc, report = verify(hist.case)
    assert (rc, report["findings"]) == (0, [])


@pytest.mark.parametrize("version", [True, 2, "1"])
def test_event_version_must_be_the_integer_1(hist: Hist, version: object) -> None:
    """An event body whose "v" is true (a bool is an int in Python: True == 1),
    2 or "1" is not format version 1: an event-body finding (issue 15)."""

    def edit(seq: int, body: dict[str, Any], leaves: list[bytes]) -> None:
        if seq == EVENTS - 1:
            body["v"] = version

    rewrite_history(hist.case.dir, hist.signer(), EVENTS - 1, edit)
    rc, report = verify(hist.case)
    assert rc == 1
    assert report["findings"] == [
        {
            "kind": "event-body",
            "subject": f"event {EVENTS - 1}",
            "detail": f"unknown event format version {version!r}",
        }
    ]
