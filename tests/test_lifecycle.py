"""Custody lifecycle (issue 3, invariant 6): two-party hand-overs, lifecycle events
and item states, identities imported, rotated and revoked.

Every test gets a copy of one case built through the real CLI per module: Dana
Reyes (collector, the default key) collected three files (ITEM-3 has the same
content as ITEM-1), imported Lee Okafor's public key file (counsel) and Kim Ng's
verifier-key string as Kim's own case prints it (examiner).  Rules are checked the
way users meet them (exit codes, one-line refusals, a ledger left unchanged) and the
way an attacker meets them (events forged with the library or rewritten with the
``sqlite3`` CLI must fail ``custody verify``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, Case, Run, new_key, one_error_line, template_case
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from tampering import append_unchecked, bypass, q, sqlite_ok

from custody.canonical import canonical_json, content_hash
from custody.keys import Signer, fingerprint, generate_key, load_public_key, load_signer
from custody.ledger import Event, Ledger
from custody.lifecycle import rotation_statement
from custody.merkle import leaf_hash, node_hash
from custody.writers import lifecycle_event, rotate_key
from custody.writers import receive as lifecycle_receive
from custody.writers import transfer as lifecycle_transfer

CASE_ID = "2026-017"
DANA = "Dana Reyes (collector)"
LEE = "Lee Okafor (counsel)"


def card(
    fp: str, name: str, role: str, standing: str, by: str | None, by_name: str | None
) -> dict[str, Any]:
    """A key card as show --json prints it (an active key)."""
    return {
        "fingerprint": fp,
        "name": name,
        "role": role,
        "standing": standing,
        "attested_by": by,
        "attested_by_name": by_name,
        "status": "active",
        "revoked_at": None,
        "rotated_to": None,
    }


def card_text(fp: str, name_role: str, standing: str) -> str:
    """The one-line form every display prints: ``Name (role) sha256:<16 hex> [standing]``."""
    return f"{name_role} {fp[:23]} [{standing}]"


REASON = "hand-over to outside counsel"
LOCATION = "incident room B"

# -- helpers ---------------------------------------------------------------------------


def rebuild_tree_sql(db: Path) -> str:
    """SQL that replaces the stored Merkle nodes with those of the events as they
    are now (a forger keeping the derived tree consistent)."""
    conn = sqlite3.connect(db)
    try:
        bodies = [r[0] for r in conn.execute("SELECT body FROM events ORDER BY seq")]
    finally:
        conn.close()
    levels: list[list[bytes]] = [[]]
    for body in bodies:
        levels[0].append(leaf_hash(body.encode("utf-8")))
        lv = 0
        while len(levels[lv]) % 2 == 0:
            h = node_hash(levels[lv][-2], levels[lv][-1])
            lv += 1
            if lv == len(levels):
                levels.append([])
            levels[lv].append(h)
    rows = [f"({lv}, {i}, X'{h.hex()}')" for lv, hs in enumerate(levels) for i, h in enumerate(hs)]
    return (
        "DELETE FROM merkle_nodes;INSERT INTO merkle_nodes (level, idx, hash) VALUES "
        + ", ".join(rows)
        + ";"
    )


def forge_event(case_dir: Path, signer: Signer, type_: str, data: dict[str, Any]) -> int:
    """tampering.append_unchecked on the case's ledger: a correctly chained, signed
    and indexed event that skipped every check the CLI makes.  Returns its seq."""
    ledger = Ledger.open(case_dir)
    try:
        return append_unchecked(ledger, signer, type_, data)
    finally:
        ledger.close()


def fresh_signer(name: str = "Mallory", role: str = "intruder") -> Signer:
    return Signer(Ed25519PrivateKey.generate(), name, role)


def raw_public(priv: Ed25519PrivateKey) -> bytes:
    return Signer(priv, "x", "y").identity.public_raw


def digests_of(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    return {alg: hashlib.new(alg, data).hexdigest() for alg in ("md5", "sha1", "sha256")}


def verify(case: Case, *flags: str) -> tuple[int, dict[str, Any]]:
    proc = case("verify", "--json", *flags)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def kinds(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["kind"], f["subject"]) for f in report["findings"]}


def show(case: Case, item: str, *, code: int = 0) -> dict[str, Any]:
    """``show ITEM --json``, which must exit ``code`` (1: the item's record fails
    verification)."""
    proc = case("show", item, "--json")
    assert proc.returncode == code, proc.stderr
    return json.loads(proc.stdout)


def log(case: Case) -> list[dict[str, Any]]:
    return json.loads(case("log", "--json", check=True).stdout)


def rows(db: Path) -> list[tuple[Any, ...]]:
    """Every recorded row of the ledger (events and derived tables), read directly."""
    conn = sqlite3.connect(db)
    try:
        return [("events", *r) for r in conn.execute("SELECT * FROM events ORDER BY seq")] + [
            (t, *r)
            for t in ("identities", "artifacts", "event_items", "merkle_nodes")
            for r in conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2")
        ]
    finally:
        conn.close()


def bodies(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    try:
        return [json.loads(b) for (b,) in conn.execute("SELECT body FROM events ORDER BY seq")]
    finally:
        conn.close()


# -- the case every test starts from ---------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("lifecycle")
    case = template_case(root, counsel=True)
    run = case.run
    generate_key("Kim Ng", "examiner", PASSPHRASE.encode(), root / "kim.pem")
    ev = root / "evidence"
    ev.mkdir()
    one = b"auth.log: Accepted password for svc-payroll from 10.0.0.7\n" * 40
    (ev / "auth.log").write_bytes(one)
    (ev / "payroll.csv").write_bytes(b"id,name,iban\n" + b"7,J. Doe,DE00 0000\n" * 25)
    (ev / "auth-copy.log").write_bytes(one)  # same content as auth.log: one store object
    case(
        "collect",
        "--reason",
        "suspected credential theft",
        ev / "auth.log",
        ev / "payroll.csv",
        ev / "auth-copy.log",
        check=True,
    )

    # Kim keeps her own case (her key owns it); she sends Dana the verifier key it prints.
    run(
        "init",
        root / "kimcase",
        "--case-id",
        "KIM-1",
        "--title",
        "Kim's lab",
        "--key",
        root / "kim.pem",
        check=True,
    )
    run("checkpoint", "--case", root / "kimcase", "--key", root / "kim.pem", check=True)
    (kim_row,) = json.loads(
        run("key", "list", "--json", "--case", root / "kimcase", check=True).stdout
    )
    kim_vkey = kim_row["vkey"]

    lee_imp = case("key", "import", root / "lee.pub", "--name", "Lee Okafor", "--role", "counsel")
    kim_imp = case("key", "import", kim_vkey, "--name", "Kim Ng", "--role", "examiner")
    keys = json.loads(case("key", "list", "--json", check=True).stdout)
    log_proc = case("log", "--json", check=True)
    events = json.loads(log_proc.stdout)
    items = {}
    for e in events:
        if e["type"] == "collect":
            data = json.loads(e["body"])["data"]
            items[data["item"]] = {"digests": data["digests"], "store": data["store"]}
    assert sorted(items) == ["ITEM-1", "ITEM-2", "ITEM-3"]
    return {
        "root": root,
        "lee_import": lee_imp,
        "kim_import": kim_imp,
        "kim_vkey": kim_vkey,
        "kim_row": kim_row,
        "keys": keys,
        "items": items,
        "log_text": log_proc.stdout,
        "events": events,
        "rows": rows(root / "case" / "custody.db"),
    }


class Story:
    def __init__(self, case: Case, template: dict[str, Any], tmp: Path) -> None:
        self.case = case
        self.t = template
        self.tmp = tmp
        self.db = case.dir / "custody.db"
        self.dana = tmp / "dana.pem"
        self.lee = tmp / "lee.pem"
        self.kim = tmp / "kim.pem"
        self.fp = {r["name"]: r["fingerprint"] for r in template["keys"]}
        self.items: dict[str, dict[str, Any]] = template["items"]

    @property
    def next_seq(self) -> int:
        return len(self.t["events"])

    def obj(self, item: str) -> Path:
        return self.case.dir / "store" / self.items[item]["store"]

    def unchanged(self) -> None:
        """Nothing was recorded since the template was built."""
        assert rows(self.db) == self.t["rows"]

    def signer(self, pem: Path) -> Signer:
        return load_signer(pem, PASSPHRASE.encode())

    def lib(self, fn: Callable[..., Event], pem: Path, *args: Any) -> Event:
        """Set-up through the library (the code the CLI runs), to spare CLI starts."""
        with Ledger.open(self.case.dir) as ledger:
            return fn(ledger, self.signer(pem), *args)


@pytest.fixture
def story(template: dict[str, Any], run: Run, tmp_path: Path) -> Story:
    root: Path = template["root"]
    shutil.copytree(root / "case", tmp_path / "case", symlinks=True)
    for f in ("dana", "lee", "kim"):
        for ext in ("pem", "pub"):
            shutil.copy2(root / f"{f}.{ext}", tmp_path / f"{f}.{ext}")
    run.env["CUSTODY_KEY"] = str(tmp_path / "dana.pem")
    return Story(
        Case(dir=tmp_path / "case", key=tmp_path / "dana.pem", run=run), template, tmp_path
    )


def transfer(s: Story, *items: str, key: Path | None = None, to: str = "Lee Okafor") -> str:
    extra = ["--key", str(key)] if key else []
    proc = s.case(
        "transfer", *items, "--to", to, "--reason", REASON, "--location", LOCATION, "--json", *extra
    )
    assert proc.returncode == 0, proc.stderr
    return str(json.loads(proc.stdout)["id"])


# -- identities ------------------------------------------------------------------------


def test_identities_imported_from_pem_and_from_verifier_key(story: Story) -> None:
    t = story.t
    assert t["lee_import"].returncode == 0, t["lee_import"].stderr
    assert t["kim_import"].returncode == 0, t["kim_import"].stderr
    lee_raw = load_public_key(story.tmp / "lee.pub")
    kim_raw = load_public_key(story.tmp / "kim.pub")
    dana_raw = load_public_key(story.tmp / "dana.pub")
    # the verifier key Kim's case printed is hers: name+keyid+base64(0x01||pub)
    name, _kid, b64 = t["kim_vkey"].split("+", 2)
    assert name == "kim-ng"
    assert base64.b64decode(b64) == b"\x01" + kim_raw
    assert t["kim_row"]["fingerprint"] == fingerprint(kim_raw)

    got = [(r["name"], r["role"], r["fingerprint"], r["public_key"]) for r in t["keys"]]
    assert got == [
        ("Dana Reyes", "collector", fingerprint(dana_raw), base64.b64encode(dana_raw).decode()),
        ("Lee Okafor", "counsel", fingerprint(lee_raw), base64.b64encode(lee_raw).decode()),
        ("Kim Ng", "examiner", fingerprint(kim_raw), base64.b64encode(kim_raw).decode()),
    ]
    # Dana's case prints the very verifier key Kim sent.
    assert t["keys"][2]["vkey"] == t["kim_vkey"]
    # Both imports are identity events attested (signed) by Dana.
    imports = [e for e in t["events"] if e["type"] == "identity" and e["seq"] > 0]
    assert [json.loads(e["body"])["data"]["registration"] for e in imports] == ["imported"] * 2
    assert {e["signer"] for e in imports} == {fingerprint(dana_raw)}
    assert f"as event {imports[0]['seq']}" in t["lee_import"].stdout


def test_import_known_or_garbage_key_records_nothing(story: Story) -> None:
    proc = story.case(
        "key", "import", story.t["kim_vkey"], "--name", "Kim Ng", "--role", "examiner"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Already known")
    proc = story.case(
        "key", "import", "kim-ng+00000000+AAAA", "--name", "Kim Ng", "--role", "examiner"
    )
    assert proc.returncode == 2
    one_error_line(proc)
    story.unchanged()


def test_import_own_key_into_new_case(run: Run, tmp_path: Path) -> None:
    """Rules 2: the key that makes a case registers itself in its opening event
    (owner, seq 0); importing that same key afterwards records nothing."""
    generate_key("Kim Ng", "examiner", PASSPHRASE.encode(), tmp_path / "kim.pem")
    run(
        "init",
        tmp_path / "c",
        "--case-id",
        "K-1",
        "--title",
        "t",
        "--key",
        tmp_path / "kim.pem",
        check=True,
    )
    before = run("log", "--json", "--case", tmp_path / "c", check=True).stdout
    proc = run(
        "key",
        "import",
        tmp_path / "kim.pub",
        "--name",
        "Kim Ng",
        "--role",
        "examiner",
        "--case",
        tmp_path / "c",
        "--key",
        tmp_path / "kim.pem",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Already known: Kim Ng (examiner) sha256:")
    assert run("log", "--json", "--case", tmp_path / "c", check=True).stdout == before
    got = json.loads(run("key", "list", "--json", "--case", tmp_path / "c", check=True).stdout)
    assert [(r["name"], r["event_seq"], r["standing"]) for r in got] == [("Kim Ng", 0, "owner")]
    proc = run("verify", "--json", "--case", tmp_path / "c")
    assert (proc.returncode, json.loads(proc.stdout)["findings"]) == (0, [])


# -- the hand-over story ---------------------------------------------------------------


def test_the_story(story: Story) -> None:
    c = story.case
    seq = story.next_seq
    tid = transfer(story, "ITEM-1", "ITEM-2")
    assert tid == f"TRANSFER-{seq}"
    dana_fp, lee_fp = story.fp["Dana Reyes"], story.fp["Lee Okafor"]
    dana_card = card(dana_fp, "Dana Reyes", "collector", "owner", dana_fp, "Dana Reyes")
    lee_card = card(lee_fp, "Lee Okafor", "counsel", "attested", dana_fp, "Dana Reyes")

    # In transit: released by Dana, not yet received.
    info = show(c, "ITEM-1")
    assert (info["state"], info["custodian"]) == ("in transit", DANA)
    (h,) = info["handovers"]
    release_time = h["released"]
    assert h == {
        "transfer": tid,
        "released_by": DANA,
        "received_by": None,
        "to": LEE,
        "released": release_time,
        "received": None,
        "reason": REASON,
        "location": LOCATION,
        "status": "in transit",
        "mismatch": False,
        "release_event": seq,
        "receipt_event": None,
        "release_signature_verified": True,
        "receipt_signature_verified": None,
        "released_by_key": dana_card,
        "to_key": lee_card,
        "received_by_key": None,
    }
    assert info["custodian_key"] == dana_card

    # Lee receives with his own key: items re-hashed, receipt signed.
    proc = c("receive", tid, "--key", story.lee)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    # a hand-over of two items: one transfer and one receipt per item (seq, seq + 1)
    assert f"Received {tid} as events {seq + 2}, {seq + 3}" in proc.stdout

    info = show(c, "ITEM-1")
    assert (info["state"], info["custodian"]) == ("collected", LEE)
    (h,) = info["handovers"]
    assert (h["status"], h["received_by"], h["release_event"], h["receipt_event"]) == (
        "received",
        LEE,
        seq,
        seq + 2,  # ITEM-2 was transferred at seq + 1
    )
    assert h["release_signature_verified"] is True
    assert h["receipt_signature_verified"] is True
    assert h["mismatch"] is False
    assert (h["released_by_key"], h["to_key"], h["received_by_key"]) == (
        dana_card,
        lee_card,
        lee_card,
    )
    assert info["custodian_key"] == lee_card
    # the receipt is part of the item's timeline
    assert [e["type"] for e in info["events"]] == ["collect", "transfer", "receive"]
    assert all(e["signature_verified"] for e in info["events"])
    transfer_ev, receipt_ev = info["events"][1:]
    assert transfer_ev["time"] == release_time
    assert receipt_ev["time"] == h["received"]

    proc = c(
        "event", "seal", "ITEM-1", "--reason", "sealed in evidence bag 0042", "--key", story.lee
    )
    assert proc.returncode == 0, proc.stderr

    # The paper form: released by / received by / date / time UTC / both signatures.
    rel, rec = release_time, h["received"]
    text = c("show", "ITEM-1", check=True).stdout
    assert re.search(r"^State:\s+sealed$", text, re.M), text
    # every signer with 16 hex digits of its key and its standing (rules 2)
    dana_text = card_text(dana_fp, DANA, "owner")
    lee_text = card_text(lee_fp, LEE, f"attested by Dana Reyes {dana_fp[:23]}")
    assert re.search(rf"^Custodian:\s+{re.escape(lee_text)}$", text, re.M), text
    assert re.search(
        rf"Released by:\s+{re.escape(dana_text)}\s+{rel[:10]}\s+{rel[11:19]} UTC\s+"
        r"\[signature verified\]",
        text,
    ), text
    assert re.search(
        rf"Received by:\s+{re.escape(lee_text)}\s+{rec[:10]}\s+{rec[11:19]} UTC\s+"
        r"\[signature verified\]",
        text,
    ), text
    assert f"Reason:      {REASON}" in text and f"Location:    {LOCATION}" in text
    assert re.search(rf"seal\s+by {re.escape(lee_text)}$", text, re.M), text

    # ITEM-2 went along, unsealed.
    info2 = show(c, "ITEM-2")
    assert (info2["state"], info2["custodian"]) == ("collected", LEE)

    # The receipt references the transfer's hash and records each item's re-hash.
    body = json.loads(receipt_ev["body"])
    assert body["type"] == "receive"
    assert body["signer"] == story.fp["Lee Okafor"]
    assert body["data"]["transfer"] == transfer_ev["hash"]
    d = story.items["ITEM-1"]["digests"]
    # one receipt per item: ITEM-1's names ITEM-1 alone, both carry the hand-over id
    assert body["data"]["items"] == {"ITEM-1": {"expected": d, "found": d, "match": True}}
    assert body["data"]["handover"] == json.loads(transfer_ev["body"])["data"]["handover"] == tid
    (_, t2, r2) = show(c, "ITEM-2")["events"]
    body2 = json.loads(r2["body"])
    d2 = story.items["ITEM-2"]["digests"]
    assert body2["data"]["items"] == {"ITEM-2": {"expected": d2, "found": d2, "match": True}}
    assert json.loads(t2["body"])["data"]["items"] == ["ITEM-2"]
    assert (t2["seq"], r2["seq"], body2["data"]["handover"]) == (seq + 1, seq + 3, tid)
    rc, report = verify(c)
    assert (rc, report["findings"]) == (0, [])


# -- refusals --------------------------------------------------------------------------


def test_transfer_by_non_custodian_refused(story: Story) -> None:
    c = story.case
    for key in (story.lee, story.kim):  # Lee has not received anything; Kim never held it
        proc = c("transfer", "ITEM-1", "--to", "Dana Reyes", "--reason", "grab", "--key", key)
        assert proc.returncode == 2
        assert one_error_line(proc).startswith(
            "custody: error: [transfer] only the current custodian may transfer ITEM-1;"
            " it is held by Dana Reyes (sha256:"
        )
    # A key the case has never seen (nobody attested it) may not hand anything over
    # (rules 2: [authority]), and is not registered.
    generate_key("Mallory", "x", PASSPHRASE.encode(), story.tmp / "mallory.pem")
    proc = c(
        "transfer",
        "ITEM-2",
        "--to",
        "Lee Okafor",
        "--reason",
        "grab",
        "--key",
        story.tmp / "mallory.pem",
    )
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert line.startswith("custody: error: [authority] Mallory (sha256:"), line
    assert "is self-asserted" in line and "it may not sign transfer" in line, line
    assert c("log", "--json", check=True).stdout == story.t["log_text"]
    story.unchanged()


def test_transfer_and_receive_rules(story: Story) -> None:
    c = story.case
    tid = transfer(story, "ITEM-1")
    before = rows(story.db)
    # An item in transit cannot be transferred again, not even by its receiver.
    proc = c("transfer", "ITEM-1", "--to", "Kim Ng", "--reason", "again", "--key", story.lee)
    assert proc.returncode == 2
    assert one_error_line(proc).startswith(
        f"custody: error: [transfer] ITEM-1 is already in transit ({tid})"
    )
    # Only the named receiver may receive.
    proc = c("receive", tid, "--key", story.kim)
    assert proc.returncode == 2
    assert one_error_line(proc).startswith(
        f"custody: error: [receipt] {tid} is addressed to Lee Okafor (sha256:"
    )
    proc = c("receive", "TRANSFER-999", "--key", story.lee)
    assert proc.returncode == 2
    one_error_line(proc)
    assert rows(story.db) == before

    assert c("receive", tid, "--key", story.lee).returncode == 0
    after = rows(story.db)
    proc = c("receive", tid, "--key", story.lee)
    assert proc.returncode == 2
    assert one_error_line(proc) == (
        f"custody: error: [receipt] {tid} was already received (event {story.next_seq + 1})"
    )
    # Dana no longer holds ITEM-1; nobody hands over to themself.
    proc = c("transfer", "ITEM-1", "--to", "Kim Ng", "--reason", "again")
    assert proc.returncode == 2
    assert one_error_line(proc).startswith("custody: error: [transfer] ")
    assert "it is held by Lee Okafor (sha256:" in one_error_line(proc)
    proc = c("transfer", "ITEM-2", "--to", "Dana Reyes", "--reason", "x")
    assert proc.returncode == 2
    one_error_line(proc)
    assert rows(story.db) == after


def test_forged_transfer_and_receipts_fail_verify(story: Story) -> None:
    """Rules the CLI enforces are also enforced by verify, against a forger who writes
    correctly signed and chained events with the library."""
    kim, lee = story.signer(story.kim), story.signer(story.lee)
    lee_fp = story.fp["Lee Okafor"]
    tseq = forge_event(
        story.case.dir,
        kim,
        "transfer",
        {
            "items": ["ITEM-1"],
            "to": lee_fp,
            "to_name": "Lee Okafor",
            "reason": "grab",
            "location": "",
            "digests": {"ITEM-1": story.items["ITEM-1"]["digests"]},
        },
    )
    # A real transfer to Lee, "received" by Kim, then by Lee citing a wrong hash.
    tid = transfer(story, "ITEM-2")
    t_seq = tseq + 1
    assert tid == f"TRANSFER-{t_seq}"
    t_hash = sqlite_ok(story.db, f"SELECT hash FROM events WHERE seq = {t_seq};").strip()
    d = story.items["ITEM-2"]["digests"]
    receipt = {
        "transfer": t_hash,
        "transfer_seq": t_seq,
        "transfer_id": tid,
        "items": {"ITEM-2": {"expected": d, "found": d, "match": True}},
        "location": "",
        "reason": "received",
    }
    by_kim = forge_event(story.case.dir, kim, "receive", receipt)
    wrong = forge_event(
        story.case.dir, lee, "receive", {**receipt, "transfer": "sha256:" + "0" * 64}
    )
    rc, report = verify(story.case, "--quick")
    assert rc == 1
    assert [(f["kind"], f["subject"]) for f in report["findings"]] == [
        ("transfer", f"TRANSFER-{tseq}"),
        ("receipt", f"event {by_kim}"),
        ("receipt", f"event {wrong}"),
    ]


# -- receiving a modified item ---------------------------------------------------------


def test_receive_modified_item_recorded_as_mismatch(story: Story) -> None:
    c = story.case
    tid = transfer(story, "ITEM-1", "ITEM-2")
    tseq = story.next_seq
    obj = story.obj("ITEM-2")
    expected = story.items["ITEM-2"]["digests"]
    assert digests_of(obj) == expected
    os.chmod(obj, 0o644)
    data = bytearray(obj.read_bytes())
    data[3] ^= 0x20
    obj.write_bytes(bytes(data))
    os.chmod(obj, 0o400)
    found = digests_of(obj)
    assert found["sha256"] != expected["sha256"]

    proc = c("receive", tid, "--key", story.lee, "--json")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "ITEM-2" in proc.stderr and "did not match" in proc.stderr
    out = json.loads(proc.stdout)
    assert out["ok"] is False
    assert out["event"] == tseq + 2  # one transfer, then one receipt, per item
    d1 = story.items["ITEM-1"]["digests"]
    assert out["items"] == {
        "ITEM-1": {"expected": d1, "found": d1, "match": True},
        "ITEM-2": {"expected": expected, "found": found, "match": False},
    }
    # The receipt is recorded, signed by Lee, with the mismatch in it; show says the
    # item fails verification (a receipt-mismatch finding concerns it), exit 1.
    info = show(c, "ITEM-2", code=1)
    assert info["verification"]["ok"] is False
    assert {f["kind"] for f in info["verification"]["findings"]} == {"receipt-mismatch"}
    assert (info["state"], info["custodian"]) == ("collected", LEE)
    (h,) = info["handovers"]
    assert (h["status"], h["mismatch"], h["receipt_signature_verified"]) == ("received", True, True)
    last = info["events"][-1]
    assert (last["seq"], last["type"], last["signer_name"]) == (tseq + 3, "receive", "Lee Okafor")
    assert json.loads(last["body"])["data"]["items"]["ITEM-2"]["match"] is False

    rc, report = verify(c)
    assert rc == 1
    subject = f"ITEM-2 ({story.items['ITEM-2']['store']})"
    assert kinds(report) == {("receipt-mismatch", "ITEM-2"), ("object-digest", subject)}
    (rm,) = [f for f in report["findings"] if f["kind"] == "receipt-mismatch"]
    assert rm["detail"].startswith(f"received in {tid} at event {tseq + 3} with digests ")
    assert found["sha256"] in rm["detail"] and expected["sha256"] in rm["detail"]
    assert [f["detail"] for f in report["findings"] if f["kind"] == "object-digest"] == [
        f"{alg}: expected {expected[alg]}, found {found[alg]}" for alg in ("md5", "sha1", "sha256")
    ]


# -- lifecycle events and states -------------------------------------------------------


def test_lifecycle_events_and_states(story: Story) -> None:
    c = story.case
    seq = story.next_seq
    steps = [
        ("access", "ITEM-1", "imaged for analysis"),
        ("analysis", "ITEM-1", "timeline of logins"),
        ("note", "ITEM-1", "hash confirmed by second examiner"),
        ("seal", "ITEM-1", "sealed in evidence bag 0042"),
        ("release", "ITEM-2", "returned to payroll team"),
    ]
    for action, item, reason in steps:
        proc = c("event", action, item, "--reason", reason, "--location", "lab 3", "--json")
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert (out["event"], out["type"], out["items"]) == (seq, action, [item])
        seq += 1
    recorded = bodies(story.db)[story.next_seq :]
    assert [(b["type"], b["data"]) for b in recorded] == [
        (a, {"items": [i], "reason": r, "location": "lab 3"}) for a, i, r in steps
    ]
    assert {b["signer"] for b in recorded} == {story.fp["Dana Reyes"]}

    info = show(c, "ITEM-1")
    assert (info["state"], info["custodian"]) == ("sealed", DANA)
    assert [e["type"] for e in info["events"]] == ["collect", "access", "analysis", "note", "seal"]
    info = show(c, "ITEM-2")
    assert info["state"] == "released"
    # A released item cannot be handed over.
    proc = c("transfer", "ITEM-2", "--to", "Lee Okafor", "--reason", "x")
    assert proc.returncode == 2
    assert (
        one_error_line(proc) == "custody: error: [transfer] ITEM-2 is released; cannot transfer it"
    )
    # A reason is required.
    proc = c("event", "access", "ITEM-1", "--reason", "  ")
    assert proc.returncode == 2
    one_error_line(proc)
    assert len(bodies(story.db)) == seq
    rc, report = verify(c, "--quick")
    assert (rc, report["findings"]) == (0, [])


def test_lifecycle_event_by_non_custodian_refused(story: Story) -> None:
    for action in ("access", "seal", "dispose"):
        proc = story.case("event", action, "ITEM-1", "--reason", "x", "--key", story.kim)
        assert proc.returncode == 2, action
        assert one_error_line(proc).startswith(
            f"custody: error: [lifecycle] only the current custodian may record {action} of"
            " ITEM-1; it is held by Dana Reyes (sha256:"
        )
    story.unchanged()


def test_dispose_and_events_on_disposed_item(story: Story) -> None:
    c = story.case
    obj = story.obj("ITEM-2")
    proc = c("event", "dispose", "ITEM-2", "--reason", "retention period over")
    assert proc.returncode == 0, proc.stderr
    assert show(c, "ITEM-2")["state"] == "disposed"
    # without --purge the bytes stay, read-only and intact
    assert digests_of(obj) == story.items["ITEM-2"]["digests"]
    assert obj.stat().st_mode & 0o777 == 0o400
    last = bodies(story.db)[-1]
    assert (last["type"], last["data"]) == (
        "dispose",
        {"items": ["ITEM-2"], "reason": "retention period over", "location": "", "purge": False},
    )
    before = rows(story.db)
    for action in ("access", "seal", "dispose"):
        proc = c("event", action, "ITEM-2", "--reason", "x")
        assert proc.returncode == 2, action
        assert one_error_line(proc) == (
            f"custody: error: [lifecycle] ITEM-2 is disposed; cannot record {action} of it"
        )
    proc = c("transfer", "ITEM-2", "--to", "Lee Okafor", "--reason", "x")
    assert proc.returncode == 2
    assert (
        one_error_line(proc) == "custody: error: [transfer] ITEM-2 is disposed; cannot transfer it"
    )
    assert rows(story.db) == before
    rc, report = verify(c)
    assert (rc, report["findings"]) == (0, [])
    # The bytes of a disposed (not purged) item are still evidence: deleting them is caught.
    obj.unlink()
    rc, report = verify(c)
    assert rc == 1
    assert kinds(report) == {("object-missing", f"ITEM-2 ({story.items['ITEM-2']['store']})")}


def test_dispose_purge_keeps_records_and_shared_bytes(story: Story) -> None:
    c = story.case
    shared = story.obj("ITEM-1")
    assert story.obj("ITEM-3") == shared  # same content, one object
    # Declining the confirmation deletes and records nothing.
    proc = c("event", "dispose", "ITEM-1", "--reason", "x", "--purge", input="n\n")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    story.unchanged()

    proc = c("event", "dispose", "ITEM-1", "--reason", "court order 12/2026", "--purge", "--yes")
    assert proc.returncode == 0, proc.stderr
    # ITEM-3 (not disposed) has the same bytes: they must survive.
    assert digests_of(shared) == story.items["ITEM-3"]["digests"]
    proc = c("event", "dispose", "ITEM-3", "--reason", "court order 12/2026", "--purge", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert not shared.exists()
    assert digests_of(story.obj("ITEM-2")) == story.items["ITEM-2"]["digests"]

    # Every record stays.
    now = rows(story.db)
    assert set(story.t["rows"]) <= set(now)
    disposals = bodies(story.db)[story.next_seq :]
    assert [(d["type"], d["data"]["items"], d["data"]["purge"]) for d in disposals] == [
        ("dispose", ["ITEM-1"], True),
        ("dispose", ["ITEM-3"], True),
    ]
    assert [d["data"]["reason"] for d in disposals] == ["court order 12/2026"] * 2
    info = show(c, "ITEM-1")
    assert info["state"] == "disposed"
    assert info["digests"] == story.items["ITEM-1"]["digests"]
    assert [e["type"] for e in info["events"]] == ["collect", "dispose"]


def test_verify_after_purge(story: Story) -> None:
    """Bytes purged by a recorded disposal are not a loss; bytes deleted by hand are,
    even when they belong to a disposed item, if another item still needs them."""
    c = story.case
    for item in ("ITEM-1", "ITEM-2"):
        proc = c("event", "dispose", item, "--reason", "court order", "--purge", "--yes")
        assert proc.returncode == 0, proc.stderr
    assert not story.obj("ITEM-2").exists()
    assert story.obj("ITEM-1").exists()  # ITEM-3 still needs it
    rc, report = verify(c)
    assert (rc, report["findings"]) == (0, [])
    story.obj("ITEM-1").unlink()
    rc, report = verify(c)
    assert rc == 1
    assert kinds(report) == {("object-missing", f"ITEM-3 ({story.items['ITEM-3']['store']})")}


# -- key rotation ----------------------------------------------------------------------


def test_key_rotation(story: Story) -> None:
    c = story.case
    dana2 = story.tmp / "dana2.pem"
    new_key(c, dana2, "Dana Reyes", "collector", default=False)
    old_raw = load_public_key(story.tmp / "dana.pub")
    new_raw = load_public_key(story.tmp / "dana2.pub")
    old_fp, new_fp = fingerprint(old_raw), fingerprint(new_raw)

    proc = c("key", "rotate", "--new-key", dana2)
    assert proc.returncode == 0, proc.stderr
    seq = story.next_seq
    assert proc.stdout.strip() == f"Rotated {old_fp} -> {new_fp} as event {seq}"
    events = log(c)
    assert events[:seq] == story.t["events"]
    (ev,) = events[seq:]  # exactly one event
    body = json.loads(ev["body"])
    assert (body["type"], body["signer"]) == ("key.rotate", old_fp)
    data = body["data"]
    new_b64 = base64.b64encode(new_raw).decode()
    assert (data["old"], data["new"], data["public_key"]) == (old_fp, new_fp, new_b64)
    # Signature 1: the event, by the old key.
    Ed25519PublicKey.from_public_bytes(old_raw).verify(
        base64.b64decode(ev["signature"]), ev["body"].encode()
    )
    # Signature 2: the rotation statement, by the new key.
    stmt = rotation_statement(CASE_ID, old_fp, new_fp, new_b64)
    assert json.loads(stmt) == {
        "case": CASE_ID,
        "type": "key.rotate",
        "old": old_fp,
        "new": new_fp,
        "public_key": new_b64,
    }
    cosig = base64.b64decode(data["cosignature"])
    Ed25519PublicKey.from_public_bytes(new_raw).verify(cosig, stmt)
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(old_raw).verify(cosig, stmt)

    keys = json.loads(c("key", "list", "--json", check=True).stdout)
    assert (keys[-1]["fingerprint"], keys[-1]["name"], keys[-1]["event_seq"]) == (
        new_fp,
        "Dana Reyes",
        seq,
    )
    # the new key takes the owner's place; the old one is shown as rotated to it
    assert (keys[-1]["standing"], keys[-1]["status"]) == ("owner", "active")
    (old_row,) = [k for k in keys if k["fingerprint"] == old_fp]
    assert (old_row["status"], old_row["rotated_to"], old_row["active"]) == (
        "rotated",
        new_fp,
        False,
    )

    # Items Dana held pass to the new key.
    tid = transfer(story, "ITEM-1", key=dana2)
    assert tid == f"TRANSFER-{seq + 1}"
    rc, report = verify(c, "--quick")
    assert (rc, report["findings"]) == (0, [])

    # A rotation whose cosignature was replaced (sqlite3, triggers bypassed).
    other = base64.b64encode(Ed25519PrivateKey.generate().sign(stmt)).decode()
    forged = ev["body"].replace(data["cosignature"], other)
    assert forged != ev["body"]
    bypass(story.db, ("events",), f"UPDATE events SET body = {q(forged)} WHERE seq = {seq};")
    rc, report = verify(c, "--quick")
    assert rc == 1
    assert {
        ("event-hash", f"event {seq}"),
        ("signature", f"event {seq}"),
        ("unknown-signer", f"event {seq + 1}"),
    } <= kinds(report)


@pytest.mark.parametrize("forgery", ["cosigned-by-another-key", "signed-by-another-key"])
def test_forged_rotation_fails_verify(story: Story, forgery: str) -> None:
    """Correctly chained and signed rotation events that break the two-signature rule."""
    dana = story.signer(story.dana)
    kim = story.signer(story.kim)
    new = Ed25519PrivateKey.generate()
    new_raw = raw_public(new)
    new_b64 = base64.b64encode(new_raw).decode()
    new_fp = fingerprint(new_raw)
    stmt = rotation_statement(CASE_ID, dana.fingerprint, new_fp, new_b64)
    if forgery == "cosigned-by-another-key":
        signer, cosig = dana, Ed25519PrivateKey.generate().sign(stmt)
        detail = f"the new key {new_fp} did not sign the rotation"
    else:  # Kim rotates Dana's key to one Kim holds
        signer, cosig = kim, new.sign(stmt)
        detail = f"rotation of {dana.fingerprint} signed by another key ({kim.fingerprint})"
    seq = forge_event(
        story.case.dir,
        signer,
        "key.rotate",
        {
            "old": dana.fingerprint,
            "new": new_fp,
            "public_key": new_b64,
            "name": "Dana Reyes",
            "role": "collector",
            "algorithm": "ed25519",
            "cosignature": base64.b64encode(cosig).decode(),
        },
    )
    rc, report = verify(story.case, "--quick")
    assert rc == 1
    assert report["findings"] == [{"kind": "rotation", "subject": f"event {seq}", "detail": detail}]


def test_rotated_out_key_no_longer_signs(story: Story) -> None:
    new = Signer(Ed25519PrivateKey.generate(), "Dana Reyes", "collector")
    with Ledger.open(story.case.dir) as ledger:
        rot = rotate_key(ledger, story.signer(story.dana), new)
    before = rows(story.db)
    proc = story.case("event", "seal", "ITEM-1", "--reason", "with the replaced key")
    assert proc.returncode == 2
    one_error_line(proc)
    assert rows(story.db) == before
    seq = forge_event(
        story.case.dir,
        story.signer(story.dana),
        "seal",
        {"items": ["ITEM-1"], "reason": "with the replaced key", "location": ""},
    )
    rc, report = verify(story.case, "--quick")
    assert rc == 1
    assert [f["subject"] for f in report["findings"]] == [f"event {seq}"], rot.seq


# -- key revocation --------------------------------------------------------------------


def test_key_revocation(story: Story) -> None:
    c = story.case
    lee_fp = story.fp["Lee Okafor"]
    # Lee receives ITEM-1 and seals it (set up through the library).
    t = story.lib(lifecycle_transfer, story.dana, ["ITEM-1"], "Lee Okafor", REASON)
    story.lib(lifecycle_receive, story.lee, f"TRANSFER-{t.seq}")
    story.lib(lifecycle_event, story.lee, "seal", ["ITEM-1"], "bag 0042")
    rc, report = verify(c, "--quick")
    assert (rc, report["findings"]) == (0, [])

    proc = c("key", "revoke", lee_fp, "--reason", "laptop stolen")
    assert proc.returncode == 0, proc.stderr
    rev = story.next_seq + 3
    assert proc.stdout.strip() == f"Revoked {lee_fp} as event {rev}"
    body = bodies(story.db)[-1]
    assert (body["seq"], body["type"], body["signer"], body["data"]) == (
        rev,
        "key.revoke",
        story.fp["Dana Reyes"],
        {"fingerprint": lee_fp, "reason": "laptop stolen"},
    )
    keys = {k["fingerprint"]: k for k in json.loads(c("key", "list", "--json", check=True).stdout)}
    assert (keys[lee_fp]["status"], keys[lee_fp]["revoked_at"], keys[lee_fp]["active"]) == (
        "revoked",
        rev,
        False,
    )
    assert re.search(
        rf"^{re.escape(lee_fp[:23])}\s+Lee Okafor\s+counsel\s+attested\s+Dana Reyes sha256:"
        rf"[0-9a-f]{{16}}\s+revoked at event {rev}\s",
        c("key", "list", check=True).stdout,
        re.M,
    )
    before = rows(story.db)

    # The revoked key may no longer sign anything.
    for args in (["event", "note", "ITEM-1", "--reason", "x"], ["checkpoint"]):
        proc = c(*args, "--key", story.lee)
        assert proc.returncode == 2, args
        assert one_error_line(proc) == (
            f"custody: error: [revoked-key] key Lee Okafor ({lee_fp[:23]}) was revoked at"
            f" event {rev} and may not sign"
        )
    # Nor be named as a receiver.
    proc = c("transfer", "ITEM-2", "--to", "Lee Okafor", "--reason", "x")
    assert proc.returncode == 2
    one_error_line(proc)
    assert rows(story.db) == before

    # A signature made with the stolen key after the revocation, forged into the ledger.
    seq = forge_event(
        c.dir,
        story.signer(story.lee),
        "note",
        {"items": ["ITEM-1"], "reason": "backdated", "location": ""},
    )
    assert seq == rev + 1
    rc, report = verify(c, "--quick")
    assert rc == 1
    # Lee's receipt and seal, signed before the revocation, still verify.
    assert [(f["kind"], f["subject"]) for f in report["findings"]] == [
        ("revoked-key", f"event {seq}"),
    ]


def test_event_by_unknown_signer_fails_verify(story: Story) -> None:
    mallory = fresh_signer()
    seq = forge_event(
        story.case.dir, mallory, "note", {"items": ["ITEM-1"], "reason": "all fine", "location": ""}
    )
    assert seq == story.next_seq
    rc, report = verify(story.case, "--quick")
    assert rc == 1
    assert [(f["kind"], f["subject"]) for f in report["findings"]] == [
        ("unknown-signer", f"event {seq}"),
    ]


def test_identity_slipped_in_with_sqlite_is_not_trusted(story: Story) -> None:
    """An 'imported' identity written straight into the tables, claiming Dana as its
    attester but signed by the new key itself, registers nothing."""
    mallory = fresh_signer()
    seq, prev = story.next_seq, story.t["events"][-1]["hash"]
    when = "2026-11-27T12:00:00.000000000Z"
    body = canonical_json(
        {
            "v": 1,
            "case": CASE_ID,
            "seq": seq,
            "prev": prev,
            "time": when,
            "type": "identity",
            "signer": story.fp["Dana Reyes"],
            "data": {
                "name": "Mallory",
                "role": "counsel",
                "public_key": mallory.identity.public_b64,
                "fingerprint": mallory.fingerprint,
                "algorithm": "ed25519",
                "registration": "imported",
            },
        }
    )
    sig = base64.b64encode(mallory.sign(body)).decode()
    sqlite_ok(
        story.db,
        "INSERT INTO events (seq, hash, prev, type, time, signer, item, body,"
        f" signature) VALUES ({seq}, {q(content_hash(body))}, {q(prev)}, 'identity',"
        f" {q(when)}, {q(story.fp['Dana Reyes'])}, NULL, {q(body.decode())}, {q(sig)});"
        "INSERT INTO identities (fingerprint, name, role, public_key, event_seq) VALUES"
        f" ({q(mallory.fingerprint)}, 'Mallory', 'counsel',"
        f" {q(mallory.identity.public_b64)}, {seq});",
    )
    bypass(story.db, ("merkle_nodes",), rebuild_tree_sql(story.db))
    forge_event(
        story.case.dir, mallory, "note", {"items": ["ITEM-1"], "reason": "all fine", "location": ""}
    )
    rc, report = verify(story.case, "--quick")
    assert rc == 1
    assert kinds(report) == {("signature", f"event {seq}"), ("unknown-signer", f"event {seq + 1}")}
