"""The writers and ``verify`` agree on every event, whatever the sequence (issue 12).

A hypothesis state machine drives random sequences of custody acts under rules 2
(docs/custody-model.md, "Who may act"; docs/ledger-format.md §5.4-§5.5, §7.5) by
several keys: the owner and its recovery key, keys it imported (a delegate among
them, sometimes), keys that only registered themselves, rotated and revoked keys,
and fresh outsiders.
The acts: collect one small file; transfer random items to a random key named by
name, fingerprint or prefix; receive a random transfer; seal/access/note/dispose/
release; rotate a key (to a fresh key, sometimes to one the case knows); revoke a
key; import (attest) a key under a random name, names colliding after NFKC, case
and space folding included, delegate or not; reassign; an outsider's note.

After every act:

* accepted (the writer returned): ``verify --quick`` reports nothing at all;
* refused with :class:`CustodyRuleError`: the ledger is unchanged (event count and
  head), and the same event forced past the writers' gate into a copy of the case
  makes ``verify`` report exactly the refusal's finding kinds, all of that event;
* refused because the signing key is retired (:class:`KeyRevokedError`, which
  carries no findings): unchanged, and the forced event is flagged by ``verify``
  (``revoked-key``, or ``authority`` for a key nobody attested), and only it;
* any other :class:`UsageError` (no such item or transfer, no such identity, an
  empty reason): unchanged.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Collection
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from custody.collect import RUN_START_EVENT, collect
from custody.errors import CustodyRuleError, KeyRevokedError, UsageError
from custody.findings import Finding
from custody.keys import Identity, Signer
from custody.ledger import (
    EventDraft,
    Ledger,
    identity_draft,
)
from custody.lifecycle import Replay, parse_transfer_id, replay_ledger
from custody.verify import verify_ledger
from custody.writers import (
    lifecycle_draft,
    lifecycle_event,
    reassign,
    reassign_draft,
    receive,
    receive_draft,
    revoke_draft,
    revoke_key,
    rotate_key,
    rotation_draft,
    transfer,
    transfer_draft,
)

pytestmark = pytest.mark.slow

CASE_ID = "AUTH-12"
#: names people give keys; several collide once normalised (NFKC, case folding,
#: spaces): "Lee Okafor", "lee  OKAFOR", its fullwidth letters, a no-break space;
#: "Ale\u0301x" (combining accent) and "Al\u00e9x"; "Alex" spelt with a Cyrillic
#: capital A collides with nothing (look-alikes survive: the fingerprint counts)
NAMES = (
    "Dana Reyes",
    "dana reyes",
    "Lee Okafor",
    "lee  OKAFOR",
    "\uff2c\uff45\uff45 Okafor",
    "Lee\u00a0Okafor",
    "Sam Ng",
    " SAM NG ",
    "Alex",
    "\u0410lex",
    "Ale\u0301x",
    "Al\u00e9x",
)
ROLES = ("examiner", "counsel", "collector")
REASONS = ("hand-over", "lost laptop", "bag 0042")
ACTIONS = ("seal", "access", "note", "dispose", "release")
NO_ITEM = "ITEM-99"
NO_TRANSFER = "TRANSFER-999"
FRESH = "<fresh>"

SETTINGS = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    # no "explain" phase: tracing every line of a failing sequence again costs minutes
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _memory_dir() -> str | None:
    """Where each example's case is made: in memory (/dev/shm) where there is one,
    since the ledger syncs every commit to disk (synchronous=FULL): the machine
    runs two to three times faster there."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def _signer(name: str, role: str = "examiner") -> Signer:
    return Signer(Ed25519PrivateKey.generate(), name, role)


# -- the drafts each writer would build (one helper per act) ---------------------------


def collect_draft(path: Path) -> EventDraft:
    """The first event a collection writes: ``collection.start`` (no self-test is
    run here, and there are no orphans to clean up)."""
    raw = os.fsencode(os.path.abspath(path))
    cwd = os.getcwdb()
    return EventDraft(
        RUN_START_EVENT,
        {
            "run": "00000000-0000-4000-8000-000000000000",
            "reason": "collected",
            "paths": [{"hex": raw.hex(), "display": os.fsdecode(raw)}],
            "algorithms": ["sha256"],
            "cwd": {"hex": cwd.hex(), "display": os.fsdecode(cwd)},
            "host": "host",
            "os": "os",
            "tool": "custody",
        },
    )


def rotate_draft(r: Replay, old: Signer, new: Signer) -> EventDraft:
    name, role = r.names.get(old.fingerprint, (old.identity.name, old.identity.role))
    return rotation_draft(CASE_ID, old.fingerprint, name, role, new)


def import_draft(signer: Signer, other: Identity, delegate: bool) -> EventDraft:
    if other.public_raw == signer.identity.public_raw:  # one's own key: a self-registration
        return identity_draft(signer.identity)
    return identity_draft(other, attested=True, delegate=delegate)


# -- forcing an event past the writers' gate -------------------------------------------


def _insert(led: Ledger, signer: Signer, draft: EventDraft) -> int:
    """Append a correctly chained, signed and indexed event, checking no rule."""
    led._begin()
    seq, prev = led._tail()
    item = draft.data.get("item") if isinstance(draft.data.get("item"), str) else None
    ev = led._insert(signer, seq + 1, prev, draft, item)
    led._index(ev, draft)
    led.conn.execute("COMMIT")
    return ev.seq


def force_in_copy(
    case_dir: Path, copy: Path, signer: Signer, draft: EventDraft
) -> tuple[int, list[Finding]]:
    """Copy the case, force ``draft`` signed by ``signer`` into the copy (registering
    the signer's own key first when the copy does not know it, as Ledger.append
    would) and return the forced event's seq and what ``verify`` finds."""
    # the -shm index is rebuilt from the write-ahead log when the copy is opened
    shutil.copytree(case_dir, copy, ignore=shutil.ignore_patterns("*-shm"))
    try:
        with Ledger.open(copy) as led:
            if signer.fingerprint not in replay_ledger(led).keys:
                _insert(led, signer, identity_draft(signer.identity))
            seq = _insert(led, signer, draft)
            return seq, list(verify_ledger(led, quick=True).findings)
    finally:
        shutil.rmtree(copy, ignore_errors=True)


# -- the machine ---------------------------------------------------------------------


class AuthorityMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="custody-authority-", dir=_memory_dir()))
        (self.root / "src").mkdir()
        self.owner = _signer("Dana Reyes", "collector")
        self.recovery = _signer("Dana Reyes (recovery)", "recovery")
        self.ledger = Ledger.create(
            self.root / "case",
            CASE_ID,
            "authority",
            owner=self.owner,
            recovery=self.recovery.identity,
        )
        self.pool: dict[str, Signer] = {"owner": self.owner, "recovery": self.recovery}
        self.files = 0
        self.copies = 0
        self.transfers = 0  # transfers accepted
        self.outcomes: Counter[str] = Counter()

    def teardown(self) -> None:
        self.ledger.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- drawing -----------------------------------------------------------------

    def _add(self, signer: Signer, label: str | None = None) -> str:
        label = label or f"k{len(self.pool)}"
        self.pool[label] = signer
        return label

    def _key(
        self,
        data: st.DataObject,
        what: str,
        *,
        fresh: bool = True,
        likely: Collection[str] = (),
    ) -> tuple[str, Signer]:
        """A key of the pool, or a fresh one nobody has seen (left out of the pool
        unless the act is accepted).  ``likely``: fingerprints the act usually
        wants (the holder, the addressee, the owner), one of them drawn half of the
        time."""
        wanted = [k for k, s in self.pool.items() if s.fingerprint in likely]
        likely_one = bool(wanted) and data.draw(st.booleans(), label=f"{what} is a likely key")
        if likely_one:
            label = data.draw(st.sampled_from(wanted), label=what)
        else:
            label = data.draw(
                st.sampled_from([*self.pool, *([FRESH] if fresh else [])]), label=what
            )
        if label != FRESH:
            return label, self.pool[label]
        name = data.draw(st.sampled_from(NAMES), label=f"{what} name")
        return FRESH, _signer(name, data.draw(st.sampled_from(ROLES), label=f"{what} role"))

    def _address(self, data: st.DataObject, target: Signer, what: str) -> str:
        """How a user names ``target``: full fingerprint, a 16-digit prefix, its own
        name, or one of the names in play."""
        form = data.draw(st.sampled_from(("fingerprint", "prefix", "name", "a name")), label=what)
        if form == "fingerprint":
            return target.fingerprint
        if form == "prefix":
            return target.fingerprint.removeprefix("sha256:")[:16]
        if form == "name":
            return target.identity.name
        return data.draw(st.sampled_from(NAMES), label=f"{what} name")

    def _holder(self, items: list[str]) -> list[str]:
        """The key now holding the first of ``items``."""
        r = self._replay()
        item = r.items.get(items[0])
        return [r.current(item.custodian)] if item is not None else []

    def _receivers(self, items: list[str]) -> list[str]:
        """Attested, active keys other than the holder of the first of ``items``."""
        r, holder = self._replay(), self._holder(items)
        return [
            fp
            for fp in (s.fingerprint for s in self.pool.values())
            if r.attested(fp) and r.active(fp) and fp not in holder
        ]

    def _owner(self) -> list[str]:
        owner = self._replay().owner
        return [owner] if owner else []

    def _pick_items(self, data: st.DataObject, likely: list[str] | None = None) -> list[str]:
        """One or two items of the case (half of the time of ``likely``, if any);
        now and then one that does not exist."""
        known = [a["id"] for a in self.ledger.artifacts()]
        if likely and data.draw(st.booleans(), label="likely items"):
            known = likely
        items = data.draw(st.lists(st.sampled_from(known), min_size=1, max_size=2), label="items")
        if data.draw(st.integers(0, 9), label="and a missing item") == 9:
            items.append(NO_ITEM)
        return items

    def _custodians(self) -> list[str]:
        """Keys other than the owner holding items, or with items on their way to
        them (revoked, they leave items for the owner to reassign)."""
        r = self._replay()
        held = [r.current(i.custodian) for i in r.items.values()]
        held += [r.current(t.receiver) for t in r.transfers.values() if t.receipt is None]
        return [fp for fp in held if fp != r.owner]

    def _lost(self) -> list[str]:
        """Items held by, or in transit to, a revoked key (what reassign is for)."""
        r = self._replay()
        out = []
        for item, it in r.items.items():
            to = r.transfers[it.pending].receiver if it.pending in r.transfers else None
            if r.current(it.custodian) in r.revoked or (to and r.current(to) in r.revoked):
                out.append(item)
        return out

    def _reason(self, data: st.DataObject) -> str:
        """A reason; now and then an empty one (refused where a reason is required)."""
        if data.draw(st.integers(0, 9), label="no reason") == 9:
            return ""
        return data.draw(st.sampled_from(REASONS), label="reason")

    def _pick_transfer(self, data: st.DataObject) -> str:
        """A transfer of the case, the latest first; now and then one that does not
        exist."""
        tids = [f"TRANSFER-{s}" for s in reversed(self._replay().transfers)]
        if not tids or data.draw(st.integers(0, 9), label="a missing transfer") == 9:
            return NO_TRANSFER
        return data.draw(st.sampled_from(tids), label="transfer")

    def _replay(self) -> Replay:
        return replay_ledger(self.ledger)

    # -- the check after every act ----------------------------------------------------

    def _snapshot(self) -> tuple[int, str]:
        return self.ledger.event_count(), self.ledger._tail()[1]

    def _events(self) -> str:
        return ", ".join(f"{e.seq}:{e.type}" for e in self.ledger.events())

    def _act(
        self,
        what: str,
        signer: Signer,
        write: Callable[[], object],
        draft: Callable[[], EventDraft],
    ) -> bool:
        """Run the writer and check that it and ``verify`` agree; True if accepted."""
        before = self._snapshot()
        try:
            write()
        except KeyRevokedError as e:
            assert self._snapshot() == before, f"{what}: refused ({e}) yet the ledger changed"
            try:
                d = draft()
            except UsageError:
                self.outcomes[f"{what}: retired key, bad input"] += 1
                return False  # the writer never got as far as checking the input
            seq, found = self._force(signer, d)
            # a retired key's act is flagged as such, exactly as the refusal said
            kinds = {str(f.kind) for f in found}
            assert kinds == {str(f.kind) for f in e.findings} == {"revoked-key"} and all(
                f.seq == seq for f in found
            ), (
                f"{what}: the writer refused a retired key ({e}); forced as event {seq},"
                f" verify reports {[(str(f.kind), f.seq, f.detail) for f in found]}"
            )
            self.outcomes[f"{what}: retired key {sorted(kinds)}"] += 1
            return False
        except CustodyRuleError as e:
            assert self._snapshot() == before, f"{what}: refused ({e}) yet the ledger changed"
            refused = {str(f.kind) for f in e.findings}
            assert refused, f"{what}: refused without a finding: {e}"
            seq, found = self._force(signer, draft())
            assert {str(f.kind) for f in found} == refused and all(f.seq == seq for f in found), (
                f"{what}: the writer refused with {sorted(refused)} ({e}); forced as event"
                f" {seq}, verify reports {[(str(f.kind), f.seq, f.detail) for f in found]}"
                f"\nledger: {self._events()}"
            )
            self.outcomes[f"{what}: refused {sorted(refused)}"] += 1
            return False
        except UsageError as e:
            assert self._snapshot() == before, f"{what}: bad input ({e}) yet the ledger changed"
            self.outcomes[f"{what}: usage"] += 1
            return False
        report = verify_ledger(self.ledger, quick=True)
        assert not report.findings, (
            f"{what}: the writer accepted it, verify reports"
            f" {[(str(f.kind), f.seq, f.detail) for f in report.findings]}\nledger: {self._events()}"
        )
        self.outcomes[f"{what}: accepted"] += 1
        return True

    def _force(self, signer: Signer, draft: EventDraft) -> tuple[int, list[Finding]]:
        self.copies += 1
        return force_in_copy(self.ledger.case_dir, self.root / f"copy-{self.copies}", signer, draft)

    # -- the acts -----------------------------------------------------------------------

    def _collect(self, signer: Signer) -> bool:
        self.files += 1
        path = self.root / "src" / f"file-{self.files}.txt"
        path.write_text(f"evidence file {self.files}\n")
        return self._act(
            "collect",
            signer,
            lambda: collect(
                self.ledger,
                signer,
                [str(path)],
                reason="collected",
                algorithms=["sha256"],
                selftest=False,
            ),
            lambda: collect_draft(path),
        )

    def _import(self, signer: Signer, other: Identity, delegate: bool) -> bool:
        return self._act(
            "import",
            signer,
            lambda: self.ledger.register_identity(signer, other, delegate=delegate),
            lambda: import_draft(signer, other, delegate),
        )

    @initialize(delegate=st.booleans())
    def setup(self, delegate: bool) -> None:
        """The owner collected a file and imported Lee (counsel) and Sam (a delegate,
        or not); Mallory's key is at hand but unknown to the case."""
        assert self._collect(self.owner)
        lee, sam = _signer("Lee Okafor", "counsel"), _signer("Sam Ng", "examiner")
        assert self._import(self.owner, lee.identity, False)
        assert self._import(self.owner, sam.identity, delegate)
        self._add(lee, "lee")
        self._add(sam, "sam")
        self._add(_signer("Mallory", "examiner"), "mallory")

    @rule(data=st.data())
    def collect_one(self, data: st.DataObject) -> None:
        label, signer = self._key(data, "collector", likely=self._owner())
        if self._collect(signer) and label == FRESH:
            self._add(signer)

    @rule(data=st.data())
    def hand_over(self, data: st.DataObject) -> None:
        items = self._pick_items(data)
        label, signer = self._key(data, "releaser", likely=self._holder(items))
        _, target = self._key(data, "receiver", fresh=False, likely=self._receivers(items))
        to = self._address(data, target, "to")
        reason = self._reason(data)
        if self._act(
            "transfer",
            signer,
            lambda: transfer(self.ledger, signer, items, to, reason),
            lambda: transfer_draft(self._replay(), items, to, reason),
        ):
            self.transfers += 1
            if label == FRESH:
                self._add(signer)

    @precondition(lambda self: self.transfers > 0)
    @rule(data=st.data())
    def take_receipt(self, data: st.DataObject) -> None:
        tid = self._pick_transfer(data)
        r = self._replay()
        t = r.transfers.get(parse_transfer_id(tid))
        addressee = [r.current(t.receiver)] if t is not None else []
        label, signer = self._key(data, "receiver", likely=addressee)
        if (
            self._act(
                "receive",
                signer,
                lambda: receive(self.ledger, signer, tid),
                lambda: receive_draft(self._replay(), tid),
            )
            and label == FRESH
        ):
            self._add(signer)

    @rule(data=st.data(), action=st.sampled_from(ACTIONS))
    def act_on_items(self, data: st.DataObject, action: str) -> None:
        items = self._pick_items(data)
        label, signer = self._key(data, "signer", likely=self._holder(items))
        reason = self._reason(data)
        if (
            self._act(
                action,
                signer,
                lambda: lifecycle_event(self.ledger, signer, action, items, reason),
                lambda: lifecycle_draft(self._replay(), action, items, reason),
            )
            and label == FRESH
        ):
            self._add(signer)

    @rule(data=st.data())
    def outsider_note(self, data: st.DataObject) -> None:
        """A key nobody vouched for registers itself by adding a note."""
        name = data.draw(st.sampled_from(NAMES), label="outsider name")
        signer = _signer(name, "examiner")
        items = self._pick_items(data)
        if self._act(
            "outsider note",
            signer,
            lambda: lifecycle_event(self.ledger, signer, "note", items, "seen it"),
            lambda: lifecycle_draft(self._replay(), "note", items, "seen it"),
        ):
            self._add(signer)

    @rule(data=st.data(), to_known=st.booleans())
    def rotate(self, data: st.DataObject, to_known: bool) -> None:
        label, old = self._key(data, "old key")
        if to_known:  # to a key the pool already has (known to the case, or not yet)
            _, new = self._key(data, "new key", fresh=False)
        else:
            new = _signer(old.identity.name, old.identity.role)
        if self._act(
            "rotate",
            old,
            lambda: rotate_key(self.ledger, old, new),
            lambda: rotate_draft(self._replay(), old, new),
        ):
            if label == FRESH:
                self._add(old)
            if new not in self.pool.values():
                self._add(new)

    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        _, target = self._key(data, "revoked", fresh=False, likely=self._custodians())
        who = self._address(data, target, "who")
        revokers = [*self._owner(), self.recovery.fingerprint, target.fingerprint]
        label, signer = self._key(data, "revoker", likely=revokers)
        reason = self._reason(data)
        if (
            self._act(
                "revoke",
                signer,
                lambda: revoke_key(self.ledger, signer, who, reason),
                lambda: revoke_draft(self._replay(), who, reason),
            )
            and label == FRESH
        ):
            self._add(signer)

    @rule(data=st.data(), delegate=st.booleans())
    def attest(self, data: st.DataObject, delegate: bool) -> None:
        label, signer = self._key(data, "attester", likely=self._owner())
        tlabel, target = self._key(data, "imported")
        name = data.draw(st.sampled_from(NAMES), label="imported as")
        role = data.draw(st.sampled_from(ROLES), label="role")
        other = Identity(name, role, target.identity.public_raw)
        if self._import(signer, other, delegate):
            if label == FRESH:
                self._add(signer)
            if tlabel == FRESH and target.fingerprint != signer.fingerprint:
                self._add(target)

    @rule(data=st.data())
    def reassign_items(self, data: st.DataObject) -> None:
        items = self._pick_items(data, self._lost())
        _, target = self._key(data, "to key", fresh=False, likely=self._receivers(items))
        to = self._address(data, target, "to")
        label, signer = self._key(data, "reassigner", likely=self._owner())
        reason = self._reason(data)
        if (
            self._act(
                "reassign",
                signer,
                lambda: reassign(self.ledger, signer, items, to, reason),
                lambda: reassign_draft(self._replay(), items, to, reason),
            )
            and label == FRESH
        ):
            self._add(signer)


AuthorityMachine.TestCase.settings = SETTINGS
TestAuthorityMachine = AuthorityMachine.TestCase
