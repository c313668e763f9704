"""bundle import requires trust (issue 14 §2-§4): --trust and the case's own trust
anchors (owner-signed trust.add / trust.remove), self-asserted signers refused
unless accepted (and that recorded in the signed import event), a source pinned
at its first import (a fork or another collector key refused), staging (the
bytes verified are the bytes imported), idempotence by signed content, and
bundle verify's verdict without a trust anchor.  Three attackers: one forging a
bundle, one with write access to the lab's files but no key, one with hostile
key files and options."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, Run, new_key, one_error_line
from tampering import append_unchecked, bypass

from custody.keys import load_signer
from custody.ledger import Ledger
from custody.lifecycle import import_records

CASE_ID = "2026-017"


class World:
    """Keys and cases under ``root``: Dana Reyes (the source case's owner and
    collector), Mallory (an unknown key that calls itself Dana Reyes), the lab's
    owner; the source case, its bundle b1, a forged bundle of a case with the same
    id and title, and an empty lab case."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.run = Run(
            env={
                "CUSTODY_CONFIG_DIR": str(root / "config"),
                "CUSTODY_PASSPHRASE": PASSPHRASE,
            },
            cwd=root,
        )

    def key(self, name: str) -> Path:
        return self.root / f"{name}.pem"

    def pub(self, name: str) -> Path:
        return self.root / f"{name}.pub"

    def as_(self, who: str, *args: Any, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run(*args, env={"CUSTODY_KEY": str(self.key(who))}, **kw)

    def lab(self, *args: Any, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.as_("lab", *args, "--case", self.root / "lab", **kw)

    def src(self, *args: Any, case: str = "case", **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.as_("dana", *args, "--case", self.root / case, **kw)

    def lab_json(self, *args: Any) -> Any:
        proc = self.lab(*args, "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def fp(self, name: str) -> str:
        from custody.keys import fingerprint, load_public_key

        return fingerprint(load_public_key(self.pub(name)))

    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        conn = sqlite3.connect(self.root / "lab" / "custody.db")
        try:
            return {
                t: sorted(conn.execute(f"SELECT * FROM {t}"))
                for t in ("events", "imported_bundles", "imported_events")
            }
        finally:
            conn.close()

    def store(self) -> dict[str, bytes]:
        s = self.root / "lab" / "store"
        return {  # the store's objects (not its lock file)
            str(p.relative_to(s)): p.read_bytes()
            for p in s.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        }

    def import_events(self) -> list[dict[str, Any]]:
        """Each import as one record: the data of its first (bundle-level) event,
        with ``items`` gathered from its items' events (custody.lifecycle)."""
        log = self.lab_json("log")
        found = import_records((e["seq"], json.loads(e["body"])) for e in log)
        return [data for _, data in sorted(found.values(), key=lambda x: x[0])]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trust")
    w = World(root)
    new_key(w.run, w.key("dana"), "Dana Reyes", "collector")
    new_key(w.run, w.key("mallory"), "Dana Reyes", "collector", default=False)
    new_key(w.run, w.key("lab"), "Lab Owner", "examiner", default=False)
    ev = root / "evidence"
    ev.mkdir()
    (ev / "genuine.txt").write_text("the genuine evidence\n")
    (ev / "second.txt").write_text("second file\n")
    (ev / "forged.txt").write_text("ATTACKER BYTES\n")
    w.as_("dana", "init", root / "case", "--case-id", CASE_ID, "--title", "Payroll", check=True)
    w.src("collect", ev / "genuine.txt", ev / "second.txt", "--reason", "r", check=True)
    w.src("bundle", "export", "--all", "--out", root / "b1", check=True)
    w.as_("mallory", "init", root / "forged-case", "--case-id", CASE_ID, "--title", "Payroll")
    w.as_(
        "mallory",
        "collect",
        ev / "forged.txt",
        "--reason",
        "r",
        "--case",
        root / "forged-case",
        check=True,
    )
    w.as_(
        "mallory",
        "bundle",
        "export",
        "--all",
        "--out",
        root / "forged",
        "--case",
        root / "forged-case",
        check=True,
    )
    w.as_("lab", "init", root / "lab", "--case-id", "LAB-1", "--title", "lab", check=True)
    return root


@pytest.fixture
def w(template: Path, tmp_path: Path) -> Iterator[World]:
    root = tmp_path / "w"
    shutil.copytree(template, root, symlinks=True)
    yield World(root)


# -- import requires trust -----------------------------------------------------------


def test_without_trust_the_import_is_refused_and_writes_nothing(w: World) -> None:
    before = (w.rows(), w.store())
    proc = w.lab("bundle", "import", w.root / "b1")
    assert proc.returncode == 1
    assert one_error_line(proc) == (
        f"custody: error: bundle {w.root / 'b1'} refused: signer(s) {w.fp('dana')} are"
        " self-asserted and the import did not accept self-asserted signers. Give --trust"
        " with the public key of the case's owner or collector (or add it with 'custody trust"
        " add'), or --accept-self-asserted to import it on the signers' own word (recorded);"
        " nothing was imported"
    )
    assert (w.rows(), w.store()) == before
    assert not list((w.root / "lab").glob(".import-*"))  # staging removed


def test_import_with_trust_records_the_trust_basis(w: World) -> None:
    out = w.lab_json("bundle", "import", w.root / "b1", "--trust", w.pub("dana"))
    assert out[0]["signers"] == {w.fp("dana"): "trusted"}
    (data,) = w.import_events()
    assert data["trust"] == {
        "anchors": [w.fp("dana")],
        "signers": {w.fp("dana"): "trusted"},
        "accept_self_asserted": False,
    }
    assert "consistency" not in data  # the first import pins the source
    assert w.lab("verify").returncode == 0
    assert [i["source"] for i in w.lab_json("list")] == [out[0]["source"]] * 2


def test_accept_self_asserted_is_recorded_in_the_signed_import_event(w: World) -> None:
    proc = w.lab("bundle", "import", w.root / "b1", "--accept-self-asserted")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith(f"; accepted self-asserted signer(s) {w.fp('dana')}")
    (data,) = w.import_events()
    assert data["trust"] == {
        "anchors": [],
        "signers": {w.fp("dana"): "self-asserted"},
        "accept_self_asserted": True,
    }
    assert w.lab("verify").returncode == 0


def test_a_forged_bundle_with_the_same_case_id_and_name_is_refused(w: World) -> None:
    """Mallory's key calls itself Dana Reyes, her case is 2026-017 "Payroll": only
    the key counts.  bundle verify says so, import refuses it, the genuine one
    imports beside it."""
    forged = w.root / "forged"
    plain = w.run("bundle", "verify", forged)
    assert plain.returncode == 1
    assert plain.stdout.startswith("INTACT, SIGNERS UNCONFIRMED: ")
    assert "VERIFIED" not in plain.stdout.replace("UNCONFIRMED", "")
    proc = w.run("bundle", "verify", forged, "--json", "--trust", w.pub("dana"))
    out = json.loads(proc.stdout)
    assert (proc.returncode, out["verdict"]) == (1, "failed")
    assert {(f["kind"], f["subject"]) for f in out["findings"]} == {
        ("untrusted-key", w.fp("mallory")),
        ("untrusted-checkpoint", "custody/checkpoint.txt"),
    }
    before = w.rows()
    proc = w.lab("bundle", "import", forged, "--trust", w.pub("dana"))
    assert proc.returncode == 1
    assert f"signer(s) {w.fp('mallory')} are self-asserted" in one_error_line(proc)
    assert w.rows() == before
    assert w.lab("bundle", "import", w.root / "b1", "--trust", w.pub("dana")).returncode == 0
    assert [i["sha256"] for i in w.lab_json("list")] != []
    assert b"ATTACKER BYTES\n" not in w.store().values()


# -- the case's own trust anchors ------------------------------------------------------


def test_trust_anchors_are_the_owners_signed_events(w: World) -> None:
    assert w.lab("trust", "list").stdout.startswith("No trust anchors")
    # only the lab's owner may add one: Dana (a key the lab knows nothing of) may not
    proc = w.as_("dana", "trust", "add", w.pub("dana"), "--case", w.root / "lab")
    assert proc.returncode == 2
    assert "may not sign trust.add" in one_error_line(proc)
    # a fingerprint alone is not recorded as an anchor
    proc = w.lab("trust", "add", w.fp("dana"))
    assert proc.returncode == 2
    assert "is a fingerprint; give the public key file" in one_error_line(proc)
    proc = w.lab("trust", "add", w.pub("dana"), "--name", "Dana (met in person)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"Trust anchor {w.fp('dana')} added as event 1\n"
    assert w.lab_json("trust", "list") == [
        {"fingerprint": w.fp("dana"), "name": "Dana (met in person)", "event": 1}
    ]
    again = w.lab("trust", "add", w.pub("dana"))
    assert again.returncode == 2
    assert f"{w.fp('dana')} is already a trust anchor (event 1)" in one_error_line(again)
    # the case's anchor is enough: no --trust
    out = w.lab_json("bundle", "import", w.root / "b1")
    assert out[0]["signers"] == {w.fp("dana"): "trusted"}
    assert w.import_events()[0]["trust"]["anchors"] == [w.fp("dana")]
    # removed: a later bundle of the forger is judged without it, and the earlier
    # import keeps the basis it recorded
    proc = w.lab("trust", "remove", w.fp("dana"))
    assert proc.stdout == f"Trust anchor {w.fp('dana')} removed as event 7\n"
    assert w.lab_json("trust", "list") == []
    assert w.lab("trust", "remove", w.fp("dana")).returncode == 2
    assert w.lab("verify").returncode == 0


def test_a_trust_event_signed_by_another_key_is_a_verify_finding(w: World) -> None:
    """A writer who skips the CLI's gate: verify replays the same rule."""
    from custody.keys import fingerprint, load_public_key

    pub = load_public_key(w.pub("mallory"))
    import base64

    data = {
        "fingerprint": fingerprint(pub),
        "public_key": base64.b64encode(pub).decode(),
        "name": "",
    }
    w.lab("key", "import", w.pub("mallory"), "--name", "Mal", "--role", "examiner", check=True)
    with Ledger.open(w.root / "lab") as ledger:
        signer = load_signer(w.key("mallory"), PASSPHRASE.encode())
        append_unchecked(ledger, signer, "trust.add", data)
    out = json.loads(w.lab("verify", "--json").stdout)
    assert [f["kind"] for f in out["findings"]] == ["authority"]
    assert w.lab_json("trust", "list") == []


# -- pinning a source ----------------------------------------------------------------


def _second_bundle(w: World, case: str = "case", name: str = "b2") -> Path:
    f = w.root / "evidence" / f"{case}-{name}.txt"
    f.write_text(f"more from {case} {name}\n")
    w.src("collect", f, "--reason", "r", case=case, check=True)
    w.src("bundle", "export", "--all", "--out", w.root / name, case=case, check=True)
    return w.root / name


def test_a_later_bundle_proves_it_extends_the_pinned_checkpoint(w: World) -> None:
    trust = ("--trust", w.pub("dana"))
    assert w.lab("bundle", "import", w.root / "b1", *trust).returncode == 0
    b2 = _second_bundle(w)
    out = w.lab_json("bundle", "import", b2, *trust)
    assert out[0]["already_imported"] is False
    first, second = w.import_events()
    pinned = int(first["checkpoint"].split("\n")[1])
    assert second["consistency"]["size"] == pinned
    assert second["consistency"]["proof"]
    assert len(w.lab_json("list")) == 3  # the two items of b1 kept their ids
    assert w.lab("verify").returncode == 0


def test_a_fork_of_the_source_is_refused_and_named(w: World) -> None:
    """A copy of the source case taken after b1 goes on with other events: its
    bundle has the same source (header) and extends b1, but not b2, which the lab
    imported first: the same number of events under another root, a fork."""
    trust = ("--trust", w.pub("dana"))
    shutil.copytree(w.root / "case", w.root / "fork")
    assert w.lab("bundle", "import", w.root / "b1", *trust).returncode == 0
    b2 = _second_bundle(w, "case", "b2")  # the genuine line goes on...
    fork = _second_bundle(w, "fork", "bf")  # ...and so does the copy, differently
    assert w.lab("bundle", "import", b2, *trust).returncode == 0
    b2_size = int(w.import_events()[1]["checkpoint"].split("\n")[1])
    before = w.rows()
    proc = w.lab("bundle", "import", fork, *trust)
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert f"bundle {fork} of source {CASE_ID}@" in line
    assert f"refused: fork: its checkpoint of {b2_size} events has root " in line
    assert "the one pinned at event 6 has root" in line  # b2's import: 1+2 events later
    assert w.rows() == before


def test_a_bundle_that_cannot_prove_it_extends_the_pin_is_refused(w: World) -> None:
    trust = ("--trust", w.pub("dana"))
    assert w.lab("bundle", "import", w.root / "b1", *trust).returncode == 0
    b2 = _second_bundle(w)
    (b2 / "custody" / "consistency.json").chmod(0o600)
    (b2 / "custody" / "consistency.json").write_text('{"tree_size": 1, "proofs": []}\n')
    from tampering import retag

    retag(b2)
    proc = w.lab("bundle", "import", b2, *trust)
    assert proc.returncode == 1
    assert "does not prove that its checkpoint" in one_error_line(proc)
    assert "no consistency proof from it" in proc.stderr


def test_another_collector_key_of_the_source_needs_trust(w: World) -> None:
    """First imported on the signers' own word; a later bundle of the same source
    signed by a key the pin does not know is refused unless that key is trusted."""
    assert w.lab("bundle", "import", w.root / "b1", "--accept-self-asserted").returncode == 0
    new_key(w.run, w.key("kim"), "Kim Ng", "collector", default=False)
    w.src("key", "import", w.pub("kim"), "--name", "Kim Ng", "--role", "collector", check=True)
    f = w.root / "evidence" / "kim.txt"
    f.write_text("kim's file\n")
    w.as_("kim", "collect", f, "--reason", "r", "--case", w.root / "case", check=True)
    w.as_("kim", "bundle", "export", "--all", "--out", w.root / "b2", "--case", w.root / "case")
    before = w.rows()
    proc = w.lab("bundle", "import", w.root / "b2", "--accept-self-asserted")
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert f"refused: signed by {w.fp('kim')}, not a key of the source's bundle pinned at" in line
    assert "a different collector key is imported only when trusted" in line
    assert w.rows() == before
    # Kim is attested by the source's owner: trusting the owner's key vouches for her
    out = w.lab_json("bundle", "import", w.root / "b2", "--trust", w.pub("dana"))
    assert out[0]["signers"] == {w.fp("dana"): "trusted", w.fp("kim"): "trusted"}
    assert w.lab("verify").returncode == 0


# -- verify what you import ----------------------------------------------------------


def test_a_bundle_swapped_between_its_check_and_its_import_is_not_imported(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attacker swaps the payload and bundle.json of the folder after it was
    checked: the import reads the private staged copy, so the lab never holds the
    attacker's bytes."""
    from custody.bundle import importer

    b1 = w.root / "b1"
    seen: list[Path] = []

    def swap(original: Path, staged: Path) -> None:
        seen.append(staged)
        assert staged != original and oct(staged.parent.stat().st_mode & 0o777) == "0o700"
        for p in (original / "data").rglob("*"):
            if p.is_file():
                p.chmod(0o600)
                p.write_bytes(b"ATTACKER BYTES\n")
        meta = json.loads((original / "custody" / "bundle.json").read_text())
        meta["items"].reverse()
        (original / "custody" / "bundle.json").write_text(json.dumps(meta))

    monkeypatch.setattr(importer, "_after_staging", swap)
    out = w.lab_json("bundle", "import", b1, "--trust", w.pub("dana"))
    assert seen and not seen[0].exists()  # staged, then removed
    assert b"ATTACKER BYTES\n" not in w.store().values()
    assert sorted(w.store().values()) == [b"second file\n", b"the genuine evidence\n"]
    assert [i["source_item"] for i in out[0]["items"]] == ["ITEM-1", "ITEM-2"]
    assert w.lab("verify").returncode == 0


def test_idempotence_is_by_signed_content_not_tag_manifest_bytes(w: World) -> None:
    trust = ("--trust", w.pub("dana"))
    first = w.lab_json("bundle", "import", w.root / "b1", *trust)
    tm = w.root / "b1" / "tagmanifest-sha256.txt"
    tm.chmod(0o600)
    tm.write_text(tm.read_text() + "\n")
    assert w.run("bundle", "verify", w.root / "b1", *trust).returncode == 0
    before = (w.rows(), w.store())
    again = w.lab_json("bundle", "import", w.root / "b1", *trust)
    assert again[0]["already_imported"] is True
    assert again[0]["id"] == first[0]["id"]
    assert (w.rows(), w.store()) == before


# -- a writer with the lab's files but no key ------------------------------------------


def test_the_import_events_trust_basis_cannot_be_edited_without_the_key(w: World) -> None:
    assert w.lab("bundle", "import", w.root / "b1", "--accept-self-asserted").returncode == 0
    db = w.root / "lab" / "custody.db"
    with Ledger.open(w.root / "lab") as ledger:
        (seq, body) = ledger.conn.execute(
            "SELECT seq, body FROM events WHERE type = 'import'"
        ).fetchone()
    forged = body.replace('"self-asserted"', '"trusted"').replace(
        '"accept_self_asserted":true', '"accept_self_asserted":false'
    )
    assert forged != body
    bypass(db, "events", f"UPDATE events SET body = '{forged}' WHERE seq = {seq};")
    out = json.loads(w.lab("verify", "--json").stdout)
    assert out["ok"] is False
    assert {f["kind"] for f in out["findings"]} >= {"event-hash"}


def test_an_import_event_claiming_trust_the_anchors_do_not_give_is_a_finding(
    w: World,
) -> None:
    """An import event (signed, but written past the importer) that calls a
    self-asserted signer trusted: verify recomputes the standing from the source's
    signed events and the anchors the event records."""
    assert w.lab("bundle", "import", w.root / "b1", "--accept-self-asserted").returncode == 0
    (data,) = w.import_events()
    data["trust"] = {
        "anchors": [w.fp("mallory")],
        "signers": {w.fp("dana"): "trusted"},
        "accept_self_asserted": False,
    }
    with Ledger.open(w.root / "lab") as ledger:
        append_unchecked(ledger, load_signer(w.key("lab"), PASSPHRASE.encode()), "import", data)
    out = json.loads(w.lab("verify", "--json").stdout)
    details = [f["detail"] for f in out["findings"] if f["kind"] == "import"]
    assert any(
        f"says its signers were {w.fp('dana')} trusted, but by the anchors it records the"
        f" source's signed events give {w.fp('dana')} self-asserted" in d
        for d in details
    ), details


def test_a_forged_bundles_rows_swapped_into_a_trusted_import_are_findings(w: World) -> None:
    assert w.lab("bundle", "import", w.root / "b1", "--trust", w.pub("dana")).returncode == 0
    # the attacker imports the forgery into a scratch case and moves its rows over
    scratch = w.root / "scratch"
    w.as_("lab", "init", scratch, "--case-id", "S", "--title", "s", check=True)
    w.as_(
        "lab",
        "bundle",
        "import",
        w.root / "forged",
        "--accept-self-asserted",
        "--case",
        scratch,
        check=True,
    )
    src = sqlite3.connect(scratch / "custody.db")
    (fbundle, fkeys) = src.execute("SELECT bundle, keys FROM imported_bundles").fetchone()
    rows = src.execute(
        "SELECT seq, hash, signer, body, signature, proof FROM imported_events"
    ).fetchall()
    src.close()
    db = w.root / "lab" / "custody.db"
    conn = sqlite3.connect(db)
    (bundle,) = conn.execute("SELECT bundle FROM imported_bundles").fetchone()
    conn.close()
    values = ",".join(
        "('{}',{},'{}','{}','{}','{}','{}')".format(
            bundle, r[0], r[1], r[2], r[3].replace("'", "''"), r[4], r[5]
        )
        for r in rows
    )
    bypass(
        db,
        ("imported_bundles", "imported_events"),
        f"DELETE FROM imported_events; INSERT INTO imported_events (bundle, seq, hash, signer,"
        f" body, signature, proof) VALUES {values};"
        f" UPDATE imported_bundles SET keys = '{fkeys}';",
    )
    assert fbundle != bundle
    out = json.loads(w.lab("verify", "--json").stdout)
    assert out["ok"] is False
    assert {f["kind"] for f in out["findings"]} == {"import"}


# -- hostile key files and options -------------------------------------------------


@pytest.mark.parametrize(
    "what",
    ["fifo", "dev-zero", "huge", "binary", "directory", "p256", "bad-vkey", "missing", "newline"],
)
def test_hostile_trust_keys_are_refused_in_one_line(w: World, what: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p = w.root / f"k-{what}"
    arg: str = str(p)
    if what == "fifo":
        os.mkfifo(p)
    elif what == "dev-zero":
        arg = "/dev/zero"
    elif what == "huge":
        p.write_bytes(b"-----BEGIN PUBLIC KEY-----\n" + b"A" * 100_000)
    elif what == "binary":
        p.write_bytes(os.urandom(64) + b"\xff")
    elif what == "directory":
        p.mkdir()
    elif what == "p256":
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        p.write_bytes(
            key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    elif what == "bad-vkey":
        arg = "dana-reyes+00000000+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    elif what == "newline":
        arg = str(w.pub("dana")) + "\nsha256:" + "0" * 64
    before = w.rows()
    for cmd in (("bundle", "import", w.root / "b1"), ("trust", "add")):
        proc = w.lab(
            *cmd, "--trust" if cmd[0] == "bundle" else arg, *([arg] if cmd[0] == "bundle" else [])
        )
        assert proc.returncode == 2, (what, cmd, proc.stdout, proc.stderr)
        one_error_line(proc)
    proc = w.run("bundle", "verify", w.root / "b1", "--trust", arg)
    assert proc.returncode == 2, (what, proc.stderr)
    one_error_line(proc)
    assert w.rows() == before


def test_a_verifier_key_is_a_trust_anchor(w: World) -> None:
    from custody.keys import load_public_key
    from custody.note import verifier_key

    vkey = verifier_key("dana-reyes", load_public_key(w.pub("dana")))
    out = w.lab_json("bundle", "import", w.root / "b1", "--trust", vkey)
    assert out[0]["signers"] == {w.fp("dana"): "trusted"}


# -- the report's banner says what bundle verify says -----------------------------------


@pytest.mark.parametrize("fmt", ["html", "json", "csv", "case"])
def test_report_banner_without_a_trust_anchor(w: World, fmt: str) -> None:
    out = w.root / f"r.{fmt}"
    proc = w.run("report", "--bundle", w.root / "b1", "--format", fmt, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "verification INTACT, SIGNERS UNCONFIRMED" in proc.stdout
    text = out.read_text()
    assert "INTACT, SIGNERS UNCONFIRMED" in text or "intact, signers unconfirmed" in text
    assert "VERIFICATION PASSED" not in text
    trusted = w.root / f"t.{fmt}"
    proc = w.run(
        "report", "--bundle", w.root / "b1", "--format", fmt, "--out", trusted,
        "--trust", w.pub("dana"),
    )  # fmt: skip
    assert "verification VERIFICATION PASSED" in proc.stdout
    assert "UNCONFIRMED" not in trusted.read_text().upper()


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_pdf_report_banner_without_a_trust_anchor(w: World) -> None:
    def text(*trust: Any) -> str:
        out = w.root / f"r{len(trust)}.pdf"
        cmd = ("report", "--bundle", w.root / "b1", "--format", "pdf", "--out", out, *trust)
        assert w.run(*cmd).returncode == 0
        return subprocess.run(
            ["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True
        ).stdout

    plain = text()
    assert "INTACT, SIGNERS UNCONFIRMED" in plain and "VERIFICATION PASSED" not in plain
    trusted = text("--trust", w.pub("dana"))
    assert "VERIFICATION PASSED" in trusted and "UNCONFIRMED" not in trusted


# -- sources imported out of order ---------------------------------------------------


def test_an_older_bundle_imported_after_a_newer_one_is_placed_by_its_proof(w: World) -> None:
    """b2 (newer) first pins the source; b1 (older) then proves, by b2's consistency
    proof from b1's checkpoint size, that it is on the pinned line: accepted."""
    trust = ("--trust", w.pub("dana"))
    b2 = _second_bundle(w)
    assert w.lab("bundle", "import", b2, *trust).returncode == 0
    out = w.lab_json("bundle", "import", w.root / "b1", *trust)
    assert out[0]["already_imported"] is False
    newer, older = w.import_events()
    old_size = int(older["checkpoint"].split("\n")[1])
    new_size = int(newer["checkpoint"].split("\n")[1])
    assert old_size < new_size
    assert [p["size"] for p in newer["consistency_from"]] == [old_size]
    assert older["consistency"] == {
        "size": new_size,
        "proof": newer["consistency_from"][0]["proof"],
    }
    assert len(w.lab_json("list")) == 3  # b1's two items are b2's: kept, not doubled
    assert w.lab("verify").returncode == 0
    # the pin stays at the newer checkpoint: b2 again changes nothing
    assert w.lab_json("bundle", "import", b2, *trust)[0]["already_imported"] is True


def test_an_older_fork_imported_after_the_newer_bundle_is_refused_and_named(w: World) -> None:
    """A copy of the source taken after b1 goes on differently and exports bf, of
    b2's size but another root, older than the genuine b3 the lab pinned first:
    b3's proof from that size does not take bf's root to b3's, a fork."""
    trust = ("--trust", w.pub("dana"))
    shutil.copytree(w.root / "case", w.root / "fork")
    b2 = _second_bundle(w, "case", "b2")
    w.src("event", "note", "ITEM-1", "--reason", "more", case="case", check=True)
    w.src("bundle", "export", "--all", "--out", w.root / "b3", case="case", check=True)
    fork = _second_bundle(w, "fork", "bf")
    assert w.lab("bundle", "import", w.root / "b3", *trust).returncode == 0
    before = w.rows()
    proc = w.lab("bundle", "import", fork, *trust)
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert f"bundle {fork} of source {CASE_ID}@" in line
    assert "refused: fork: the checkpoint pinned at event" in line
    assert "does not extend its checkpoint" in line
    assert w.rows() == before
    # the genuine older bundles are placed
    assert w.lab("bundle", "import", b2, *trust).returncode == 0
    assert w.lab("bundle", "import", w.root / "b1", *trust).returncode == 0
    assert w.lab("verify").returncode == 0


def test_a_wrong_proof_for_an_older_bundle_is_a_fork(w: World) -> None:
    """Written past the importer (the lab's key, no check): an older bundle's import
    event whose proof does not take its root to the pinned one is an import finding."""
    trust = ("--trust", w.pub("dana"))
    b2 = _second_bundle(w)
    assert w.lab("bundle", "import", b2, *trust).returncode == 0
    (newer,) = w.import_events()
    proof = list(newer["consistency_from"][0]["proof"])
    proof[0] = "0" * 64
    assert w.lab("bundle", "import", w.root / "b1", *trust).returncode == 0
    _, older = w.import_events()
    forged = {**older, "consistency": {**older["consistency"], "proof": proof}}
    forged["bundle"] = "sha256:" + "2" * 64
    with Ledger.open(w.root / "lab") as ledger:
        append_unchecked(ledger, load_signer(w.key("lab"), PASSPHRASE.encode()), "import", forged)
    out = json.loads(w.lab("verify", "--json").stdout)
    details = [f["detail"] for f in out["findings"] if f["kind"] == "import"]
    assert any(
        d.startswith("import refused: fork: the checkpoint pinned at event") for d in details
    )


def test_an_older_bundle_without_a_proof_is_refused() -> None:
    """The rule itself (custody.trust, used by the importer and the replay)."""
    import base64

    from custody.trust import Pin, pin_problem

    pin = Pin(seq=5, size=10, root=b"\x01" * 32, signers={"sha256:" + "a" * 64})
    text = "custody/X\n4\n" + base64.b64encode(b"\x02" * 32).decode() + "\n"
    why = pin_problem(pin, {"checkpoint": text, "trust": {"signers": {}}})
    assert why == (
        "its checkpoint (4 events) is older than the one pinned at event 5 (10 events), and"
        " the pinned bundle proves no consistency from 4 events: it cannot be shown to be on"
        " the pinned line (a fork, or a size the source never checkpointed)"
    )
