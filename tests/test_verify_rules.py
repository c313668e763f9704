"""verify re-derives what the writers record: stored tree nodes, checkpoint sizes
and key names, shared objects and purges (library-level, fast)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.checkpoint import make_checkpoint
from custody.collect import collect
from custody.keys import Identity, Signer
from custody.ledger import Ledger
from custody.verify import verify_ledger
from custody.writers import lifecycle_event


def _case(tmp_path: Path) -> tuple[Ledger, Signer]:
    led = Ledger.create(tmp_path / "case", "R-1", "rules")
    dana = Signer(Ed25519PrivateKey.generate(), "Dana Reyes", "collector")
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text("same bytes\n")
    collect(
        led,
        dana,
        [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")],
        reason="r",
        algorithms=["sha256"],
    )
    return led, dana


def _findings(led: Ledger) -> set[tuple[str, str]]:
    return {(f.kind, f.subject) for f in verify_ledger(led).findings}


def test_one_corrupt_stored_tree_node_is_found(tmp_path: Path) -> None:
    led, _ = _case(tmp_path)
    conn = sqlite3.connect(led.case_dir / "custody.db", isolation_level=None)
    conn.execute("DROP TRIGGER merkle_nodes_no_update")
    conn.execute("UPDATE merkle_nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 3")
    conn.close()
    report = verify_ledger(led)
    assert [(f.kind, f.subject) for f in report.findings] == [("index", "merkle tree")]
    assert "first at level 0 index 3" in report.findings[0].detail


def test_checkpoint_by_a_new_signer_covers_every_earlier_event(tmp_path: Path) -> None:
    led, _ = _case(tmp_path)
    lee = Signer(Ed25519PrivateKey.generate(), "Lee Okafor", "counsel")
    _, ev = make_checkpoint(led, lee)  # Lee's self-registration comes first
    assert ev.data["size"] == ev.seq
    assert _findings(led) == set()


def test_checkpoint_note_uses_the_name_the_ledger_knows(tmp_path: Path) -> None:
    led, dana = _case(tmp_path)
    sam = Signer(Ed25519PrivateKey.generate(), "Sam P. Holt", "examiner")
    led.register_identity(dana, Identity("Samuel Holt", "examiner", sam.identity.public_raw))
    text, _ = make_checkpoint(led, sam)
    assert "\u2014 samuel-holt " in text
    assert _findings(led) == set()


def test_purge_keeps_content_shared_with_an_item_not_purged(tmp_path: Path) -> None:
    led, dana = _case(tmp_path)
    (a, b) = [r for r in led.artifacts() if r["outcome"] == "collected"]
    assert a["sha256"] == b["sha256"]
    lifecycle_event(led, dana, "dispose", [a["id"]], "returned to owner")  # no purge
    lifecycle_event(led, dana, "dispose", [b["id"]], "destroy copy", purge=True)
    obj = led.store_dir / "sha256" / a["sha256"][:2] / a["sha256"]
    assert obj.exists()
    assert _findings(led) == set()
