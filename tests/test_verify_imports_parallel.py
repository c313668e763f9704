"""verify checks the signatures of a case's imported events on worker processes
(issue 14: the merged lab case verified on both cores) and files exactly the
findings of the serial path, each in its event's place: someone with write
access to the lab's database but no key swaps two imported events' signatures,
breaks a third, and rewrites a fourth's body with its hash column fixed up."""

# ruff: noqa: F811 - the fixtures template and w come from test_import_trust
from __future__ import annotations

import base64
import hashlib
import json
import sqlite3

import pytest
from test_import_trust import World, template, w  # noqa: F401 - the shared fixtures
from test_verify_parallel import SpyPool

from custody import eventcheck
from custody.ledger import Ledger
from custody.verify import verify_ledger
from tests.tampering import bypass, q


def _both(w: World, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """(kind, subject, detail) of each finding, serial and on workers (batches of
    2: several, the last one short), checked equal."""
    monkeypatch.setattr(eventcheck, "ProcessPoolExecutor", SpyPool)
    monkeypatch.setattr(eventcheck, "SIG_BATCH", 2)
    with Ledger.open(w.root / "lab", write=False) as led:
        SpyPool.batches = 0
        serial = verify_ledger(led, quick=True, parallel=False).as_json()
        assert SpyPool.batches == 0
        parallel = verify_ledger(led, quick=True, parallel=True).as_json()
        n_lab = led.event_count()
    n_imported = len(_rows(w))
    # the lab's own events in batches of 2, then the imported ones: more batches
    assert SpyPool.batches >= (n_lab + 1) // 2 + (n_imported + 1) // 2
    assert parallel == serial
    return [(f["kind"], f["subject"], f["detail"]) for f in serial["findings"]]


def _rows(w: World) -> list[tuple[int, str, str]]:
    with sqlite3.connect(w.root / "lab" / "custody.db") as conn:
        return conn.execute(
            "SELECT seq, body, signature FROM imported_events ORDER BY seq"
        ).fetchall()


@pytest.fixture
def lab(w: World) -> World:
    w.lab("bundle", "import", w.root / "b1", "--trust", w.pub("dana"), check=True)
    return w


def test_a_clean_import_verifies_on_the_workers(
    lab: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _both(lab, monkeypatch) == []
    assert len(_rows(lab)) >= 6  # enough events for three batches of 2


def test_tampered_imported_signatures_are_filed_in_place(
    lab: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _rows(lab)
    (s1, _, g1), (s2, _, g2), (s3, _, _), (s4, b4, _) = rows[1], rows[2], rows[3], rows[-1]
    broken = base64.b64encode(bytes(64)).decode()
    edited = json.loads(b4)
    edited["time"] = "2001-01-01T00:00:00Z"
    body = json.dumps(edited, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = "sha256:" + hashlib.sha256(body.encode()).hexdigest()
    bypass(
        lab.root / "lab" / "custody.db",
        "imported_events",
        f"UPDATE imported_events SET signature = {q(g2)} WHERE seq = {s1};"
        f"UPDATE imported_events SET signature = {q(g1)} WHERE seq = {s2};"
        f"UPDATE imported_events SET signature = {q(broken)} WHERE seq = {s3};"
        f"UPDATE imported_events SET body = {q(body)}, hash = {q(digest)} WHERE seq = {s4};",
    )
    found = _both(lab, monkeypatch)
    fp = lab.fp("dana")
    bad = f"signature: Ed25519 signature does not verify for signer {fp}"
    signature_findings = [(s, d) for k, s, d in found if d == bad]
    assert [s.split(" of ")[0] for s, _ in signature_findings] == [
        f"imported event {s}" for s in (s1, s2, s3, s4)
    ]
    assert all(k == "import" for k, _, _ in found)
    # the edited body also no longer proves into the bundle's checkpoint: that
    # finding follows its signature finding, as the serial check files them
    mine = [d for _, s, d in found if s.startswith(f"imported event {s4} of ")]
    assert mine[0] == bad and len(mine) >= 2
