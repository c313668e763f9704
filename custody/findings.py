"""Findings: every problem a verification can report, defined once.

A finding kind is a member of :class:`Kind`; each member knows the verification
step it belongs to (:class:`Step`).  ``verify``, the bundle verifier and the
custody replay all produce :class:`Finding` values, and the reports derive their
steps, per-item findings and signature status from the structured fields
(``item``, ``seq``, ``obj``), never by parsing the ``subject`` text.

To add a finding kind: add one member to :class:`Kind` here (value, step) and
describe it in docs/exit-codes.md; nothing else lists kinds.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Step(enum.Enum):
    """The named steps of a verification, in the order reports list them."""

    CASE_HEADER = "case header"
    CHAIN = "hash chain"
    SIGNATURES = "signatures"
    CUSTODY = "custody rules"
    INDEX = "derived tables"
    CHECKPOINTS = "checkpoints and proofs"
    TIMESTAMPS = "time-stamps"
    IMPORTS = "imported bundles"
    STORE = "stored bytes"


class Kind(str, enum.Enum):
    """Every finding kind, with the step that reports it.  A member is its kind
    string (``Kind.INDEX == "index"``), as ``verify --json`` prints it."""

    step: Step

    def __new__(cls, value: str, step: Step) -> Kind:
        member = str.__new__(cls, value)
        member._value_ = value
        member.step = step
        return member

    @property
    def kind(self) -> str:
        return str(self.value)

    # -- case header
    CASE_HEADER = ("case-header", Step.CASE_HEADER)
    # -- hash chain: the events themselves, complete and in order
    CHAIN_GAP = ("chain-gap", Step.CHAIN)
    EVENT_HASH = ("event-hash", Step.CHAIN)
    CHAIN_LINK = ("chain-link", Step.CHAIN)
    EVENT_NONCANONICAL = ("event-noncanonical", Step.CHAIN)
    EVENT_BODY = ("event-body", Step.CHAIN)
    EVENT_MISMATCH = ("event-mismatch", Step.CHAIN)
    EVENT_STORAGE = ("event-storage", Step.CHAIN)
    EVENT_LINE = ("event", Step.CHAIN)  # a bundle line that is no event
    EVENT_DUPLICATE = ("event-duplicate", Step.CHAIN)
    EVENT_EXTRA = ("event-extra", Step.CHAIN)
    EVENT_WITHHELD = ("event-withheld", Step.CHAIN)
    # -- signatures
    IDENTITY = ("identity", Step.SIGNATURES)
    UNKNOWN_SIGNER = ("unknown-signer", Step.SIGNATURES)
    SIGNATURE = ("signature", Step.SIGNATURES)
    KEY = ("key", Step.SIGNATURES)
    # -- custody rules (the replay, custody.lifecycle)
    REVOKED_KEY = ("revoked-key", Step.CUSTODY)
    REVOCATION = ("revocation", Step.CUSTODY)
    ROTATION = ("rotation", Step.CUSTODY)
    TRANSFER = ("transfer", Step.CUSTODY)
    RECEIPT = ("receipt", Step.CUSTODY)
    RECEIPT_MISMATCH = ("receipt-mismatch", Step.CUSTODY)
    LIFECYCLE = ("lifecycle", Step.CUSTODY)
    UNTRUSTED_KEY = ("untrusted-key", Step.CUSTODY)
    # -- derived tables
    INDEX = ("index", Step.INDEX)
    # -- checkpoints and inclusion proofs
    CHECKPOINT = ("checkpoint", Step.CHECKPOINTS)
    PROOF = ("proof", Step.CHECKPOINTS)
    UNTRUSTED_CHECKPOINT = ("untrusted-checkpoint", Step.CHECKPOINTS)
    # -- RFC 3161 time-stamps
    TIMESTAMP = ("timestamp", Step.TIMESTAMPS)
    # -- imported bundles
    IMPORT = ("import", Step.IMPORTS)
    # -- stored bytes: store objects, bundle payload and tag files
    STORE_PATH = ("store-path", Step.STORE)
    OBJECT_MISSING = ("object-missing", Step.STORE)
    OBJECT_UNREADABLE = ("object-unreadable", Step.STORE)
    OBJECT_SIZE = ("object-size", Step.STORE)
    OBJECT_DIGEST = ("object-digest", Step.STORE)
    OBJECT_WRITABLE = ("object-writable", Step.STORE)
    PAYLOAD_MISSING = ("payload-missing", Step.STORE)
    PAYLOAD_EXTRA = ("payload-extra", Step.STORE)
    PAYLOAD_DIGEST = ("payload-digest", Step.STORE)
    PAYLOAD_WITHHELD = ("payload-withheld", Step.STORE)
    TAG_MISSING = ("tag-missing", Step.STORE)
    TAG_DIGEST = ("tag-digest", Step.STORE)
    TAG_EXTRA = ("tag-extra", Step.STORE)
    ITEM = ("item", Step.STORE)
    DISCLOSURE = ("disclosure", Step.STORE)

    def __str__(self) -> str:
        return self.kind

    def __format__(self, spec: str) -> str:
        return format(self.kind, spec)

    @classmethod
    def of(cls, text: str) -> Kind:
        """The member whose kind string is ``text`` (ValueError if none)."""
        try:
            return _BY_TEXT[text]
        except KeyError:
            raise ValueError(f"unknown finding kind {text!r}") from None


_BY_TEXT: dict[str, Kind] = {k.kind: k for k in Kind}

#: the kinds that mean an event's signature is not to be believed
SIGNATURE_KINDS = frozenset({Kind.SIGNATURE, Kind.UNKNOWN_SIGNER})


def steps() -> list[tuple[Step, frozenset[Kind]]]:
    """Each step with the kinds it reports, in report order."""
    return [(s, frozenset(k for k in Kind if k.step is s)) for s in Step]


def event_subject(seq: int) -> str:
    return f"event {seq}"


@dataclass(frozen=True)
class Finding:
    """One problem: its kind, a human subject, a detail, and what it concerns.

    ``item`` is the item id concerned (if one), ``seq`` the event (ledger or
    bundle seq), ``obj`` the store object or bundle file."""

    kind: Kind
    subject: str
    detail: str
    item: str | None = None
    seq: int | None = None
    obj: str | None = None

    @classmethod
    def event(cls, kind: Kind, seq: int, detail: str, *, item: str | None = None) -> Finding:
        """A finding about event ``seq`` (subject ``event <seq>``)."""
        return cls(kind, event_subject(seq), detail, item=item, seq=seq)

    @property
    def step(self) -> Step:
        return self.kind.step

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind.kind, "subject": self.subject, "detail": self.detail}

    def concerns(self, item: str, seqs: Iterable[int] = (), obj: str | None = None) -> bool:
        """True if this finding is about ``item``, one of its events, or its object."""
        return (
            self.item == item
            or (self.seq is not None and self.seq in set(seqs))
            or (obj is not None and self.obj == obj)
        )


class Findings(list[Finding]):
    """A list of findings with a constructor shorthand."""

    def add(
        self,
        kind: Kind,
        subject: str,
        detail: str,
        *,
        item: str | None = None,
        seq: int | None = None,
        obj: str | None = None,
    ) -> Finding:
        f = Finding(kind, subject, detail, item=item, seq=seq, obj=obj)
        self.append(f)
        return f

    def event(self, kind: Kind, seq: int, detail: str, *, item: str | None = None) -> Finding:
        f = Finding.event(kind, seq, detail, item=item)
        self.append(f)
        return f
