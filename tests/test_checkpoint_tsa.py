"""`custody checkpoint --tsa URL` against a local RFC 3161 authority (openssl ts
behind an HTTP server on 127.0.0.1), and `verify --tsa-cert`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tsa_helper
from conftest import Case
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody import ledger as ledger_mod
from custody.canonical import rfc3339_ns
from custody.checkpoint import make_checkpoint, timestamp_checkpoint
from custody.keys import Signer
from custody.ledger import Ledger
from custody.verify import verify_ledger

local_tsa = tsa_helper.local_tsa
local_tsa_server = tsa_helper.local_tsa_server
local_pki = tsa_helper.local_pki


def _report(proc: object) -> dict:  # type: ignore[type-arg]
    return json.loads(proc.stdout)  # type: ignore[attr-defined]


def test_checkpoint_with_trusted_time(
    case: Case, local_tsa: tsa_helper.TSA, tmp_path: Path
) -> None:
    (tmp_path / "e.txt").write_text("evidence\n")
    case("collect", "--reason", "test", tmp_path / "e.txt", check=True)
    proc = case("checkpoint", "--tsa", local_tsa.url, "--json", check=True)
    out = json.loads(proc.stdout)
    assert out["timestamp_event"] == out["event"] + 1
    ca = tmp_path / "tsa-ca.pem"
    ca.write_bytes(local_tsa.ca_pem)

    ok = case("verify", "--json", "--tsa-cert", ca)
    assert ok.returncode == 0, ok.stdout
    assert _report(ok)["timestamps_checked"] == 1

    # without a root the token is not checked, and the report says so
    unchecked = _report(case("verify", "--json"))
    assert unchecked["ok"] is True and unchecked["timestamps_checked"] == 0
    assert any("not checked" in n for n in unchecked["notes"])

    # a root the token does not chain to: an integrity finding
    other = tsa_helper.make_ca(tmp_path / "other")[1]
    bad = case("verify", "--json", "--tsa-cert", other)
    assert bad.returncode == 1
    kinds = {(f["kind"], f["subject"]) for f in _report(bad)["findings"]}
    assert kinds == {("timestamp", f"event {out['timestamp_event']}")}


def test_tsa_unreachable_keeps_the_checkpoint(case: Case) -> None:
    before = len(json.loads(case("log", "--json", check=True).stdout))
    proc = case("checkpoint", "--tsa", "http://127.0.0.1:9/tsr")
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "custody: error:" in proc.stderr
    events = json.loads(case("log", "--json", check=True).stdout)
    assert events[-1]["type"] == "checkpoint"  # recorded before the authority was asked
    assert "timestamp" not in {e["type"] for e in events[before:]}


def test_clock_set_forward_is_flagged(
    tmp_path: Path, local_tsa: tsa_helper.TSA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint that states a time later than its trusted time-stamp."""
    led = Ledger.create(tmp_path / "case", "T-3161", "clock")
    signer = Signer(Ed25519PrivateKey.generate(), "Dana Reyes", "collector")
    real = ledger_mod.now_rfc3339
    import time

    monkeypatch.setattr(
        ledger_mod, "now_rfc3339", lambda: rfc3339_ns(time.time_ns() + 3600 * 10**9)
    )
    text, cp = make_checkpoint(led, signer)
    monkeypatch.setattr(ledger_mod, "now_rfc3339", real)
    timestamp_checkpoint(led, signer, cp, text, local_tsa.url)
    report = verify_ledger(led, tsa_roots=[local_tsa.ca_pem])
    assert [(f.kind, f.subject) for f in report.findings] == [("timestamp", f"event {cp.seq}")]
    assert "the clock was wrong" in report.findings[0].detail
