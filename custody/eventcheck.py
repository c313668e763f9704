"""The one event verifier: an event's hash, canonical form, signature and
inclusion proof, checked the same way wherever an event is read.

The ledger verifier (``custody.verify``), the check of imported bundles kept in a
case, and the bundle verifier (``custody.bundle``) all call :func:`check_event`,
and :func:`check_inclusion` for a proof into a signed checkpoint.  Signature checks
are returned rather than made, so a caller may batch them (the bundle verifier
checks them on worker processes); :func:`settle` files each failed one in its
event's place among the findings.
"""

from __future__ import annotations

import binascii
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, NamedTuple

from custody import merkle
from custody.canonical import content_hash, parse_canonical, parse_strict
from custody.findings import Finding, Findings, Kind
from custody.keys import signature_checker, verify_signature


class SignatureCheck(NamedTuple):
    """An Ed25519 check still to make, and where its finding belongs (a named
    tuple: one is made per event, and a tuple is the cheapest immutable record)."""

    public_key: bytes
    signature: bytes
    message: bytes
    subject: str
    seq: int | None
    signer: str
    at: int  # index in the findings list where a failure is filed

    def triple(self) -> tuple[bytes, bytes, bytes]:
        return (self.public_key, self.signature, self.message)


KeyLookup = Callable[[str, dict[str, Any]], bytes | None]


def keys_in(keys: Mapping[str, bytes]) -> KeyLookup:
    """A key lookup by the signer's fingerprint in ``keys`` alone."""
    return lambda signer, _body: keys.get(signer)


def check_event(
    raw: bytes,
    *,
    stated_hash: object,
    signature: object,
    key_of: KeyLookup,
    out: Findings,
    seq: int | None,
    subject: str,
    where: str = "the ledger",
) -> tuple[dict[str, Any] | None, SignatureCheck | None]:
    """Check one event's body bytes ``raw``: it must parse as a JSON object, be
    RFC 8785 canonical, hash to ``stated_hash``; its signer's key comes from
    ``key_of(signer, body)`` (None: unknown to ``where``).  Findings go to ``out``.

    Returns the parsed body (None if it is no JSON object) and the signature check
    to make (None if there is no key to make it with)."""
    found = content_hash(raw)
    if found != stated_hash:
        out.add(
            Kind.EVENT_HASH, subject, f"stored hash {stated_hash}, body hashes to {found}", seq=seq
        )
    try:
        body = parse_canonical(raw)
    except ValueError:  # say what is wrong with it, if it parses at all
        try:
            body = parse_strict(raw)
        except (ValueError, RecursionError) as e:
            out.add(Kind.EVENT_BODY, subject, f"body is not valid JSON: {e}", seq=seq)
            return None, None
        out.add(Kind.EVENT_NONCANONICAL, subject, "body is not RFC 8785 canonical JSON", seq=seq)
    if not isinstance(body, dict):
        out.add(Kind.EVENT_BODY, subject, "body is not a JSON object", seq=seq)
        return None, None
    signer = str(body.get("signer"))
    key = key_of(signer, body)
    if key is None:
        out.add(
            Kind.UNKNOWN_SIGNER,
            subject,
            f"signed by {signer}, a key {where} does not know",
            seq=seq,
        )
        return body, None
    return body, SignatureCheck(
        key, signature_bytes(signature), raw, subject, seq, signer, len(out)
    )


def signature_bytes(column: object) -> bytes:
    """The signature a ``signature`` column holds: strict base64 (as
    ``base64.b64decode(validate=True)``, without its wrapper: this runs once per
    event); b"" when it is not, which then fails as a signature that does not verify."""
    try:
        return binascii.a2b_base64(str(column), strict_mode=True)
    except (binascii.Error, ValueError):
        return b""


def settle(out: Findings, checks: Sequence[SignatureCheck], verdicts: Sequence[bool]) -> list[bool]:
    """File a ``signature`` finding for each failed check, in its event's place."""
    for c, ok in reversed(list(zip(checks, verdicts, strict=True))):
        if not ok:
            out.insert(
                c.at,
                Finding(
                    Kind.SIGNATURE,
                    c.subject,
                    f"Ed25519 signature does not verify for signer {c.signer}",
                    seq=c.seq,
                ),
            )
    return list(verdicts)


def check_now(
    out: Findings, check: SignatureCheck | None, ahead: AheadChecks | None = None, at: int = -1
) -> bool:
    """Make one signature check at once (True if it verifies), or take its verdict
    from ``ahead`` when check ``at`` there is this very (key, signature, message)."""
    if check is None:
        return False
    ok = ahead.verdict(at, check) if ahead is not None else verify_signature(*check.triple())
    if ok:
        return True  # nothing to file
    return settle(out, [check], [ok])[0]


# -- signature checks on worker processes ------------------------------------------

Triple = tuple[bytes, bytes, bytes]  # (public key, signature, message)

#: Signature checks sent to a worker at a time.
SIG_BATCH = 512
#: Below this many checks, starting worker processes costs more than it saves.
PARALLEL_MIN_CHECKS = 2 * SIG_BATCH


def verify_batch(triples: Sequence[Triple]) -> list[bool]:
    """Ed25519 verdicts of (public key, signature, message) triples, in order
    (:func:`custody.keys.verify_signature`, each key loaded once per batch)."""
    loaded: dict[bytes, Callable[[bytes, bytes], bool]] = {}
    out = []
    for k, sig, msg in triples:
        check = loaded.get(k)
        if check is None:
            check = loaded[k] = signature_checker(k)
        out.append(check(sig, msg))
    return out


def signature_pool(checks: int, *, force: bool = False) -> ProcessPoolExecutor | None:
    """Forked worker processes, one per CPU, for ``checks`` signature checks; None
    when there is one CPU or too few checks to be worth it (``force``: always).  A
    signature check holds the GIL, so threads would not help.  The workers only
    verify signatures: they touch no file and no database."""
    cpus = os.cpu_count() or 1
    if not force and (cpus < 2 or checks < PARALLEL_MIN_CHECKS):
        return None
    return ProcessPoolExecutor(
        max_workers=max(cpus, 2), mp_context=multiprocessing.get_context("fork")
    )


class StreamedChecks:
    """Signature checks started as they are added: each full batch goes to ``pool``
    at once (so the workers check while the caller goes on reading), and
    :meth:`verdicts` gives every verdict in order, each of them :func:`verify_batch`'s;
    checked in this process when there is no pool, for the last part batch, and for
    a batch whose worker died."""

    def __init__(self, pool: ProcessPoolExecutor | None, batch: int | None = None) -> None:
        self.pool = pool
        self.batch = batch or SIG_BATCH
        self._pending: list[Triple] = []
        self._sent: list[tuple[list[Triple], Future[list[bool]]]] = []

    def add(self, triple: Triple) -> None:
        self._pending.append(triple)
        if self.pool is not None and len(self._pending) == self.batch:
            self._submit(self.pool)

    def _submit(self, pool: ProcessPoolExecutor) -> None:
        part, self._pending = self._pending, []
        self._sent.append((part, pool.submit(verify_batch, part)))

    def verdicts(self) -> list[bool]:
        if self.pool is not None and self._pending:
            self._submit(self.pool)
        out: list[bool] = []
        for part, fut in self._sent:
            try:
                out += fut.result()
            except (BrokenProcessPool, CancelledError):  # a worker died: check them here
                out += verify_batch(part)
        return out + verify_batch(self._pending)


class AheadChecks:
    """Signature checks started on worker processes ahead of the one serial pass
    that needs their verdicts in order (the ledger verifier: a verdict decides
    whether an event's key registration counts, and so which key the next events
    are checked with).  The triple started for a position is a guess made before
    that pass (the key the derived identities table names); the pass takes the
    verdict only when it asks for that very triple, else it checks at once, so
    the findings are those of the serial path whatever the guess was."""

    def __init__(self, pool: ProcessPoolExecutor, batch: int | None = None) -> None:
        self.pool = pool
        self.batch = batch or SIG_BATCH
        self._pending: list[Triple] = []
        self._sent: dict[int, tuple[list[Triple], Future[list[bool]]]] = {}
        self._count = 0  # triples added
        self._low = 0  # batches below this one are dropped (verdicts come in order)
        self._done: tuple[int, list[bool]] = (-1, [])  # the batch whose verdicts are at hand

    def add(self, triple: Triple) -> int:
        """Start the check of ``triple`` (once its batch is full); returns its position."""
        self._pending.append(triple)
        self._count += 1
        if len(self._pending) == self.batch:
            self._submit()
        return self._count - 1

    def close(self) -> None:
        """Start the checks of a last, short batch."""
        if self._pending:
            self._submit()

    def _submit(self) -> None:
        b = (self._count - 1) // self.batch
        part, self._pending = self._pending, []
        self._sent[b] = (part, self.pool.submit(verify_batch, part))

    def verdict(self, at: int, check: SignatureCheck) -> bool:
        """The verdict of ``check``: that of position ``at`` if it is the very
        triple started there, else checked now."""
        b, i = divmod(at, self.batch)
        while self._low < b:  # earlier batches are done with: free their messages
            self._sent.pop(self._low, None)
            self._low += 1
        sent = self._sent.get(b) if at >= 0 else None
        if sent is None:
            return verify_signature(*check.triple())  # no guess, or not started
        key, sig, msg = sent[0][i]
        if key != check.public_key or sig != check.signature or msg != check.message:
            return verify_signature(*check.triple())  # a wrong guess
        if self._done[0] != b:
            try:
                self._done = (b, sent[1].result())
            except (BrokenProcessPool, CancelledError):  # a worker died: check it here
                return verify_signature(*check.triple())
        return self._done[1][i]


def check_inclusion(
    raw: bytes,
    index: int,
    size: int,
    proof_hex: object,
    root: bytes,
    *,
    out: Findings,
    subject: str,
    seq: int | None,
) -> bool:
    """The event's leaf must prove into the tree of ``size`` with ``root``."""
    try:
        if not isinstance(proof_hex, list):
            raise ValueError("the proof is not a list of hashes")
        path = [bytes.fromhex(h) for h in proof_hex]
        merkle.verify_inclusion(merkle.leaf_hash(raw), index, size, path, root)
    except (ValueError, TypeError) as e:
        out.add(Kind.PROOF, subject, f"not in the checkpointed ledger: {e}", seq=seq)
        return False
    return True
