"""A large batch of collect events is signed on a thread of its own while the
append indexes it (issue 16 §4): the record is exactly what inline signing gives,
no row is written unsigned, and a signing failure commits nothing."""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import custody.ledger
from custody.collect import Collector
from custody.keys import Signer, verify_signature
from custody.ledger import PARALLEL_SIGN_MIN, Event, Ledger, _BatchSigner

FILES = PARALLEL_SIGN_MIN + 6  # one batch past the threshold


def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(FILES):
        (src / f"f{i:03}").write_bytes(f"evidence {i}\n".encode() * 20)
    return src


def collect(led: Ledger, signer: Signer, src: Path) -> None:
    Collector(
        led, signer, reason="r", algorithms=["sha256"], selftest=False, describe=False
    ).collect([str(src)])


def signer_named(name: str, seed: bytes) -> Signer:
    return Signer(Ed25519PrivateKey.from_private_bytes(seed), name, "collector")


@pytest.fixture
def threaded(monkeypatch: pytest.MonkeyPatch) -> list[_BatchSigner]:
    """Every _BatchSigner made (the threaded path taken), in order."""
    made: list[_BatchSigner] = []
    real_init = _BatchSigner.__init__

    def init(self: _BatchSigner, signer: Signer) -> None:
        real_init(self, signer)
        made.append(self)

    monkeypatch.setattr(_BatchSigner, "__init__", init)
    monkeypatch.setenv("CUSTODY_READERS", "0")
    return made


def test_a_batch_signed_on_a_thread_is_the_record_inline_signing_makes(
    tmp_path: Path, threaded: list[_BatchSigner], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ed25519 is deterministic: the same bodies signed on the thread and inline
    give the same signatures; each verifies against the signer's key over its body,
    and the stored row holds the event's own signature."""
    src = source(tmp_path)
    signer = signer_named("S", b"\x01" * 32)
    led = Ledger.create(tmp_path / "case", "S-1", "store")
    collect(led, signer, src)
    assert len(threaded) == 1  # the run's items: one batch, on the thread
    events = [e for e in led.events() if e.type == "collect"]
    assert len(events) == FILES + 1  # and the folder
    for e in events:
        sig = base64.b64decode(e.signature)
        assert verify_signature(signer.identity.public_raw, sig, e.body.encode())
        assert e.signature == base64.b64encode(signer.sign(e.body.encode())).decode()
    led.close()


def test_below_the_threshold_a_batch_is_signed_inline(
    tmp_path: Path, threaded: list[_BatchSigner], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(PARALLEL_SIGN_MIN - 2):  # with the folder: one under
        (src / f"f{i}").write_bytes(os.urandom(10))
    led = Ledger.create(tmp_path / "case", "S-1", "store")
    collect(led, signer_named("S", b"\x02" * 32), src)
    assert threaded == []
    assert sum(e.type == "collect" for e in led.events()) == PARALLEL_SIGN_MIN - 1
    led.close()


def test_a_signing_failure_commits_none_of_the_batch(
    tmp_path: Path, threaded: list[_BatchSigner], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key fails on one body of the batch (a hardware token unplugged): the
    append raises, none of the batch's events is committed, and the thread ends."""
    src = source(tmp_path)
    led = Ledger.create(tmp_path / "case", "S-1", "store")
    good = signer_named("S", b"\x03" * 32)
    led.ensure_registered(good)
    before = led.event_count()

    class Flaky(Signer):
        n = 0

        def sign(self, message: bytes) -> bytes:
            self.n += 1
            if self.n == PARALLEL_SIGN_MIN:
                raise OSError("token removed")
            return super().sign(message)

    flaky = Flaky(Ed25519PrivateKey.from_private_bytes(b"\x03" * 32), "S", "collector")
    with pytest.raises(OSError, match="token removed"):
        collect(led, flaky, src)
    assert threaded and all(not b._thread.is_alive() for b in threaded)
    types = [e.type for e in led.events()][before:]
    assert types == ["collection.start"]  # the items' batch: rolled back whole
    assert led.conn.execute("SELECT count(*) FROM artifacts").fetchone() == (0,)
    led.close()


def test_a_refused_event_stops_the_signing_thread(
    tmp_path: Path, threaded: list[_BatchSigner], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replay refuses an event in the middle of a batch: the append rolls back
    and its signing thread does not outlive it."""
    led = Ledger.create(tmp_path / "case", "S-1", "store")
    signer = signer_named("S", b"\x04" * 32)
    led.ensure_registered(signer)
    real_admit = led.rules().admit

    def admit(ev: Event) -> None:
        if ev.seq == 40:
            raise RuntimeError("refused")
        real_admit(ev)

    monkeypatch.setattr(led.rules(), "admit", admit)
    drafts = [
        custody.ledger.EventDraft(type="collect", data={"n": i}, new_item=True)
        for i in range(PARALLEL_SIGN_MIN)
    ]
    n = led.event_count()
    with pytest.raises(RuntimeError, match="refused"):
        led.append(signer, drafts)
    assert len(threaded) == 1 and not threaded[0]._thread.is_alive()
    assert led.event_count() == n
    assert not [t for t in threading.enumerate() if t.name == "custody-sign"]
    led.close()


def test_no_event_row_is_written_without_its_signature(
    tmp_path: Path, threaded: list[_BatchSigner], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard: a signing thread that loses a signature (a bug) makes the append
    fail before any row is written, never an event stored with an empty one."""
    src = source(tmp_path)
    led = Ledger.create(tmp_path / "case", "S-1", "store")
    signer = signer_named("S", b"\x05" * 32)
    led.ensure_registered(signer)
    n = led.event_count()

    def lossy(self: _BatchSigner) -> None:
        while (body := self._todo.get()) is not None:
            self._signatures.append(base64.b64encode(self._signer.sign(body)).decode())
        self._signatures[-1] = ""  # the last one lost

    monkeypatch.setattr(_BatchSigner, "_run", lossy)
    with pytest.raises(AssertionError, match="has no signature"):
        collect(led, signer, src)
    rows: Any = led.conn.execute("SELECT count(*) FROM events WHERE signature = ''").fetchone()
    assert rows == (0,)
    assert [e.type for e in led.events()][n:] == ["collection.start"]
    led.close()
