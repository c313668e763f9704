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

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from custody import merkle
from custody.canonical import content_hash, parse_canonical, parse_strict
from custody.findings import Finding, Findings, Kind
from custody.keys import verify_signature


@dataclass(frozen=True)
class SignatureCheck:
    """An Ed25519 check still to make, and where its finding belongs."""

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
    try:
        sig = base64.b64decode(str(signature), validate=True)
    except (binascii.Error, ValueError):
        sig = b""  # fails below, as a signature that does not verify
    return body, SignatureCheck(key, sig, raw, subject, seq, signer, len(out))


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


def check_now(out: Findings, check: SignatureCheck | None) -> bool:
    """Make one signature check at once (True if it verifies)."""
    if check is None:
        return False
    return settle(out, [check], [verify_signature(*check.triple())])[0]


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
