"""Trust in keys, written once for the writers and ``verify``.

* Reading a trust anchor given on the command line: a PEM public key file, a
  signed-note verifier key (``name+hex8+base64``, alone or in a file) or a
  fingerprint (``sha256:<hex>``) (:func:`read_trust_key`).
* The trust rule of a bundle's signers (docs/bundle-format.md §10.1,
  :func:`vouched_for`): every signer an anchor, or attested under a trusted owner
  of the source case.
* The case's own trust anchors: ``trust.add`` / ``trust.remove`` events that only
  the case's owner may sign (applied by the custody replay, :mod:`custody.lifecycle`).
* What a signed ``import`` event records of its trust basis (``trust``: the anchors,
  each signer's standing, whether self-asserted signers were accepted) and of the
  source's pin (``consistency``: the proof that the bundle's checkpoint extends the
  one pinned at the source's first import), and the rules that judge them
  (:func:`basis_problem`, :func:`pin_problem`), applied by the replay to every
  import event: by the importer before it writes, by ``verify`` after.
* The verdict words of a bundle verification (:func:`bundle_verdict`), used by
  ``bundle verify`` and every report format alike.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from custody import merkle
from custody.display import shown
from custody.errors import UsageError
from custody.keys import fingerprint

if TYPE_CHECKING:
    from custody.lifecycle import Replay

TRUST_ADD_EVENT = "trust.add"
TRUST_REMOVE_EVENT = "trust.remove"
TRUSTED = "trusted"
SELF_ASSERTED = "self-asserted"
#: a key file larger than this is not a key (a hostile file is never read whole)
MAX_KEY_FILE = 64 * 1024
CONSISTENCY_FILE = "custody/consistency.json"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class TrustKey:
    """A key given as trusted: its fingerprint, and its public key when known."""

    fingerprint: str
    public_raw: bytes | None = None
    name: str = ""

    @property
    def public_b64(self) -> str | None:
        return None if self.public_raw is None else base64.b64encode(self.public_raw).decode()


def _read_key_file(path: Path, what: str) -> str:
    """The text of a small regular file, opened without blocking (a FIFO or a device
    named as a key file is refused, never read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise UsageError(f"{what}: cannot read {shown(str(path))}: {e.strerror}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{what}: {shown(str(path))} is not a regular file")
        if st.st_size > MAX_KEY_FILE:
            raise UsageError(
                f"{what}: {shown(str(path))} is {st.st_size} bytes, not a public key"
                f" (at most {MAX_KEY_FILE})"
            )
        data = os.read(fd, MAX_KEY_FILE + 1)
    except OSError as e:
        raise UsageError(f"{what}: cannot read {shown(str(path))}: {e.strerror}") from e
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what}: {shown(str(path))} is not a public key (not text)") from None


def _from_pem(text: str, what: str, where: str) -> TrustKey:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(text.encode("utf-8"))
    except (ValueError, UnsupportedAlgorithm):
        raise UsageError(f"{what}: {where} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"{what}: {where} is not an Ed25519 public key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return TrustKey(fingerprint(raw), raw)


def _from_vkey(text: str, what: str, where: str) -> TrustKey:
    from custody.note import InvalidKeyError, parse_verifier_key

    try:
        v = parse_verifier_key(text)
    except InvalidKeyError as e:
        raise UsageError(f"{what}: {where} is not a verifier key ({e})") from None
    return TrustKey(fingerprint(v.public_raw), v.public_raw, v.name)


def read_trust_key(text: str, *, what: str = "--trust", need_key: bool = False) -> TrustKey:
    """A key given as trusted: a PEM public key file, a verifier key (``name+hex8+
    base64``, as text or alone in a file) or, unless ``need_key``, a fingerprint
    ``sha256:<64 hex digits>``.  Anything else is a UsageError (exit 2) naming it."""
    given = text.strip()
    if given.startswith("sha256:") or (len(given) == 64 and "+" not in given):
        hexpart = given.lower().removeprefix("sha256:")
        if len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart):
            if need_key:
                raise UsageError(
                    f"{what}: {shown(text)} is a fingerprint; give the public key file or"
                    " verifier key, so the case records the key itself"
                )
            return TrustKey("sha256:" + hexpart)
    path = Path(text)
    if "+" in given and "\n" not in given and not path.exists():
        return _from_vkey(given, what, shown(text))
    try:
        exists = path.exists()
    except (OSError, ValueError):
        exists = False
    if not exists:
        raise UsageError(
            f"{what} {text!r}: neither a public key file, a verifier key nor a fingerprint"
        )
    content = _read_key_file(path, what)
    where = shown(str(path))
    if "-----BEGIN" in content:
        return _from_pem(content, what, where)
    return _from_vkey(content.strip(), what, where)


def read_trust_keys(texts: Sequence[str], *, what: str = "--trust") -> list[TrustKey]:
    out: dict[str, TrustKey] = {}
    for t in texts:
        k = read_trust_key(t, what=what)
        out.setdefault(k.fingerprint, k)
    return list(out.values())


# -- the trust rule of a bundle's signers ----------------------------------------


def vouched_for(r: Replay, anchors: set[str], keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` are trusted, given the trust anchors, by the bundle's own
    signed key events (docs/bundle-format.md §10.1).

    An anchor is trusted.  Under rules 1 nothing else is: there is no owner, and
    anyone could register anyone.  Under rules 2 so is a key of an anchor's line
    of rotations (a successor: the anchor, or the recovery key its owner named,
    signed the rotation; a predecessor: the anchor co-signed it), and, when the
    case's owner (after its rotations) is such a key, every key the replay counts
    as attested (by the owner or a delegate the owner named; rotations carry it to
    the new key) and the recovery key the owner named in the opening event."""
    if not anchors:
        return set()
    trusted = set(anchors)
    if r.rules < 2 or r.owner is None:
        return trusted
    ends = {r.current(a) for a in anchors}
    trusted |= {fp for fp in keys if r.current(fp) in ends}
    if r.current(r.owner) in ends:
        trusted |= set(r.attested_by)
        if r.recovery is not None:
            trusted.add(r.recovery)
    return trusted


def standings(r: Replay, anchors: set[str], signers: Iterable[str]) -> dict[str, str]:
    """Each signer of a bundle (its events' and its checkpoint's), trusted or
    self-asserted, by :func:`vouched_for`."""
    signers = sorted(set(signers))
    trusted = vouched_for(r, anchors, signers)
    return {fp: TRUSTED if fp in trusted else SELF_ASSERTED for fp in signers}


def basis(anchors: Iterable[str], signers: Mapping[str, str], accept: bool) -> dict[str, Any]:
    """The ``trust`` object a signed import event records."""
    return {
        "anchors": sorted(set(anchors)),
        "signers": dict(sorted(signers.items())),
        "accept_self_asserted": accept,
    }


def basis_problem(recorded: Any, found: Mapping[str, str] | None) -> str | None:
    """Why an import's recorded trust basis does not hold (None when it does): each
    signer's standing must be what the trust rule gives (``found``, from the
    source's signed events and the recorded anchors; None when not recomputed),
    and a self-asserted signer needs ``accept_self_asserted``."""
    if not isinstance(recorded, dict):
        return "the import event records no trust basis"
    signers = recorded.get("signers")
    anchors = recorded.get("anchors")
    if not isinstance(signers, dict) or not isinstance(anchors, list):
        return "the import event's trust basis names no anchors or signers"
    if found is not None and dict(found) != signers:
        return (
            f"the import event says its signers were {_standing_text(signers)}, but by the"
            f" anchors it records the source's signed events give {_standing_text(found)}"
        )
    loose = sorted(fp for fp, s in signers.items() if s != TRUSTED)
    if loose and recorded.get("accept_self_asserted") is not True:
        return (
            f"signer(s) {', '.join(loose)} are self-asserted and the import did not accept"
            " self-asserted signers"
        )
    return None


def _standing_text(m: Mapping[str, Any]) -> str:
    return ", ".join(f"{fp} {s}" for fp, s in sorted(m.items())) or "none"


# -- pinning a source -----------------------------------------------------------


@dataclass
class Pin:
    """A source as pinned at its first import, advanced by every later one."""

    seq: int  # the import event that pinned (or last advanced) it
    size: int
    root: bytes
    signers: set[str] = field(default_factory=set)


def checkpoint_size_root(text: Any) -> tuple[int, bytes] | None:
    """Size and root a checkpoint's text states (its signature is the signed import
    event's business, checked by ``verify`` against the source's keys)."""
    if not isinstance(text, str):
        return None
    lines = text.split("\n")
    # ASCII digits only ("²".isdigit() is true), and few: int() refuses 4300+ digits
    if len(lines) < 3 or not (lines[1].isascii() and lines[1].isdigit()) or len(lines[1]) > 20:
        return None
    try:
        root = base64.b64decode(lines[2], validate=True)
    except (binascii.Error, ValueError):
        return None
    return (int(lines[1]), root) if len(root) == 32 else None


def consistency_doc(tree: Any, earlier: Iterable[int], size: int) -> dict[str, Any]:
    """``custody/consistency.json``: for each earlier checkpoint size of the case, the
    RFC 9162 consistency proof from it to the bundle's checkpoint (``tree`` has
    ``consistency_proof(size1, size2)``)."""
    sizes = sorted({s for s in earlier if 0 < s < size})
    return {
        "tree_size": size,
        "proofs": [
            {"size": s, "proof": [h.hex() for h in tree.consistency_proof(s, size)]} for s in sizes
        ],
    }


#: at most this many consistency proofs of a bundle are recorded in its import event
MAX_RECORDED_PROOFS = 4096


def recorded_proofs(doc: Any, size: int) -> list[dict[str, Any]]:
    """The well-formed proofs of a bundle's consistency.json (``size``: its
    checkpoint's), to record in its import event (``consistency_from``): an older
    bundle of the source imported later proves it is on this line by one of them.
    Each proof is checked only when used, against signed roots."""
    out: list[dict[str, Any]] = []
    proofs = doc.get("proofs") if isinstance(doc, dict) else None
    for p in proofs if isinstance(proofs, list) else []:
        if len(out) >= MAX_RECORDED_PROOFS or not isinstance(p, dict):
            break
        s, proof = p.get("size"), p.get("proof")
        if (
            isinstance(s, int)
            and not isinstance(s, bool)
            and 0 < s < size
            and isinstance(proof, list)
            and len(proof) <= 128
            and all(isinstance(h, str) and _HEX64.fullmatch(h) for h in proof)
        ):
            out.append({"size": s, "proof": list(proof)})
    return out


def proof_from(doc: Any, size: int) -> list[str] | None:
    """The proof from ``size`` in a bundle's consistency.json, as written."""
    if not isinstance(doc, dict) or not isinstance(doc.get("proofs"), list):
        return None
    for p in doc["proofs"]:
        if isinstance(p, dict) and p.get("size") == size and isinstance(p.get("proof"), list):
            return [str(h) for h in p["proof"]]
    return None


def pin_problem(pin: Pin, data: Mapping[str, Any]) -> str | None:
    """Why import ``data`` of an already pinned source is refused (None: it is not).
    Its checkpoint must extend the pinned one (``consistency``: the proof from the
    pinned size, RFC 9162 §2.1.4); a different checkpoint of the same size, or a
    failing proof, is a fork.  Every signer of it not among the pinned signers must
    be trusted (its recorded standing)."""
    found = checkpoint_size_root(data.get("checkpoint"))
    if found is None:
        return "the import event's checkpoint states no size and root"
    size, root = found
    trust = data.get("trust") if isinstance(data.get("trust"), dict) else {}
    assert isinstance(trust, dict)
    signers = trust.get("signers") if isinstance(trust.get("signers"), dict) else {}
    assert isinstance(signers, dict)
    for fp, standing in sorted(signers.items()):
        if fp not in pin.signers and standing != TRUSTED:
            return (
                f"signed by {fp}, not a key of the source's bundle pinned at event"
                f" {pin.seq}, and no key you trust vouches for it: a different collector"
                " key is imported only when trusted (give it with --trust)"
            )
    cons = data.get("consistency")
    proof = cons.get("proof") if isinstance(cons, dict) else None
    if size < pin.size:  # an older bundle, imported after a newer one
        if (
            not isinstance(cons, dict)
            or cons.get("size") != pin.size
            or not isinstance(proof, list)
        ):
            return (
                f"its checkpoint ({size} events) is older than the one pinned at event"
                f" {pin.seq} ({pin.size} events), and the pinned bundle proves no consistency"
                f" from {size} events: it cannot be shown to be on the pinned line (a fork, or"
                " a size the source never checkpointed)"
            )
        try:
            merkle.verify_consistency(
                size, pin.size, [bytes.fromhex(str(h)) for h in proof], root, pin.root
            )
        except (ValueError, TypeError) as e:
            return (
                f"fork: the checkpoint pinned at event {pin.seq} ({pin.size} events, root"
                f" {pin.root.hex()}) does not extend its checkpoint ({size} events, root"
                f" {root.hex()}): {e}"
            )
        return None
    if size == pin.size:
        if root != pin.root:
            return (
                f"fork: its checkpoint of {size} events has root {root.hex()}, the one pinned"
                f" at event {pin.seq} has root {pin.root.hex()}"
            )
        return None
    if not isinstance(cons, dict) or cons.get("size") != pin.size or not isinstance(proof, list):
        return (
            f"the bundle does not prove that its checkpoint ({size} events) extends the one"
            f" pinned at event {pin.seq} ({pin.size} events): no consistency proof from it"
        )
    try:
        merkle.verify_consistency(
            pin.size, size, [bytes.fromhex(str(h)) for h in proof], pin.root, root
        )
    except (ValueError, TypeError) as e:
        return (
            f"fork: its checkpoint ({size} events, root {root.hex()}) does not extend the one"
            f" pinned at event {pin.seq} ({pin.size} events, root {pin.root.hex()}): {e}"
        )
    return None


def advance(pins: dict[str, Pin], header: str, seq: int, data: Mapping[str, Any]) -> None:
    """Pin the source at its first import; a later accepted import moves the pin to
    its (newer) checkpoint and adds its trusted signers."""
    found = checkpoint_size_root(data.get("checkpoint"))
    if found is None:
        return
    trust = data.get("trust") if isinstance(data.get("trust"), dict) else {}
    assert isinstance(trust, dict)
    signers = trust.get("signers") if isinstance(trust.get("signers"), dict) else {}
    assert isinstance(signers, dict)
    pin = pins.get(header)
    if pin is None:
        pins[header] = Pin(seq, found[0], found[1], set(signers))
        return
    if found[0] >= pin.size:
        pin.seq, pin.size, pin.root = seq, found[0], found[1]
    pin.signers |= {fp for fp, s in signers.items() if s == TRUSTED}


# -- the verdict of a bundle verification -----------------------------------------

VERIFIED = "verified"
UNCONFIRMED = "unconfirmed"
FAILED = "failed"


def bundle_verdict(findings: int, confirmed: bool) -> str:
    """``verified`` (no finding, every signer trusted by a key you gave),
    ``unconfirmed`` (no finding, but no key you trust vouches for the signers) or
    ``failed``."""
    if findings:
        return FAILED
    return VERIFIED if confirmed else UNCONFIRMED


def verdict_banner(verdict: str, findings: int) -> str:
    """The one wording of a bundle verification's verdict, for ``bundle verify`` and
    every report format's banner."""
    if verdict == VERIFIED:
        return "VERIFICATION PASSED"
    if verdict == UNCONFIRMED:
        return "INTACT, SIGNERS UNCONFIRMED"
    return f"VERIFICATION FAILED: {findings} finding{'' if findings == 1 else 's'}"


# -- the case's trust anchors (writers) ------------------------------------------


def add_anchor(ledger: Any, signer: Any, key: TrustKey, name: str = "") -> Any:
    """Sign a ``trust.add`` event: the owner makes ``key`` a trust anchor of the
    case (the replay refuses any other signer)."""
    from custody.ledger import EventDraft
    from custody.lifecycle import append_checked

    if key.public_raw is None:
        raise UsageError("a trust anchor is recorded with its public key, not a fingerprint")
    data = {
        "fingerprint": key.fingerprint,
        "public_key": key.public_b64,
        "name": name or key.name,
    }
    return append_checked(ledger, signer, lambda _r: EventDraft(TRUST_ADD_EVENT, data))


def remove_anchor(ledger: Any, signer: Any, fp: str) -> Any:
    """Sign a ``trust.remove`` event (the owner only)."""
    from custody.ledger import EventDraft
    from custody.lifecycle import append_checked

    return append_checked(
        ledger, signer, lambda _r: EventDraft(TRUST_REMOVE_EVENT, {"fingerprint": fp})
    )


def anchor_rows(ledger: Any) -> list[dict[str, Any]]:
    """The case's trust anchors as its signed events leave them (a fresh replay)."""
    from custody.lifecycle import replay_ledger

    r = replay_ledger(ledger)
    return [
        {"fingerprint": fp, "name": name, "event": seq}
        for fp, (_, name, seq) in sorted(r.anchors.items(), key=lambda kv: kv[1][2])
    ]
