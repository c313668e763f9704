"""Signing identities through the real CLI: key files, passphrases, refusal of
insecure keys, identities in the ledger, key import, and case discovery."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, Case, Run, new_key, ok_json, one_error_line
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from custody.keys import verify_signature


def raw_public(pub_file: Path) -> bytes:
    key = serialization.load_pem_public_key(pub_file.read_bytes())
    assert isinstance(key, Ed25519PublicKey)
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fp_of(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    p = tmp_path / "auth.log"
    p.write_text("sshd: Accepted password for root\n")
    return p


# -- key files ------------------------------------------------------------------------


def test_key_new_writes_encrypted_pkcs8_and_spki(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "keys" / "dana.pem"
    out.parent.mkdir()  # key new writes into a folder that exists (issue 15)
    info = ok_json(
        run, "key", "new", "--name", "Dana Reyes", "--role", "collector", "--out", out, "--json"
    )
    pub = tmp_path / "keys" / "dana.pub"
    assert info["private_key_file"] == str(out)
    assert info["public_key_file"] == str(pub)
    assert (info["name"], info["role"]) == ("Dana Reyes", "collector")

    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    assert "-----BEGIN ENCRYPTED PRIVATE KEY-----" in text
    assert "-----BEGIN PRIVATE KEY-----" not in text
    assert "Custody-Name: Dana Reyes" in text and "Custody-Role: collector" in text

    assert openssl("pkey", "-pubin", "-in", str(pub), "-noout").returncode == 0
    derived = openssl("pkey", "-in", str(out), "-passin", f"pass:{PASSPHRASE}", "-pubout")
    assert derived.returncode == 0, derived.stderr
    assert derived.stdout == pub.read_text()
    assert openssl("pkey", "-in", str(out), "-passin", "pass:not it", "-noout").returncode != 0

    # the same file loads with pyca/cryptography, and only with the passphrase
    key = serialization.load_pem_private_key(out.read_bytes(), PASSPHRASE.encode())
    assert isinstance(key, Ed25519PrivateKey)
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(out.read_bytes(), None)

    raw = raw_public(pub)
    assert (
        key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        == raw
    )
    assert info["public_key"] == base64.b64encode(raw).decode()
    assert info["fingerprint"] == fp_of(raw)

    # never overwrites a key
    before = out.read_bytes()
    proc = run("key", "new", "--name", "Eve", "--role", "collector", "--out", out)
    assert proc.returncode == 2
    one_error_line(proc)
    assert out.read_bytes() == before


def opened_only(case: Case) -> None:
    """Nothing was recorded since ``custody init``: the log is the case's opening
    event alone, signed by the owner's key."""
    events = ok_json(case, "log", "--json")
    assert [e["type"] for e in events] == ["case.open"]
    assert events[0]["signer"] == fp_of(raw_public(case.key.with_suffix(".pub")))


def test_wrong_passphrase_is_one_clear_line(case: Case, evidence: Path) -> None:
    proc = case("collect", "--reason", "test", evidence, env={"CUSTODY_PASSPHRASE": "wrong horse"})
    assert proc.returncode == 2
    assert "wrong passphrase" in one_error_line(proc)
    pw = case.dir.parent / "pw.txt"
    pw.write_text("also wrong\n")
    proc = case("collect", "--reason", "test", evidence, "--passphrase-file", pw)
    assert proc.returncode == 2
    assert "wrong passphrase" in one_error_line(proc)
    opened_only(case)


def test_group_or_world_readable_key_is_refused(case: Case, evidence: Path) -> None:
    for mode in (0o644, 0o640):
        case.key.chmod(mode)
        proc = case("collect", "--reason", "test", evidence)
        assert proc.returncode == 2, oct(mode)
        one_error_line(proc)
    opened_only(case)
    proc = case("collect", "--reason", "test", evidence, "--insecure-key")
    assert proc.returncode == 0, proc.stderr


def test_unencrypted_key_is_refused(case: Case, evidence: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.pem"
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    assert stat.S_IMODE(plain.stat().st_mode) == 0o600
    proc = case("collect", "--reason", "test", evidence, "--key", plain)
    assert proc.returncode == 2
    one_error_line(proc)
    opened_only(case)
    # accepted with --insecure-key (once the owner has vouched for the key: rules 2)
    plain_pub = tmp_path / "plain.pub"
    plain_pub.write_bytes(
        serialization.load_pem_private_key(pem, None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    proc = case("key", "import", plain_pub, "--name", "Plain Key", "--role", "collector")
    assert proc.returncode == 0, proc.stderr
    proc = case("collect", "--reason", "test", evidence, "--key", plain, "--insecure-key")
    assert proc.returncode == 0, proc.stderr


# -- identities in the ledger --------------------------------------------------------------


def test_owner_identity_is_recorded_when_the_case_is_made(case: Case, evidence: Path) -> None:
    """Rules 2: ``custody init`` signs the case's first event, ``case.open``, with the
    owner's key, and that event registers the key; a collection registers nothing
    more."""
    pub = case.key.with_suffix(".pub")
    raw = raw_public(pub)
    fp = fp_of(raw)

    (ident,) = ok_json(case, "key", "list", "--json")
    assert ident["name"] == "Dana Reyes"
    assert ident["role"] == "collector"
    assert ident["fingerprint"] == fp
    assert base64.b64decode(ident["public_key"]) == raw
    assert ident["public_key_pem"] == pub.read_text()
    assert ident["event_seq"] == 0
    assert (ident["standing"], ident["attested_by"], ident["status"]) == ("owner", fp, "active")

    ok_json(case, "collect", "--reason", "test", evidence, "--json")
    assert ok_json(case, "key", "list", "--json") == [ident]
    events = ok_json(case, "log", "--json")
    first = events[0]
    assert first["type"] == "case.open"
    assert first["seq"] == 0
    assert first["signer"] == fp
    assert (first["signer_name"], first["signer_standing"]) == ("Dana Reyes", "owner")
    body = json.loads(first["body"])
    assert body["type"] == "case.open" and body["signer"] == fp
    owner = body["data"]["owner"]
    assert owner["name"] == "Dana Reyes"
    assert owner["role"] == "collector"
    assert owner["fingerprint"] == fp
    assert base64.b64decode(owner["public_key"]) == raw
    assert (body["data"]["recovery"], body["data"]["rules"]) == (None, 2)
    assert first["hash"] == "sha256:" + hashlib.sha256(first["body"].encode()).hexdigest()
    for ev in events:
        assert ev["signer"] == fp
        sig = base64.b64decode(ev["signature"])
        assert verify_signature(raw, sig, ev["body"].encode("utf-8")), ev["seq"]
    for prev, ev in itertools.pairwise(events):
        assert ev["prev"] == prev["hash"]

    # a second collection does not register the identity again
    ok_json(case, "collect", "--reason", "test", evidence, "--json")
    types = [e["type"] for e in ok_json(case, "log", "--json")]
    assert types.count("case.open") == 1 and types.count("identity") == 0


def test_signer_identity_is_recorded_on_first_signature(
    case: Case, evidence: Path, tmp_path: Path
) -> None:
    """A key the case does not know registers itself, signed by itself, before its
    first signature (here a note, all a key nobody attested may sign), and is shown
    as self-asserted."""
    ok_json(case, "collect", "--reason", "test", evidence, "--json")
    sam = tmp_path / "sam.pem"
    case.run("key", "new", "--name", "Sam Ito", "--role", "examiner", "--out", sam, "--no-default")
    raw = raw_public(sam.with_suffix(".pub"))
    fp = fp_of(raw)
    before = ok_json(case, "log", "--json")
    proc = case("event", "note", "ITEM-1", "--reason", "looked at it", "--key", sam)
    assert proc.returncode == 0, proc.stderr
    ident, note = ok_json(case, "log", "--json")[len(before) :]
    assert (ident["type"], ident["signer"], note["type"], note["signer"]) == (
        "identity",
        fp,
        "note",
        fp,
    )
    body = json.loads(ident["body"])
    assert body["data"]["registration"] == "self"
    assert (body["data"]["name"], body["data"]["fingerprint"]) == ("Sam Ito", fp)
    assert base64.b64decode(body["data"]["public_key"]) == raw
    for ev in (ident, note):
        assert ev["signer_standing"] == "self-asserted"
        assert ev["signer_attested_by"] is None
        assert verify_signature(raw, base64.b64decode(ev["signature"]), ev["body"].encode())
    keys = {k["fingerprint"]: k for k in ok_json(case, "key", "list", "--json")}
    assert (keys[fp]["standing"], keys[fp]["event_seq"]) == ("self-asserted", ident["seq"])
    # a second note does not register it again
    assert case("event", "note", "ITEM-1", "--reason", "again", "--key", sam).returncode == 0
    types = [e["type"] for e in ok_json(case, "log", "--json")]
    assert types.count("identity") == 1


def test_key_import_adds_identity(case: Case, tmp_path: Path) -> None:
    sam = tmp_path / "sam.pem"
    new_key(case.run, sam, "Sam Okafor", "counsel", default=False)
    sam_pub = tmp_path / "sam.pub"
    proc = case("key", "import", sam_pub, "--name", "Sam Okafor", "--role", "counsel")
    assert proc.returncode == 0, proc.stderr

    dana_raw = raw_public(case.key.with_suffix(".pub"))
    sam_raw = raw_public(sam_pub)
    idents = {i["fingerprint"]: i for i in ok_json(case, "key", "list", "--json")}
    assert set(idents) == {fp_of(dana_raw), fp_of(sam_raw)}
    s = idents[fp_of(sam_raw)]
    assert (s["name"], s["role"]) == ("Sam Okafor", "counsel")
    assert base64.b64decode(s["public_key"]) == sam_raw
    assert s["public_key_pem"] == sam_pub.read_text()
    assert (s["standing"], s["attested_by"], s["attested_by_name"]) == (
        "attested",
        fp_of(dana_raw),
        "Dana Reyes",
    )

    events = ok_json(case, "log", "--json")
    assert [e["type"] for e in events] == ["case.open", "identity"]
    imported = json.loads(events[-1]["body"])
    assert imported["data"]["registration"] == "imported"
    assert imported["data"]["fingerprint"] == fp_of(sam_raw)
    assert events[-1]["signer"] == fp_of(dana_raw)  # attested by the importer
    assert verify_signature(
        dana_raw, base64.b64decode(events[-1]["signature"]), events[-1]["body"].encode()
    )

    # importing again adds nothing; a file that is not a public key is bad input
    proc = case("key", "import", sam_pub, "--name", "Sam Okafor", "--role", "counsel")
    assert proc.returncode == 0, proc.stderr
    junk = tmp_path / "junk.pub"
    junk.write_text("not a key\n")
    proc = case("key", "import", junk, "--name", "X", "--role", "y")
    assert proc.returncode == 2
    one_error_line(proc)
    assert ok_json(case, "log", "--json") == events


# -- case discovery --------------------------------------------------------------------------


def case_id_seen(run: Run, *args: Any, cwd: Path, env: dict[str, str] | None = None) -> str:
    report = ok_json(run, "verify", "--quick", "--json", *args, cwd=cwd, env=env)
    return str(report["case"])


def test_case_discovery(case: Case, run: Run, tmp_path: Path) -> None:
    other = tmp_path / "other-case"
    third = tmp_path / "third-case"
    run("init", other, "--case-id", "OTHER-1", "--title", "Other", check=True)
    run("init", third, "--case-id", "THIRD-1", "--title", "Third", check=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    if any((d / "custody.db").exists() for d in outside.resolve().parents):
        pytest.skip("a parent of the temporary directory holds a custody.db")
    deep = case.dir / "notes" / "deeper"
    deep.mkdir(parents=True)

    # nearest parent holding custody.db
    assert case_id_seen(run, cwd=deep) == "2026-017"
    # CUSTODY_CASE beats the working directory, --case beats both
    assert case_id_seen(run, cwd=outside, env={"CUSTODY_CASE": str(other)}) == "OTHER-1"
    assert case_id_seen(run, cwd=deep, env={"CUSTODY_CASE": str(other)}) == "OTHER-1"
    assert (
        case_id_seen(run, "--case", third, cwd=deep, env={"CUSTODY_CASE": str(other)}) == "THIRD-1"
    )

    # outside a case, or pointed at something that is not one: exit 2, one line
    for args, env in (
        ((), None),
        (("--case", outside), None),
        ((), {"CUSTODY_CASE": str(outside)}),
    ):
        proc = run("list", *args, cwd=outside, env=env)
        assert proc.returncode == 2, (args, env, proc.stderr)
        one_error_line(proc)
