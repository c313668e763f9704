"""Findings: every problem a verification can report, defined once.

A finding kind is a member of :class:`Kind`; each member knows the verification
step it belongs to (:class:`Step`).  ``verify``, the bundle verifier and the
custody replay all produce :class:`Finding` values, and the reports derive their
steps, per-item findings and signature status from the structured fields
(``item``, ``seq``, ``obj``), never by parsing the ``subject`` text.

To add a finding kind: add one member to :class:`Kind` here (kind string, step,
meaning), then run ``python tests/regen_kinds.py``: the kind table of
docs/exit-codes.md and the schemas' kind lists are generated from it, and the tests
fail until they agree.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field


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


class Kind(enum.StrEnum):
    """Every finding kind, with the step that reports it.  A member is its kind
    string (``Kind.INDEX == "index"``), as ``verify --json`` prints it."""

    step: Step
    meaning: str

    def __new__(cls, value: str, step: Step, meaning: str) -> Kind:
        member = str.__new__(cls, value)
        member._value_ = value
        member.step = step
        member.meaning = meaning
        return member

    @property
    def kind(self) -> str:
        return str(self.value)

    # -- case header
    CASE_HEADER = (
        "case-header",
        Step.CASE_HEADER,
        "the case header's hash or canonical form is wrong",
    )
    # -- hash chain: the events themselves, complete and in order
    CHAIN_GAP = ("chain-gap", Step.CHAIN, "events are missing or out of order")
    EVENT_HASH = ("event-hash", Step.CHAIN, "an event's body does not hash to its stated hash")
    CHAIN_LINK = ("chain-link", Step.CHAIN, "an event's prev is not the previous event's hash")
    EVENT_NONCANONICAL = (
        "event-noncanonical",
        Step.CHAIN,
        "an event body is not RFC 8785 canonical JSON",
    )
    EVENT_BODY = (
        "event-body",
        Step.CHAIN,
        "an event body is not valid JSON, or lacks a field verify relies on",
    )
    EVENT_MISMATCH = (
        "event-mismatch",
        Step.CHAIN,
        "a ledger column says something other than the signed body",
    )
    EVENT_STORAGE = (
        "event-storage",
        Step.CHAIN,
        "a ledger column holds a BLOB or number where text belongs",
    )
    EVENT_LINE = (
        "event",
        Step.CHAIN,
        "a bundle line that is not an event",
    )  # a bundle line that is no event
    EVENT_DUPLICATE = ("event-duplicate", Step.CHAIN, "a bundle carries the same event twice")
    EVENT_EXTRA = (
        "event-extra",
        Step.CHAIN,
        "a bundle carries an event its export event does not list",
    )
    EVENT_WITHHELD = (
        "event-withheld",
        Step.CHAIN,
        "a bundle lacks an event its export event lists",
    )
    # -- signatures
    IDENTITY = ("identity", Step.SIGNATURES, "an identity event whose key or fingerprint is wrong")
    UNKNOWN_SIGNER = (
        "unknown-signer",
        Step.SIGNATURES,
        "an event signed by a key the ledger or bundle does not know",
    )
    SIGNATURE = ("signature", Step.SIGNATURES, "an Ed25519 signature that does not verify")
    KEY = ("key", Step.SIGNATURES, "a bundle key that is not a well-formed Ed25519 public key")
    # -- custody rules (the replay, custody.lifecycle)
    REVOKED_KEY = ("revoked-key", Step.CUSTODY, "an event signed by a revoked or rotated-out key")
    REVOCATION = ("revocation", Step.CUSTODY, "a revocation of an unknown or already revoked key")
    ROTATION = (
        "rotation",
        Step.CUSTODY,
        "a key rotation not signed by the old key or not co-signed by the new one",
    )
    TRANSFER = (
        "transfer",
        Step.CUSTODY,
        "a hand-over by someone who does not hold the item, or to a key that may not receive",
    )
    RECEIPT = (
        "receipt",
        Step.CUSTODY,
        "a receipt by someone other than the named receiver, or untruthful",
    )
    RECEIPT_MISMATCH = (
        "receipt-mismatch",
        Step.CUSTODY,
        "an item received with digests other than those collected",
    )
    LIFECYCLE = (
        "lifecycle",
        Step.CUSTODY,
        "a lifecycle event by someone who does not hold the item",
    )
    AUTHORITY = (
        "authority",
        Step.CUSTODY,
        "an act by a key the rules do not allow to make it (attest, revoke, reassign, act"
        " while self-asserted)",
    )
    NAME = ("name", Step.CUSTODY, "a name attested to a key while another active key holds it")
    UNTRUSTED_KEY = (
        "untrusted-key",
        Step.CUSTODY,
        "a bundle signer no trust anchor vouches for (with --trust, or --require-trusted)",
    )
    # -- derived tables
    INDEX = (
        "index",
        Step.INDEX,
        "a derived table or stored tree node differs from the signed events",
    )
    # -- checkpoints and inclusion proofs
    CHECKPOINT = (
        "checkpoint",
        Step.CHECKPOINTS,
        "a signed checkpoint that does not verify or is not extended by the ledger",
    )
    PROOF = ("proof", Step.CHECKPOINTS, "an inclusion proof that is missing or does not verify")
    UNTRUSTED_CHECKPOINT = (
        "untrusted-checkpoint",
        Step.CHECKPOINTS,
        "a bundle checkpoint signed by no trusted key",
    )
    # -- RFC 3161 time-stamps
    TIMESTAMP = (
        "timestamp",
        Step.TIMESTAMPS,
        "an RFC 3161 token that does not verify, or shows the clock was wrong",
    )
    # -- imported bundles
    IMPORT = ("import", Step.IMPORTS, "an imported bundle's events no longer hash, verify or prove")
    # -- stored bytes: store objects, bundle payload and tag files
    STORE_PATH = ("store-path", Step.STORE, "a store path that does not name the recorded sha256")
    OBJECT_MISSING = ("object-missing", Step.STORE, "a store object is missing")
    OBJECT_UNREADABLE = ("object-unreadable", Step.STORE, "a store object cannot be read")
    OBJECT_SIZE = ("object-size", Step.STORE, "a store object has another size than recorded")
    OBJECT_DIGEST = (
        "object-digest",
        Step.STORE,
        "a store object's bytes do not have the recorded digest",
    )
    OBJECT_WRITABLE = ("object-writable", Step.STORE, "a store object is writable")
    OBJECT_UNRECORDED = (
        "object-unrecorded",
        Step.STORE,
        "a complete store object no event names and no interrupted collection explains:"
        " evidence of lost events",
    )
    VAULT_MISSING = (
        "vault-missing",
        Step.STORE,
        "an object version the case recorded as pushed to a vault is not there",
    )
    VAULT_CONTENT = (
        "vault-content",
        Step.STORE,
        "a vault object version has another size or checksum than recorded",
    )
    VAULT_RETENTION = (
        "vault-retention",
        Step.STORE,
        "a vault object version is retained for less, in a weaker mode, or without the"
        " legal hold recorded",
    )
    PAYLOAD_MISSING = ("payload-missing", Step.STORE, "a bundle payload file is missing")
    PAYLOAD_EXTRA = (
        "payload-extra",
        Step.STORE,
        "a bundle payload file no manifest or item accounts for",
    )
    PAYLOAD_DIGEST = (
        "payload-digest",
        Step.STORE,
        "a bundle payload file with another digest than listed or signed",
    )
    PAYLOAD_WITHHELD = (
        "payload-withheld",
        Step.STORE,
        "a bundle lacks bytes its export event lists",
    )
    TAG_MISSING = ("tag-missing", Step.STORE, "a bundle tag file or the tag manifest is missing")
    TAG_DIGEST = (
        "tag-digest",
        Step.STORE,
        "a bundle tag file with another digest than the tag manifest says",
    )
    TAG_EXTRA = ("tag-extra", Step.STORE, "a bundle tag file no tag manifest covers")
    ITEM = ("item", Step.STORE, "a bundle item without a signed collect event")
    DISCLOSURE = (
        "disclosure",
        Step.STORE,
        "bundle.json differs from what the signed export event discloses",
    )

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


def steps() -> list[tuple[Step, tuple[Kind, ...]]]:
    """Each step with the kinds it reports (in definition order), in report order."""
    return [(s, tuple(k for k in Kind if k.step is s)) for s in Step]


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


@dataclass
class Verdict:
    """What a verification found: a verify or bundle report derives from this."""

    findings: Findings = field(default_factory=Findings, kw_only=True)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(
        self,
        kind: Kind,
        subject: str,
        detail: str,
        *,
        item: str | None = None,
        seq: int | None = None,
        obj: str | None = None,
    ) -> None:
        self.findings.add(kind, subject, detail, item=item, seq=seq, obj=obj)
