"""Issue 14 §5: a subset export discloses nothing it need not.

A one-item bundle of a case with several items, hand-overs, notes, several
identities and a revoked key carries none of the other items' paths, digests, ids
or note texts, and no identity or revocation the item's custody does not need
(docs/bundle-format.md §6.1).  Hand-overs of several items are one signed event per
item, grouped by a hand-over id, which the rules check (ledger-format §7.2)."""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import docverify
import pytest
from conftest import PASSPHRASE, Run, new_key, template_case
from tampering import append_unchecked, read_events, retag, write_events

from custody.errors import CustodyRuleError
from custody.keys import load_signer
from custody.ledger import EventDraft, Ledger
from custody.lifecycle import TRANSFER_EVENT, append_checked
from custody.writers import handover_drafts, receipt_draft, transfer_draft

FILES = {
    "alpha-exhibit.log": b"Jan 12 03:14:07 sshd: accepted password\n" * 7,
    "bravo-payroll-secret.csv": b"id,name,iban\n7,J. Doe,DE00\n" * 9,
    "charlie-hr-memo.txt": b"the memo nobody may see\n" * 5,
    "delta-mailbox.pst": b"\x00\x01mailbox" * 33,
}
NOTE_OTHER = "compare with bravo-payroll-secret.csv from the HR share"
NOTE_THIRD = "charlie memo: shredded copy found in room 9"
NOTE_ONE = "label photographed"
REVOKE_REASON = "Oscar's laptop stolen at gate 7"
REASON = "to counsel"


def _ok(run: Any, *args: Any) -> Any:
    proc = run(*args, check=True)
    return json.loads(proc.stdout) if "--json" in args else proc


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("disclosure")
    c = template_case(root, counsel=True)
    run = c.run
    new_key(run, root / "kim.pem", "Kim Ito", "analyst", default=False)
    new_key(run, root / "oscar.pem", "Oscar Vance", "analyst", default=False)
    ev = root / "evidence"
    ev.mkdir()
    for name, data in FILES.items():
        (ev / name).write_bytes(data)
    paths = [ev / n for n in FILES]
    c("collect", "--reason", "breach", *paths, check=True)
    for who, name, role in (
        ("lee", "Lee Okafor", "counsel"),
        ("kim", "Kim Ito", "analyst"),
        ("oscar", "Oscar Vance", "analyst"),
    ):
        c("key", "import", root / f"{who}.pub", "--name", name, "--role", role, check=True)
    # one hand-over of three items, received; then ITEM-2 on to Kim, received
    t = _ok(
        c,
        "transfer",
        "ITEM-1",
        "ITEM-2",
        "ITEM-3",
        "--to",
        "Lee Okafor",
        "--reason",
        REASON,
        "--json",
    )
    c("receive", t["id"], "--key", root / "lee.pem", check=True)
    t2 = _ok(
        c,
        "transfer",
        "ITEM-2",
        "--to",
        "Kim Ito",
        "--reason",
        "analysis",
        "--json",
        "--key",
        root / "lee.pem",
    )
    c("receive", t2["id"], "--key", root / "kim.pem", check=True)
    c("event", "note", "ITEM-2", "--reason", NOTE_OTHER, "--key", root / "kim.pem", check=True)
    c("event", "note", "ITEM-3", "--reason", NOTE_THIRD, "--key", root / "lee.pem", check=True)
    c("event", "note", "ITEM-1", "--reason", NOTE_ONE, "--key", root / "lee.pem", check=True)
    keys = {k["name"]: k["fingerprint"] for k in _ok(c, "key", "list", "--json")}
    c("key", "revoke", keys["Oscar Vance"], "--reason", REVOKE_REASON, check=True)
    items = {i["id"]: i for i in _ok(c, "list", "--json")}
    log = _ok(c, "log", "--json")
    out = root / "out"
    out.mkdir()
    exports = {}
    for name in ("one", "one.tar.gz", "one.zip"):
        proc = c("bundle", "export", "ITEM-1", "--out", out / name, "--json", check=True)
        exports[name] = (json.loads(proc.stdout), proc.stderr)
    return {
        "root": root,
        "case": c,
        "items": items,
        "keys": keys,
        "log": log,
        "transfer": t,
        "out": out,
        "exports": exports,
    }


def _bundle_bytes(path: Path) -> list[tuple[str, bytes]]:
    """Every file of a bundle (folder, tar.gz or zip) with its bytes, names included."""
    if path.is_dir():
        return [
            (str(p.relative_to(path)), p.read_bytes())
            for p in sorted(path.rglob("*"))
            if p.is_file()
        ]
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            return [(n, z.read(n)) for n in z.namelist()]
    with tarfile.open(path, "r:gz") as tar:
        out = []
        for m in tar.getmembers():
            f = tar.extractfile(m)
            out.append((m.name, f.read() if f else b""))
        return out


def _secrets(story: dict[str, Any]) -> dict[str, str]:
    """Every string the one-item bundle must not hold, with what it is."""
    out: dict[str, str] = {}
    for item, row in story["items"].items():
        if item == "ITEM-1":
            continue
        out[item] = f"{item}'s id"
        name = next(n for n in FILES if row["path"].endswith(n))
        out[name] = f"{item}'s file name"
        out[row["path"]] = f"{item}'s path"
        out[Path(row["path"]).as_posix().encode().hex()] = f"{item}'s path_hex"
        for alg in ("sha256",):
            out[row[alg]] = f"{item}'s {alg}"
    import hashlib

    for name, data in FILES.items():
        if name == "alpha-exhibit.log":
            continue
        for alg in ("md5", "sha1", "sha256", "sha512"):
            out[hashlib.new(alg, data).hexdigest()] = f"{name}'s {alg}"
    for text in (
        NOTE_OTHER,
        NOTE_THIRD,
        REVOKE_REASON,
        "Kim Ito",
        "Oscar Vance",
        "bravo",
        "charlie",
    ):
        out[text] = text
    for who in ("Kim Ito", "Oscar Vance"):
        out[story["keys"][who]] = f"{who}'s fingerprint"
    return out


@pytest.mark.parametrize("name", ["one", "one.tar.gz", "one.zip"])
def test_one_item_bundle_holds_nothing_of_other_items(story: dict[str, Any], name: str) -> None:
    secrets = _secrets(story)
    assert len(secrets) > 30
    files = _bundle_bytes(story["out"] / name)
    assert any(n.endswith("custody/events.jsonl") for n, _ in files)
    for fname, data in files:
        # JSON escapes non-ASCII; every secret here is ASCII, so bytes compare as text
        for s, what in secrets.items():
            assert s.encode() not in data, f"{fname} holds {what}"
            assert s not in fname, f"a file name holds {what}"
    if name.endswith(".tar.gz"):  # the archive as stored, too
        raw = gzip.decompress((story["out"] / name).read_bytes())
        for s, what in secrets.items():
            assert s.encode() not in raw, f"the tar holds {what}"
    # what it does hold: ITEM-1's own story, in full
    texts = b"".join(d for _, d in files)
    assert NOTE_ONE.encode() in texts and b"alpha-exhibit.log" in texts
    assert story["exports"][name][1] == ""  # nothing disclosed beyond: no warning


def test_one_item_bundle_discloses_exactly_what_custody_needs(
    story: dict[str, Any], run: Run
) -> None:
    bag = story["out"] / "one"
    types = [
        (json.loads(r["body"])["type"], json.loads(r["body"])["data"]) for r in read_events(bag)
    ]
    kinds = [t for t, _ in types]
    # case.open (the owner), Lee's identity (receiver, then signer), ITEM-1's collect,
    # its object's describe event (it names that object only), its transfer and
    # receipt (one per item), its note, the export
    assert kinds == [
        "case.open",
        "collect",
        "describe",
        "identity",
        "transfer",
        "receive",
        "note",
        "export",
    ]
    (typed,) = [d for t, d in types if t == "describe"]
    assert set(typed) == {"sha256", "mime", "description", "libmagic"}
    (ident,) = [d for t, d in types if t == "identity"]
    assert ident["name"] == "Lee Okafor"
    (tr,) = [d for t, d in types if t == "transfer"]
    assert (tr["items"], list(tr["digests"]), tr["handover"]) == (
        ["ITEM-1"],
        ["ITEM-1"],
        story["transfer"]["id"],
    )
    (rc,) = [d for t, d in types if t == "receive"]
    assert list(rc["items"]) == ["ITEM-1"]
    keys = json.loads((bag / "custody" / "keys.json").read_text())
    assert sorted(k["name"] for k in keys) == ["Dana Reyes", "Lee Okafor"]
    # it verifies, trusting the owner, for custody and for the independent verifier
    dana = story["root"] / "dana.pub"
    proc = run("bundle", "verify", bag, "--trust", dana, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["findings"] == [] and report["warnings"] == []
    assert [h["transfer"] for h in report["handovers"]["ITEM-1"]] == [story["transfer"]["id"]]
    assert docverify.verify(bag, trust=(story["keys"]["Dana Reyes"],)) == (0, [])


def test_revocation_of_a_needed_key_is_disclosed(
    story: dict[str, Any], tmp_path: Path, run: Run
) -> None:
    """Lee signed ITEM-1's receipt: when his key is revoked, the revocation (and its
    reason) is part of ITEM-1's custody and leaves with it; Oscar's does not."""
    root = story["root"]
    case = tmp_path / "case"
    shutil.copytree(root / "case", case)
    c = story["case"].run
    c(
        "key",
        "revoke",
        story["keys"]["Lee Okafor"],
        "--reason",
        "Lee left the firm",
        cwd=case,
        check=True,
    )
    c("bundle", "export", "ITEM-1", "--out", tmp_path / "b", cwd=case, check=True)
    events = b"".join(p.read_bytes() for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert b"Lee left the firm" in events and REVOKE_REASON.encode() not in events
    proc = run("bundle", "verify", tmp_path / "b", "--trust", root / "dana.pub")
    assert proc.returncode == 0, proc.stdout


def test_identity_from_a_fuller_bundle_added_is_caught(
    story: dict[str, Any], tmp_path: Path, run: Run
) -> None:
    """Someone with the full bundle adds Kim's signed identity event (and a proof) to
    the one-item bundle: it is genuine, but the export event did not disclose it."""
    c = story["case"]
    full = tmp_path / "full"
    c("bundle", "export", "--all", "--out", full, check=True)
    bag = tmp_path / "one"
    shutil.copytree(story["out"] / "one", bag)
    (kim,) = [
        r
        for r in read_events(full)
        if json.loads(r["body"])["type"] == "identity" and "Kim Ito" in r["body"]
    ]
    rows = read_events(bag)
    write_events(bag, [*rows, kim])
    retag(bag)
    proc = run("bundle", "verify", bag, "--json")
    assert proc.returncode == 1
    kinds = {(f["kind"], f["subject"]) for f in json.loads(proc.stdout)["findings"]}
    assert ("event-extra", f"event {kim['seq']}") in kinds
    rc, found = docverify.verify(bag)  # the independent verifier, from the page alone
    assert (rc, set(found)) == (1, kinds)


def test_derived_tables_edited_without_a_key_change_nothing(
    story: dict[str, Any], tmp_path: Path
) -> None:
    """The case file's item index says ITEM-2's events are ITEM-1's: the export
    reads the signed bodies, so ITEM-2's note still stays home."""
    case = tmp_path / "case"
    shutil.copytree(story["root"] / "case", case)
    db = next(
        p for p in case.iterdir() if p.suffix in (".db", ".sqlite") or p.name.startswith("ledger")
    )
    con = sqlite3.connect(db)
    for (trigger,) in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        con.execute(f'DROP TRIGGER "{trigger}"')  # the append-only guard, dropped
    sql = "UPDATE OR REPLACE event_items SET item = 'ITEM-1' WHERE item = 'ITEM-2'"
    assert con.execute(sql).rowcount >= 5
    con.commit()
    con.close()
    story["case"].run("bundle", "export", "ITEM-1", "--out", tmp_path / "b", cwd=case, check=True)
    events = (tmp_path / "b" / "custody" / "events.jsonl").read_bytes()
    assert NOTE_OTHER.encode() not in events and b"ITEM-2" not in events


# -- old multi-item events: disclosed whole, with a warning ----------------------------


def test_old_multi_item_transfer_disclosed_whole_with_warning(tmp_path: Path, run: Run) -> None:
    c = template_case(tmp_path, counsel=True)
    ev = tmp_path / "ev"
    ev.mkdir()
    for n in ("a.txt", "b.txt"):
        (ev / n).write_bytes(n.encode() * 10)
    c("collect", "--reason", "r", ev / "a.txt", ev / "b.txt", check=True)
    c(
        "key",
        "import",
        tmp_path / "lee.pub",
        "--name",
        "Lee Okafor",
        "--role",
        "counsel",
        check=True,
    )
    dana = load_signer(tmp_path / "dana.pem", PASSPHRASE.encode())
    with Ledger.open(c.dir) as led:  # a hand-over written as before: one event, two items
        t = append_checked(
            led, dana, lambda r: transfer_draft(r, ["ITEM-1", "ITEM-2"], "Lee Okafor", REASON)
        )
    proc = c("receive", f"TRANSFER-{t.seq}", "--key", tmp_path / "lee.pem", "--json", check=True)
    assert list(json.loads(proc.stdout)["items"]) == ["ITEM-1", "ITEM-2"]
    proc = c("bundle", "export", "ITEM-1", "--out", tmp_path / "b", "--json", check=True)
    warnings = json.loads(proc.stdout)["warnings"]
    assert warnings == [
        f"event {t.seq} (transfer) also names ITEM-2 and their digests: it was signed for"
        " several items at once, so it is disclosed whole",
        f"event {t.seq + 1} (receive) also names ITEM-2 and their digests: it was signed for"
        " several items at once, so it is disclosed whole",
    ]
    assert proc.stderr == "".join(f"Warning: {w}\n" for w in warnings)
    assert run("bundle", "verify", tmp_path / "b", "--trust", tmp_path / "dana.pub").returncode == 0


# -- the hand-over's rules: the writers' gate and verify apply one rule -----------------


@pytest.fixture
def handover_case(tmp_path: Path) -> tuple[Path, Any, Any]:
    c = template_case(tmp_path, counsel=True)
    ev = tmp_path / "ev"
    ev.mkdir()
    for n in ("a.txt", "b.txt", "c.txt"):
        (ev / n).write_bytes(n.encode() * 10)
    c("collect", "--reason", "r", *(ev / n for n in ("a.txt", "b.txt", "c.txt")), check=True)
    c(
        "key",
        "import",
        tmp_path / "lee.pub",
        "--name",
        "Lee Okafor",
        "--role",
        "counsel",
        check=True,
    )
    dana = load_signer(tmp_path / "dana.pem", PASSPHRASE.encode())
    lee = load_signer(tmp_path / "lee.pem", PASSPHRASE.encode())
    return c.dir, dana, lee


def _forced(led: Ledger, signer: Any, build: Any) -> Any:
    return led.append(signer, lambda: build(led.rules().current(), led.event_count()))


def test_handover_members_must_agree(handover_case: tuple[Path, Any, Any]) -> None:
    case, dana, _ = handover_case
    with Ledger.open(case) as led:
        before = led.event_count()

        def other_reason(r: Any, n: int) -> list[EventDraft]:
            ds = handover_drafts(r, n, ["ITEM-1", "ITEM-2"], "Lee Okafor", REASON)
            ds[1].data["reason"] = "something else"
            return ds

        with pytest.raises(CustodyRuleError, match="not the same hand-over as TRANSFER-"):
            _forced(led, dana, other_reason)

        def future_id(r: Any, n: int) -> list[EventDraft]:
            return handover_drafts(r, n + 5, ["ITEM-1", "ITEM-2"], "Lee Okafor", REASON)

        with pytest.raises(CustodyRuleError, match="is not an earlier transfer id"):
            _forced(led, dana, future_id)

        def two_items(r: Any, n: int) -> list[EventDraft]:
            ds = handover_drafts(r, n, ["ITEM-1", "ITEM-2"], "Lee Okafor", REASON)
            ds[0].data["items"] = ["ITEM-1", "ITEM-3"]
            return ds[:1]

        with pytest.raises(CustodyRuleError, match="moves exactly one item"):
            _forced(led, dana, two_items)

        def gap(r: Any, n: int) -> list[EventDraft]:
            ds = handover_drafts(r, n, ["ITEM-1", "ITEM-2"], "Lee Okafor", REASON)
            note = EventDraft("note", {"items": ["ITEM-3"], "reason": "x", "location": ""})
            return [ds[0], note, ds[1]]

        with pytest.raises(CustodyRuleError, match="must be consecutive events"):
            _forced(led, dana, gap)
        assert led.event_count() == before  # nothing of it was written


def test_receipt_must_carry_its_handover(handover_case: tuple[Path, Any, Any]) -> None:
    case, dana, lee = handover_case
    with Ledger.open(case) as led:
        evs = _forced(
            led,
            dana,
            lambda r, n: handover_drafts(r, n, ["ITEM-1", "ITEM-2"], "Lee Okafor", REASON),
        )
        (_, t2) = [e for e in evs if e.type == TRANSFER_EVENT]

        def wrong(r: Any, n: int) -> list[EventDraft]:
            d = receipt_draft(r, r.transfers[t2.seq])
            d.data["handover"] = f"TRANSFER-{t2.seq}"
            return [d]

        with pytest.raises(CustodyRuleError, match="the receipt's hand-over"):
            _forced(led, lee, wrong)


def test_verify_reports_a_handover_forged_past_the_gate(
    handover_case: tuple[Path, Any, Any], run: Run
) -> None:
    """Dana's key, no CLI: the second part of a hand-over names another receiver
    and reason.  ``custody verify`` reports it by the rule the gate applies, and a
    one-item bundle of the first part alone still verifies (its partner withheld)."""
    case, dana, _ = handover_case
    with Ledger.open(case) as led:
        n = led.event_count()
        first, second = handover_drafts(
            led.rules().current(), n, ["ITEM-1", "ITEM-2"], "Lee Okafor", REASON
        )
        append_unchecked(led, dana, TRANSFER_EVENT, first.data)
        append_unchecked(led, dana, TRANSFER_EVENT, {**second.data, "reason": "to the press"})
    proc = run("verify", "--json", cwd=case)
    assert proc.returncode == 1
    found = {(f["kind"], f["subject"]) for f in json.loads(proc.stdout)["findings"]}
    assert found == {("transfer", f"TRANSFER-{n + 1}")}
    run("bundle", "export", "ITEM-1", "--out", case.parent / "b", cwd=case, check=True)
    proc = run("bundle", "verify", case.parent / "b", "--trust", case.parent / "dana.pub")
    assert proc.returncode == 0, proc.stdout
    run("bundle", "export", "ITEM-2", "--out", case.parent / "b2", cwd=case, check=True)
    proc = run("bundle", "verify", case.parent / "b2", "--json", "--accept-self-asserted")
    found = {(f["kind"], f["subject"]) for f in json.loads(proc.stdout)["findings"]}
    # ITEM-2's part alone: compared with nothing, so nothing to report...
    assert (proc.returncode, found) == (0, set())
    run("bundle", "export", "ITEM-1", "ITEM-2", "--out", case.parent / "b3", cwd=case, check=True)
    proc = run("bundle", "verify", case.parent / "b3", "--json")
    found = {(f["kind"], f["subject"]) for f in json.loads(proc.stdout)["findings"]}
    # ...both parts: the same finding as the case's own verify
    assert (proc.returncode, found) == (1, {("transfer", f"TRANSFER-{n + 1}")})
