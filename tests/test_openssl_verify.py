"""Every event can be re-verified with stock tools only: ``sha256sum`` for the hash
and ``openssl pkeyutl`` for the Ed25519 signature, from ``custody log --json``.

This is the promise made to counsel: no custody code is needed to check the log.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import Case, sha256sum, template_case

pytestmark = pytest.mark.skipif(
    not (shutil.which("openssl") and shutil.which("sha256sum") and shutil.which("sqlite3")),
    reason="needs the openssl, sha256sum and sqlite3 command-line tools",
)

VERIFIED = "Signature Verified Successfully"


def openssl_verify(pub: Path, body: Path, sig: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            str(pub),
            "-rawin",
            "-in",
            str(body),
            "-sigfile",
            str(sig),
        ],
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Case, list[dict[str, Any]]]:
    """A case with two collection runs, one over a directory holding non-ASCII names
    (so bodies are not pure ASCII), and its log.  Built once: nothing here writes."""
    root = tmp_path_factory.mktemp("openssl-case")
    case = template_case(root)
    ev = root / "evidence"
    (ev / "home" / "zoë").mkdir(parents=True)
    (ev / "home" / "zoë" / "notes – draft.txt").write_text(
        "wire €12,400 to acct 7731\n", encoding="utf-8"
    )
    (ev / "home" / "auth.log").write_bytes(b"sshd[811]: Accepted password for root\n" * 40)
    (ev / "payroll.csv").write_bytes(b"id,name,iban\n1,A,DE00\n")
    (ev / "empty").write_bytes(b"")
    case("collect", "--reason", "suspected credential theft", ev / "home", check=True)
    case(
        "collect",
        "--reason",
        "second pass",
        ev / "payroll.csv",
        ev / "empty",
        "--hash",
        "sha256,sha512",
        check=True,
    )
    log = json.loads(case("log", "--json", check=True).stdout)
    assert any(not e["body"].isascii() for e in log)
    return case, log


@pytest.fixture
def signed_case(logged: tuple[Case, list[dict[str, Any]]]) -> Case:
    return logged[0]


@pytest.fixture
def events(logged: tuple[Case, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return logged[1]


def test_every_event_verifies_with_openssl(
    signed_case: Case, events: list[dict[str, Any]], tmp_path: Path
) -> None:
    work = tmp_path / "openssl"
    work.mkdir()
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert len(events) >= 10
    published_pub = signed_case.key.with_suffix(".pub").read_text(encoding="ascii")
    for e in events:
        body = work / f"body-{e['seq']}.bin"
        sig = work / f"sig-{e['seq']}.bin"
        pub = work / f"pub-{e['seq']}.pem"
        body.write_bytes(e["body"].encode("utf-8"))  # exactly the signed bytes, no newline
        sig.write_bytes(base64.b64decode(e["signature"], validate=True))
        pub.write_text(e["signer_public_key_pem"], encoding="ascii")

        assert e["hash"] == "sha256:" + sha256sum(body), e["seq"]
        assert len(sig.read_bytes()) == 64
        # The key in the log is the one `custody key new` published.
        assert e["signer_public_key_pem"] == published_pub

        proc = openssl_verify(pub, body, sig)
        assert proc.returncode == 0, (e["seq"], proc.stdout, proc.stderr)
        assert VERIFIED in proc.stdout

        # The body really says what the row says.
        parsed = json.loads(e["body"])
        assert (parsed["seq"], parsed["prev"], parsed["type"], parsed["signer"]) == (
            e["seq"],
            e["prev"],
            e["type"],
            e["signer"],
        )


def test_one_changed_byte_fails_openssl(events: list[dict[str, Any]], tmp_path: Path) -> None:
    work = tmp_path / "openssl"
    work.mkdir()
    for e in events:
        data = bytearray(e["body"].encode("utf-8"))
        # Change one byte inside the signed data (the middle of the body).
        data[len(data) // 2] ^= 0x01
        body = work / "tampered.bin"
        sig = work / "sig.bin"
        pub = work / "pub.pem"
        body.write_bytes(bytes(data))
        sig.write_bytes(base64.b64decode(e["signature"]))
        pub.write_text(e["signer_public_key_pem"], encoding="ascii")
        assert "sha256:" + sha256sum(body) != e["hash"]
        proc = openssl_verify(pub, body, sig)
        assert proc.returncode != 0, e["seq"]
        assert VERIFIED not in proc.stdout
        assert "Signature Verification Failure" in proc.stdout + proc.stderr

        # ...and the untouched bytes still verify (the failure is the change).
        body.write_bytes(e["body"].encode("utf-8"))
        assert openssl_verify(pub, body, sig).returncode == 0

    # A signature from one event does not verify another's body.
    a, b = events[1], events[2]
    body.write_bytes(a["body"].encode("utf-8"))
    sig.write_bytes(base64.b64decode(b["signature"]))
    assert openssl_verify(pub, body, sig).returncode != 0


def test_chain_links(signed_case: Case, events: list[dict[str, Any]], tmp_path: Path) -> None:
    for before, after in itertools.pairwise(events):
        assert after["prev"] == before["hash"], after["seq"]
    assert len({e["hash"] for e in events}) == len(events)

    # The first event links to the case header, whose hash sha256sum can recompute
    # from the header bytes kept in the ledger.
    db = signed_case.dir / "custody.db"
    out = subprocess.run(
        ["sqlite3", str(db), "SELECT header FROM case_info;"],
        capture_output=True,
        text=True,
        check=True,
    )
    header = out.stdout.removesuffix("\n")
    header_file = tmp_path / "header.json"
    header_file.write_bytes(header.encode("utf-8"))
    assert json.loads(header)["case_id"] == "2026-017"
    assert events[0]["prev"] == "sha256:" + sha256sum(header_file)
    stored = subprocess.run(
        ["sqlite3", str(db), "SELECT hash FROM case_info;"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert events[0]["prev"] == stored

    # And the verify report's head is the last event's hash.
    report = json.loads(signed_case("verify", "--json").stdout)
    assert report["ok"] is True
    assert report["head"] == events[-1]["hash"]
