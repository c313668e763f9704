"""`custody bundle export --tsa URL`: the export's checkpoint carries an RFC 3161
time-stamp (custody/checkpoint.tsr) that `bundle verify --tsa-cert` checks offline,
and `openssl ts -verify` accepts independently."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import tsa_helper
from conftest import Case

local_tsa = tsa_helper.local_tsa
local_tsa_server = tsa_helper.local_tsa_server
local_pki = tsa_helper.local_pki


@pytest.fixture
def stamped(case: Case, local_tsa: tsa_helper.TSA, tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "e.txt").write_text("evidence\n")
    case("collect", "--reason", "test", tmp_path / "e.txt", check=True)
    bag = tmp_path / "to-counsel"
    case("bundle", "export", "--all", "--tsa", local_tsa.url, "--out", bag, check=True)
    ca = tmp_path / "tsa-ca.pem"
    ca.write_bytes(local_tsa.ca_pem)
    return bag, ca


def _verify(case: Case, *args: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    proc = case("bundle", "verify", *args, "--json", "--trust", case.key.with_suffix(".pub"))
    return proc.returncode, json.loads(proc.stdout)


def test_time_stamped_export_verifies_with_the_authority_root(
    case: Case, stamped: tuple[Path, Path]
) -> None:
    bag, ca = stamped
    assert (bag / "custody" / "checkpoint.tsr").is_file()
    meta = json.loads((bag / "custody" / "bundle.json").read_text())
    stamp = meta["checkpoint_timestamp"]
    assert stamp["file"] == "custody/checkpoint.tsr"
    # the same token is in the case ledger's timestamp event
    log = json.loads(case("log", "--json", check=True).stdout)
    ev = next(e for e in log if e["seq"] == stamp["event"])
    data = json.loads(ev["body"])["data"]
    assert ev["type"] == "timestamp" and data["checkpoint"] == meta["checkpoint_event"]
    assert base64.b64decode(data["token"]) == (bag / "custody" / "checkpoint.tsr").read_bytes()

    code, rep = _verify(case, bag, "--tsa-cert", ca)
    assert code == 0, rep["findings"]
    assert rep["timestamp"]["time"].endswith("Z") and rep["timestamp"]["serial"]
    human = case("bundle", "verify", bag, "--tsa-cert", ca, "--trust", case.key.with_suffix(".pub"))
    assert human.returncode == 0
    assert "per the RFC 3161 time-stamp of" in human.stdout


def test_unchecked_without_a_root_is_a_visible_warning(
    case: Case, stamped: tuple[Path, Path]
) -> None:
    bag, _ = stamped
    code, rep = _verify(case, bag)
    assert code == 0 and rep["timestamp"] is None
    assert any("RFC 3161 time-stamp" in w and "not checked" in w for w in rep["warnings"])


def test_token_from_an_untrusted_authority_fails(
    case: Case, stamped: tuple[Path, Path], tmp_path: Path
) -> None:
    bag, _ = stamped
    other = tsa_helper.make_ca(tmp_path / "other")[1]
    code, rep = _verify(case, bag, "--tsa-cert", other)
    assert code == 1
    assert [(f["kind"], f["subject"]) for f in rep["findings"]] == [
        ("timestamp", "custody/checkpoint.tsr")
    ]


def test_token_swapped_for_one_over_other_data_fails(
    case: Case, stamped: tuple[Path, Path], local_tsa: tsa_helper.TSA, tmp_path: Path
) -> None:
    """A genuine token of the same authority, but over other bytes, with the tag
    manifest re-written to match: caught by the imprint, not by the manifest."""
    bag, ca = stamped
    (tmp_path / "f.txt").write_text("other\n")
    case("collect", "--reason", "test", tmp_path / "f.txt", check=True)
    other_bag = tmp_path / "other-bag"
    case("bundle", "export", "ITEM-2", "--tsa", local_tsa.url, "--out", other_bag, check=True)
    tsr = bag / "custody" / "checkpoint.tsr"
    tsr.write_bytes((other_bag / "custody" / "checkpoint.tsr").read_bytes())
    lines = (bag / "tagmanifest-sha256.txt").read_text().splitlines()
    fixed = [
        f"{hashlib.sha256(tsr.read_bytes()).hexdigest()}  custody/checkpoint.tsr"
        if line.endswith(" custody/checkpoint.tsr")
        else line
        for line in lines
    ]
    (bag / "tagmanifest-sha256.txt").write_text("\n".join(fixed) + "\n")
    code, rep = _verify(case, bag, "--tsa-cert", ca)
    assert code == 1
    assert [(f["kind"], f["subject"]) for f in rep["findings"]] == [
        ("timestamp", "custody/checkpoint.tsr")
    ]


def test_removed_token_is_detected(case: Case, stamped: tuple[Path, Path]) -> None:
    bag, ca = stamped
    (bag / "custody" / "checkpoint.tsr").unlink()
    code, rep = _verify(case, bag, "--tsa-cert", ca)
    assert code == 1
    kinds = sorted((f["kind"], f["subject"]) for f in rep["findings"])
    assert kinds == [
        ("tag-missing", "custody/checkpoint.tsr"),
        ("timestamp", "custody/checkpoint.tsr"),
    ]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_openssl_ts_verifies_the_token_over_checkpoint_txt(
    stamped: tuple[Path, Path], local_tsa: tsa_helper.TSA
) -> None:
    bag, ca = stamped
    proc = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-in",
            bag / "custody" / "checkpoint.tsr",
            "-data",
            bag / "custody" / "checkpoint.txt",
            "-CAfile",
            ca,
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Verification: OK" in proc.stdout


@pytest.mark.skipif(shutil.which("bagit.py") is None, reason="needs bagit.py")
def test_bagit_accepts_a_time_stamped_bundle(stamped: tuple[Path, Path]) -> None:
    bag, _ = stamped
    proc = subprocess.run(["bagit.py", "--validate", bag], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
