"""Tampering with a case must be caught by ``custody verify``.

Every test gets a copy of a case holding a few real files collected through the
CLI, tampers with it the way an attacker holding the files would (the store objects
directly, the ledger through the ``sqlite3`` CLI after dropping the append-only
triggers) and checks that ``custody verify`` exits 1 with a finding that names
exactly what was changed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import Case, Run, template_case, tool_digest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tampering import bypass, q, sqlite, sqlite_ok

from custody.canonical import canonical_json_any

# -- helpers -------------------------------------------------------------------------

# Any change to a recorded body also leaves the stored Merkle tree (which serves
# proofs) disagreeing with the events.
TREE = ("index", "merkle tree")


def digests_cli(path: Path) -> dict[str, str]:
    return {alg: tool_digest(f"{alg}sum", path) for alg in ("md5", "sha1", "sha256")}


def verify(case: Case, *flags: str) -> tuple[int, dict[str, Any]]:
    proc = case("verify", "--json", *flags)
    assert "Traceback" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout)
    return proc.returncode, report


def findings(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["kind"], f["subject"]) for f in report["findings"]}


def note(c: Collected) -> tuple[str, str]:
    """The finding of the case folder's signed checkpoint note (``checkpoint.latest``,
    written after the last writing command): the tampered ledger no longer extends it."""
    return ("checkpoint", str(c.case.dir / "checkpoint.latest"))


def assert_failed(rc: int, report: dict[str, Any]) -> None:
    assert rc == 1, report
    assert report["ok"] is False
    assert report["findings"], report


def make_evidence(root: Path, n: int = 3) -> list[Path]:
    """``n`` small files of distinct content and distinct sizes."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(1, n + 1):
        p = root / f"exhibit-{i}.log"
        p.write_bytes((f"evidence line {i}: user=svc-payroll src=10.0.0.{i}\n" * (10 * i)).encode())
        paths.append(p)
    return paths


class Collected:
    """A copy of the module's template case, with views of its items and events."""

    def __init__(self, case: Case, template: dict[str, Any]) -> None:
        self.case = case
        self.files = [case.dir.parent / "evidence" / f.name for f in template["files"]]
        self.db = case.dir / "custody.db"
        self.items: dict[str, dict[str, Any]] = template["items"]
        self.initial_events: list[dict[str, Any]] = template["events"]

    def events(self) -> list[dict[str, Any]]:
        return json.loads(self.case("log", "--json", check=True).stdout)

    def item(self, item_id: str) -> dict[str, Any]:
        return self.items[item_id]

    def object_path(self, item_id: str) -> Path:
        return self.case.dir / "store" / self.items[item_id]["store"]

    def subject(self, item_id: str) -> str:
        return f"{item_id} ({self.items[item_id]['store']})"

    def collect_seq(self, item_id: str) -> int:
        (ev,) = [e for e in self.initial_events if e["type"] == "collect" and e["item"] == item_id]
        return int(ev["seq"])


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One collected case per module (the CLI is slow to start); each test gets a
    copy of it."""
    root = tmp_path_factory.mktemp("template")
    case = template_case(root)
    files = make_evidence(root / "evidence")
    proc = case("collect", "--reason", "suspected credential theft", *files, "--json")
    assert proc.returncode == 0, proc.stderr
    items = {it["id"]: it for it in json.loads(case("list", "--json", check=True).stdout)}
    assert sorted(items) == [f"ITEM-{i}" for i in range(1, len(files) + 1)]
    events = json.loads(case("log", "--json", check=True).stdout)
    return {"root": root, "files": files, "items": items, "events": events}


@pytest.fixture
def collected(template: dict[str, Any], run: Run, tmp_path: Path) -> Collected:
    root: Path = template["root"]
    for name in ("case", "evidence"):
        shutil.copytree(root / name, tmp_path / name, symlinks=True)
    shutil.copy2(root / "dana.pem", tmp_path / "dana.pem")
    run.env["CUSTODY_KEY"] = str(tmp_path / "dana.pem")
    return Collected(Case(dir=tmp_path / "case", key=tmp_path / "dana.pem", run=run), template)


def rewrite_object(path: Path, data: bytes) -> None:
    """Overwrite a read-only store object and make it read-only again."""
    os.chmod(path, 0o644)
    path.write_bytes(data)
    os.chmod(path, 0o400)


def flip_byte(path: Path, offset: int = 7) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    rewrite_object(path, bytes(data))


def edit_body(c: Collected, seq: int, old: str, new: str) -> tuple[str, str]:
    """Replace ``old`` by ``new`` in the stored body of event ``seq`` (triggers
    dropped and recreated).  Returns (old body, new body)."""
    (ev,) = [e for e in c.initial_events if e["seq"] == seq]
    body = ev["body"]
    assert body.count(old) == 1
    forged = body.replace(old, new)
    bypass(c.db, "events", f"UPDATE events SET body = {q(forged)} WHERE seq = {seq};")
    return body, forged


# -- a clean case ------------------------------------------------------------------------


def test_clean_case_verifies(collected: Collected) -> None:
    rc, report = verify(collected.case)
    assert rc == 0
    assert report["ok"] is True
    assert report["findings"] == []
    assert report["quick"] is False
    assert report["artifacts"] == 3
    assert report["objects_checked"] == 3
    assert report["bytes_checked"] == sum(f.stat().st_size for f in collected.files)
    events = collected.initial_events
    assert report["events"] == len(events)
    assert report["head"] == events[-1]["hash"]

    rc, report = verify(collected.case, "--quick")
    assert (rc, report["ok"], report["quick"], report["objects_checked"]) == (0, True, True, 0)

    # The human-readable form agrees.
    proc = collected.case("verify")
    assert proc.returncode == 0
    assert "OK:" in proc.stdout


def test_store_digests_match_sha256sum(collected: Collected) -> None:
    for item_id, f in zip(sorted(collected.items), collected.files, strict=True):
        obj = collected.object_path(item_id)
        assert digests_cli(obj) == digests_cli(f) == collected.item(item_id)["digests"]
        sha = tool_digest("sha256sum", f)
        assert collected.item(item_id)["store"] == f"sha256/{sha[:2]}/{sha}"
        assert stat.S_IMODE(obj.stat().st_mode) == 0o400


# -- the store -------------------------------------------------------------------------


def test_flipped_byte_in_store_object(collected: Collected) -> None:
    obj = collected.object_path("ITEM-2")
    before = digests_cli(obj)
    flip_byte(obj)
    after = digests_cli(obj)
    assert before["sha256"] == collected.item("ITEM-2")["sha256"]
    assert after["sha256"] != before["sha256"]

    rc, report = verify(collected.case)
    assert_failed(rc, report)
    subject = collected.subject("ITEM-2")
    assert report["findings"] == [
        {
            "kind": "object-digest",
            "subject": subject,
            "detail": f"{alg}: expected {before[alg]}, found {after[alg]}",
        }
        for alg in ("md5", "sha1", "sha256")
    ]
    # The same size: no size finding, and the other items are fine.
    assert findings(report) == {("object-digest", subject)}


def test_store_object_replaced_by_other_content(collected: Collected) -> None:
    obj = collected.object_path("ITEM-1")
    want_sha = collected.item("ITEM-1")["sha256"]
    want_size = collected.item("ITEM-1")["size"]
    rewrite_object(obj, b"nothing to see here\n")
    found_sha = tool_digest("sha256sum", obj)

    rc, report = verify(collected.case)
    assert_failed(rc, report)
    subject = collected.subject("ITEM-1")
    assert findings(report) == {("object-size", subject), ("object-digest", subject)}
    details = [f["detail"] for f in report["findings"]]
    assert f"expected {want_size} bytes, found 20" in details
    assert f"sha256: expected {want_sha}, found {found_sha}" in details


def test_store_object_replaced_same_size(collected: Collected) -> None:
    obj = collected.object_path("ITEM-3")
    size = collected.item("ITEM-3")["size"]
    rewrite_object(obj, b"X" * size)
    found_sha = tool_digest("sha256sum", obj)

    rc, report = verify(collected.case)
    assert_failed(rc, report)
    subject = collected.subject("ITEM-3")
    assert findings(report) == {("object-digest", subject)}
    assert {
        "kind": "object-digest",
        "subject": subject,
        "detail": f"sha256: expected {collected.item('ITEM-3')['sha256']}, found {found_sha}",
    } in report["findings"]


def test_store_object_deleted(collected: Collected) -> None:
    obj = collected.object_path("ITEM-2")
    obj.unlink()

    rc, report = verify(collected.case)
    assert_failed(rc, report)
    assert report["findings"] == [
        {
            "kind": "object-missing",
            "subject": collected.subject("ITEM-2"),
            "detail": f"store object is missing: expected sha256 {collected.item('ITEM-2')['sha256']}",
        }
    ]


def test_store_object_made_writable(collected: Collected) -> None:
    obj = collected.object_path("ITEM-1")
    os.chmod(obj, 0o644)
    rc, report = verify(collected.case)
    assert_failed(rc, report)
    assert findings(report) == {("object-writable", collected.subject("ITEM-1"))}


def test_quick_does_not_rehash_the_store(collected: Collected) -> None:
    flip_byte(collected.object_path("ITEM-1"))
    rc, report = verify(collected.case, "--quick")
    assert rc == 0
    assert report["ok"] is True
    assert report["objects_checked"] == 0
    assert report["bytes_checked"] == 0
    # ...the full verify does see it.
    rc, report = verify(collected.case)
    assert_failed(rc, report)
    assert findings(report) == {("object-digest", collected.subject("ITEM-1"))}


def test_quick_still_checks_the_chain(collected: Collected) -> None:
    seq = collected.collect_seq("ITEM-3")
    edit_body(collected, seq, '"reason":"suspected credential theft"', '"reason":"routine"')
    rc, report = verify(collected.case, "--quick")
    assert_failed(rc, report)
    assert ("event-hash", f"event {seq}") in findings(report)
    assert report["objects_checked"] == 0


# -- the ledger ------------------------------------------------------------------------


def test_trigger_refuses_plain_update_and_delete(collected: Collected) -> None:
    seq = collected.collect_seq("ITEM-1")
    proc = sqlite(collected.db, f"UPDATE events SET body = 'x' WHERE seq = {seq};")
    assert proc.returncode != 0
    assert "append-only: UPDATE on events refused" in proc.stderr
    proc = sqlite(collected.db, f"DELETE FROM events WHERE seq = {seq};")
    assert proc.returncode != 0
    assert "append-only: DELETE on events refused" in proc.stderr
    for table in ("artifacts", "identities", "case_info"):
        proc = sqlite(collected.db, f"DELETE FROM {table};")
        assert proc.returncode != 0, table
        assert f"append-only: DELETE on {table} refused" in proc.stderr
    rc, report = verify(collected.case)
    assert (rc, report["ok"]) == (0, True)


def test_event_body_edited(collected: Collected) -> None:
    seq = collected.collect_seq("ITEM-2")
    # A plain UPDATE is refused by the trigger...
    proc = sqlite(collected.db, f"UPDATE events SET body = 'x' WHERE seq = {seq};")
    assert proc.returncode != 0
    assert "append-only" in proc.stderr
    # ...so the attacker drops it, edits the body, and recreates it.
    old, new = edit_body(
        collected, seq, '"reason":"suspected credential theft"', '"reason":"routine backup"'
    )
    stored_hash = next(e["hash"] for e in collected.initial_events if e["seq"] == seq)
    body_file = collected.case.dir.parent / "forged-body.bin"
    body_file.write_bytes(new.encode("utf-8"))
    forged_hash = "sha256:" + tool_digest("sha256sum", body_file)
    assert stored_hash == "sha256:" + _sha256_text(old, body_file)

    rc, report = verify(collected.case)
    assert_failed(rc, report)
    subject = f"event {seq}"
    assert findings(report) == {
        ("event-hash", subject),
        ("signature", subject),
        TREE,
        note(collected),
    }
    assert {
        "kind": "event-hash",
        "subject": subject,
        "detail": f"stored hash {stored_hash}, body hashes to {forged_hash}",
    } in report["findings"]


def _sha256_text(text: str, scratch: Path) -> str:
    scratch.write_bytes(text.encode("utf-8"))
    return tool_digest("sha256sum", scratch)


def test_event_body_edited_and_rehashed(collected: Collected) -> None:
    """The attacker also recomputes the stored hash: the signature and the next
    event's link still give it away."""
    seq = collected.collect_seq("ITEM-2")
    _, new = edit_body(
        collected, seq, '"reason":"suspected credential theft"', '"reason":"routine backup"'
    )
    scratch = collected.case.dir.parent / "scratch.bin"
    new_hash = "sha256:" + _sha256_text(new, scratch)
    bypass(collected.db, "events", f"UPDATE events SET hash = {q(new_hash)} WHERE seq = {seq};")

    rc, report = verify(collected.case)
    assert_failed(rc, report)
    assert findings(report) == {
        ("signature", f"event {seq}"),
        ("chain-link", f"event {seq + 1}"),
        TREE,
        note(collected),
    }


def test_event_digest_forged_with_store_object(collected: Collected) -> None:
    """Replace the evidence and rewrite the recorded digest to match."""
    item = collected.item("ITEM-1")
    seq = collected.collect_seq("ITEM-1")
    obj = collected.object_path("ITEM-1")
    fake = b"harmless\n"
    scratch = collected.case.dir.parent / "fake.bin"
    scratch.write_bytes(fake)
    fake_sha = tool_digest("sha256sum", scratch)
    rewrite_object(obj, fake)
    edit_body(collected, seq, f'"sha256":"{item["sha256"]}"', f'"sha256":"{fake_sha}"')

    rc, report = verify(collected.case)
    assert_failed(rc, report)
    got = findings(report)
    assert {("event-hash", f"event {seq}"), ("signature", f"event {seq}")} <= got
    # The artifacts index still holds the original digest.
    assert ("index", "ITEM-1") in got
    assert ("object-size", collected.subject("ITEM-1")) in got


def test_event_deleted(collected: Collected) -> None:
    seq = collected.collect_seq("ITEM-2")
    events = collected.initial_events
    bypass(collected.db, "events", f"DELETE FROM events WHERE seq = {seq};")
    left = sqlite_ok(collected.db, "SELECT seq FROM events ORDER BY seq;").split()
    assert left == [str(e["seq"]) for e in events if e["seq"] != seq]

    rc, report = verify(collected.case)
    assert_failed(rc, report)
    nxt = f"event {seq + 1}"
    assert {
        "kind": "chain-gap",
        "subject": nxt,
        "detail": f"expected event {seq} next, found event {seq + 1} (1 missing)",
    } in report["findings"]
    assert {
        "kind": "chain-link",
        "subject": nxt,
        "detail": f"prev is {events[seq + 1]['prev']}, previous event's hash is "
        f"{events[seq - 1]['hash']}",
    } in report["findings"]
    # The artifacts index still lists ITEM-2, which no signed event records any more;
    # its stored bytes, which no event names now, are evidence of the lost event.
    assert findings(report) == {
        ("chain-gap", nxt),
        ("chain-link", nxt),
        ("index", "ITEM-2"),
        ("object-unrecorded", collected.item("ITEM-2")["store"]),
        TREE,
        note(collected),
    }


def test_events_swapped(collected: Collected) -> None:
    a = collected.collect_seq("ITEM-1")
    b = collected.collect_seq("ITEM-2")
    assert b == a + 1
    cols = ["hash", "prev", "type", "time", "signer", "item", "body", "signature"]
    other = f"CASE events.seq WHEN {a} THEN {b} ELSE {a} END"
    stmts = (
        f"CREATE TEMP TABLE saved AS SELECT * FROM events WHERE seq IN ({a}, {b});"
        # hash is UNIQUE: clear both first, then swap every column but seq.
        f"UPDATE events SET hash = 'swap-' || seq WHERE seq IN ({a}, {b});"
        "UPDATE events SET "
        + ", ".join(f"{c} = (SELECT {c} FROM saved WHERE saved.seq = {other})" for c in cols)
        + f" WHERE seq IN ({a}, {b});"
    )
    before = {e["seq"]: e for e in collected.initial_events}
    bypass(collected.db, "events", stmts)
    rows = sqlite_ok(
        collected.db,
        f"SELECT seq, hash, signature FROM events WHERE seq IN ({a}, {b}) ORDER BY seq;",
    ).split()
    assert rows == [
        f"{a}|{before[b]['hash']}|{before[b]['signature']}",
        f"{b}|{before[a]['hash']}|{before[a]['signature']}",
    ]

    rc, report = verify(collected.case)
    assert_failed(rc, report)
    # Each body's hash and signature are still valid (the signer did sign it, just
    # at the other position): the links, the positions and the index give it away.
    # The event after the pair links to the original b, no longer there.
    assert findings(report) == {
        ("chain-link", f"event {a}"),
        ("event-mismatch", f"event {a}"),
        ("chain-link", f"event {b}"),
        ("event-mismatch", f"event {b}"),
        ("chain-link", f"event {b + 1}"),
        ("index", "ITEM-1"),
        ("index", "ITEM-2"),
        TREE,
        note(collected),
    }
    assert {
        "kind": "event-mismatch",
        "subject": f"event {a}",
        "detail": f"seq: ledger row says {a}, signed body says {b}",
    } in report["findings"]
    assert {
        "kind": "event-mismatch",
        "subject": f"event {b}",
        "detail": f"seq: ledger row says {b}, signed body says {a}",
    } in report["findings"]
    assert {
        "kind": "index",
        "subject": "ITEM-1",
        "detail": f"artifacts.event_seq is {a}, signed event {b} says {b}",
    } in report["findings"]


def _fresh_public_key_b64() -> str:
    pub = Ed25519PrivateKey.generate().public_key()
    return base64.b64encode(pub.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def test_signer_public_key_swapped(collected: Collected) -> None:
    events = collected.initial_events
    (ident,) = [e for e in events if e["type"] == "case.open"]
    seq = ident["seq"]
    old_key = ident["signer_public_key"]
    fp = ident["signer"]
    new_key = _fresh_public_key_b64()
    assert new_key != old_key
    body = ident["body"]
    assert body.count(f'"public_key":"{old_key}"') == 1
    forged = body.replace(f'"public_key":"{old_key}"', f'"public_key":"{new_key}"')
    bypass(collected.db, "events", f"UPDATE events SET body = {q(forged)} WHERE seq = {seq};")
    bypass(
        collected.db,
        "identities",
        f"UPDATE identities SET public_key = {q(new_key)} WHERE fingerprint = {q(fp)};",
    )
    assert sqlite_ok(collected.db, "SELECT public_key FROM identities;").split() == [new_key]

    rc, report = verify(collected.case)
    assert_failed(rc, report)
    got = findings(report)
    subject = f"event {seq}"
    assert ("event-hash", subject) in got
    # The opening event's key no longer has the owner's fingerprint: it proves
    # nothing, so no event of that signer verifies, the opening one included.
    for e in events:
        assert ("unknown-signer", f"event {e['seq']}") in got
    # Nothing else: the identities table was forged consistently with the body.
    assert got == {("event-hash", subject), TREE, note(collected)} | {
        ("unknown-signer", f"event {e['seq']}") for e in events
    }


def test_signer_key_and_fingerprint_swapped(collected: Collected) -> None:
    """A thorough forger also rewrites the fingerprint and the stored hash."""
    events = collected.initial_events
    (ident,) = [e for e in events if e["type"] == "case.open"]
    seq = ident["seq"]
    old_key, old_fp = ident["signer_public_key"], ident["signer"]
    priv = Ed25519PrivateKey.generate()
    raw = priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    new_key = base64.b64encode(raw).decode("ascii")
    scratch = collected.case.dir.parent / "raw.pub"
    scratch.write_bytes(raw)
    new_fp = "sha256:" + tool_digest("sha256sum", scratch)
    forged = ident["body"].replace(old_key, new_key).replace(old_fp, new_fp)
    new_hash = "sha256:" + _sha256_text(forged, scratch)
    sig = base64.b64encode(priv.sign(forged.encode("utf-8"))).decode("ascii")
    bypass(
        collected.db,
        "events",
        f"UPDATE events SET body = {q(forged)}, hash = {q(new_hash)}, signer = {q(new_fp)},"
        f" signature = {q(sig)} WHERE seq = {seq};",
    )

    rc, report = verify(collected.case)
    assert_failed(rc, report)
    # Event 0 is now self-consistent (hash, self-signature, fingerprint), but the
    # next event does not link to it, the identities table still holds the real key,
    # and nothing after it was signed by the forged key.
    assert findings(report) == {
        ("chain-link", f"event {seq + 1}"),
        ("index", new_fp),
        ("index", old_fp),
        TREE,
        note(collected),
    } | {("unknown-signer", f"event {e['seq']}") for e in events if e["seq"] != seq}
    assert {
        "kind": "index",
        "subject": new_fp,
        "detail": f"recorded by event {seq} but missing from the identities table",
    } in report["findings"]
    assert {
        "kind": "index",
        "subject": old_fp,
        "detail": "in the identities table but no signed event records it",
    } in report["findings"]


# -- several problems at once ------------------------------------------------------------


def test_every_problem_is_reported(collected: Collected) -> None:
    flip_byte(collected.object_path("ITEM-1"))
    (collected.object_path("ITEM-3")).unlink()
    seq = collected.collect_seq("ITEM-2")
    edit_body(collected, seq, '"reason":"suspected credential theft"', '"reason":"routine"')

    rc, report = verify(collected.case)
    assert_failed(rc, report)
    assert findings(report) == {
        ("object-digest", collected.subject("ITEM-1")),
        ("object-missing", collected.subject("ITEM-3")),
        ("event-hash", f"event {seq}"),
        ("signature", f"event {seq}"),
        TREE,
        note(collected),
    }
    # The text report lists them too, one per line.
    proc = collected.case("verify")
    assert proc.returncode == 1
    assert f"FAILED: {len(report['findings'])} problem(s) found:" in proc.stdout
    for f in report["findings"]:
        assert f"  [{f['kind']}] {f['subject']}: {f['detail']}" in proc.stdout


# -- bad ledgers and bad places -----------------------------------------------------


@pytest.mark.parametrize("command", [["verify"], ["verify", "--json"], ["list"], ["log"]])
def test_garbage_ledger(collected: Collected, command: list[str]) -> None:
    db = collected.db
    for extra in (db.with_name("custody.db-wal"), db.with_name("custody.db-shm")):
        extra.unlink(missing_ok=True)
    db.write_bytes(bytes(range(256)) * 32)
    proc = collected.case(*command)
    assert proc.returncode == 1  # CorruptLedgerError: an integrity problem
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.endswith("\n")
    assert proc.stderr.startswith("custody: error: ")
    assert "not a database" in proc.stderr
    assert proc.stdout == ""


def test_truncated_ledger(collected: Collected) -> None:
    db = collected.db
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    proc = collected.case("verify")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("custody: error: ")


def test_list_outside_a_case(run: Run, tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    proc = run("list", cwd=nowhere)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "not inside a custody case" in proc.stderr
    proc = run("verify", cwd=nowhere)
    assert proc.returncode == 2


# -- hostile ledger contents: reported as findings, never a crash ----------------------


def rewrite_body(c: Collected, seq: int, change: Any) -> None:
    """Parse the body of event ``seq``, let ``change`` edit it, store it back as
    canonical JSON (triggers dropped and recreated)."""
    (ev,) = [e for e in c.initial_events if e["seq"] == seq]
    obj = json.loads(ev["body"])
    change(obj)
    forged = canonical_json_any(obj).decode("utf-8")
    bypass(c.db, "events", f"UPDATE events SET body = {q(forged)} WHERE seq = {seq};")


@pytest.mark.parametrize("forgery", ["digests-list", "size-string", "unknown-algorithm"])
def test_forged_malformed_body_is_reported_not_crashed(collected: Collected, forgery: str) -> None:
    seq = collected.collect_seq("ITEM-2")

    def change(body: dict[str, Any]) -> None:
        if forgery == "digests-list":
            body["data"]["digests"] = ["sha256"]
        elif forgery == "size-string":
            body["data"]["size"] = "large"
        else:
            body["data"]["digests"]["crc32"] = "00000000"

    rewrite_body(collected, seq, change)
    proc = collected.case("verify", "--json")
    assert "internal error" not in proc.stderr, proc.stderr
    assert proc.returncode == 1
    got = findings(json.loads(proc.stdout))
    assert {("event-hash", f"event {seq}"), ("signature", f"event {seq}")} <= got


def test_body_stored_as_blob_is_reported(collected: Collected) -> None:
    seq = collected.collect_seq("ITEM-1")
    bypass(
        collected.db, "events", f"UPDATE events SET body = CAST(body AS BLOB) WHERE seq = {seq};"
    )
    proc = collected.case("verify", "--json")
    assert "internal error" not in proc.stderr, proc.stderr
    assert proc.returncode == 1
    assert any(f[1] == f"event {seq}" for f in findings(json.loads(proc.stdout)))


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("display_path", "/home/alice/innocent.txt"),
        ("mime", "image/png"),
        ("kind", "directory"),
    ],
)
def test_artifact_index_display_columns(collected: Collected, column: str, value: str) -> None:
    bypass(
        collected.db,
        "artifacts",
        f"UPDATE artifacts SET {column} = {q(value)} WHERE id = 'ITEM-2';",
    )
    rc, report = verify(collected.case)
    assert rc == 1
    assert ("index", "ITEM-2") in findings(report)


def test_identity_role_tampering(collected: Collected) -> None:
    fp = collected.initial_events[0]["signer"]
    bypass(
        collected.db,
        "identities",
        f"UPDATE identities SET role = 'counsel' WHERE fingerprint = {q(fp)};",
    )
    rc, report = verify(collected.case)
    assert rc == 1
    assert ("index", fp) in findings(report)


def test_log_on_ledger_without_events_table(collected: Collected) -> None:
    # No trigger guards DROP TABLE.
    sqlite_ok(collected.db, "DROP TABLE events;")
    # verify already gets it right:
    proc = collected.case("verify")
    assert (proc.returncode, "Traceback" in proc.stderr) == (1, False)
    proc = collected.case("log")
    assert "internal error" not in proc.stderr, proc.stderr
    assert proc.returncode == 1
