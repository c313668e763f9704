"""Signed notes (C2SP ``signed-note``) and transparency-log checkpoints (C2SP ``tlog-checkpoint``).

A *signed note* is UTF-8 text ending in a newline, a blank line, then one or more
signature lines ``"— <key name> <base64(key ID || signature)>\\n"`` (U+2014 EM DASH,
space).  Only Ed25519 (signature type ``0x01``) is supported::

    key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]
    vkey   = <key name> "+" hex(key ID) "+" base64(0x01 || public key)

A *checkpoint* is a note whose text is ``origin\\nsize\\nbase64(root)\\n`` followed by
optional extension lines.

Error hierarchy (every error raised for bad input is a :class:`NoteError`, which is a
:class:`ValueError`)::

    NoteError
    ├── MalformedNoteError        note bytes/syntax break signed-note rules
    ├── InvalidKeyError           bad key name, public key or vkey string; ambiguous verifiers
    ├── MalformedCheckpointError  note text is not a tlog-checkpoint body (custody rules)
    │   └── OriginMismatchError   a valid checkpoint from a different log than expected
    ├── UnverifiedNoteError       no signature from a known key verified
    │   └── InvalidSignatureError a known key's signature did not verify
    └── SigningError              the signing callable returned a bad signature

Choices where the specs leave room (all deliberate, stricter than the reference Go code
where noted):

* **Splitting.** The text is everything up to and including the newline that begins
  the *last* ``"\\n\\n"`` of the note; what follows must be non-empty and end in a
  newline.  So the text may itself contain (and end in) blank lines.
* **Characters.** Notes must be valid UTF-8 with no code point below U+0020 except
  U+000A.  U+007F and C1 controls are allowed (the spec bans *ASCII* controls "those
  below U+0020").  ``\\r\\n`` line endings are therefore rejected.
* **Base64** (signatures, vkeys, roots) must be *canonical* RFC 4648 §4: padded, no
  whitespace, zero pad bits (i.e. it re-encodes to the same string).
* **Signature count.** At most :data:`MAX_SIGNATURES` (100, as in Go's
  ``golang.org/x/mod/sumdb/note``) signature lines; the spec requires accepting >= 16.
  The count is checked before any verification.
* **Verification.** A signature is *known* when a verifier has the same key name AND
  key ID; others are ignored (but returned in :attr:`Note.sigs`).  Every known
  signature is verified, including repeats, and a single failure rejects the whole
  note (:class:`InvalidSignatureError`; the spec's SHOULD).
* **Key names** must be non-empty with no Unicode white space (``str.isspace``, a
  superset of Unicode ``White_Space``), no ``+`` and - because notes cannot contain
  them - no control characters below U+0020.
* **vkeys** need exactly 8 *lowercase* hex digits for the key ID.
* **Checkpoints** (:func:`parse_checkpoint`): origin non-empty; size ``0`` or ASCII
  digits without a leading zero, at most 2**64-1; root canonical base64 of exactly 32
  bytes (an RFC 6962 SHA-256 root; the spec only says "base64"); every extension line
  non-empty - so a body with trailing blank lines (accepted by transparency-dev/formats)
  is rejected, per tlog-checkpoint "Extension lines, if any, MUST be non-empty".
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "MIN_MAX_SIGNATURES",
    "Checkpoint",
    "InvalidKeyError",
    "InvalidSignatureError",
    "MalformedCheckpointError",
    "MalformedNoteError",
    "Note",
    "NoteError",
    "OriginMismatchError",
    "Signature",
    "SigningError",
    "UnverifiedNoteError",
    "Verifier",
    "add_signature",
    "format_checkpoint",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "parse_verifier_key",
    "sign_note",
    "verifier_key",
]

ALG_ED25519 = 0x01
"""Signature type identifier byte for Ed25519 (signed-note "Signature types")."""

MAX_SIGNATURES = 100
"""Default cap on signature lines in a note (same as Go's sumdb/note)."""

MIN_MAX_SIGNATURES = 16
"""The spec says verifiers MUST accept at least this many signatures."""

SIG_PREFIX = "\u2014 "
"""Start of every signature line: U+2014 EM DASH, U+0020 SPACE."""

UINT64_MAX = 2**64 - 1
ROOT_SIZE = 32
_KEY_ID_SIZE = 4
_ED25519_PUBLIC_SIZE = 32
_ED25519_SIG_SIZE = 64

_FORBIDDEN_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
_DECIMAL = re.compile("0|[1-9][0-9]*")
_HEX8 = re.compile("[0-9a-f]{8}")


# --------------------------------------------------------------------------- errors


class NoteError(ValueError):
    """Base class of every error this module raises for bad notes, keys or checkpoints."""


class MalformedNoteError(NoteError):
    """The note breaks signed-note syntax: not UTF-8, a forbidden control character,
    no blank line before the signatures, a bad signature line, too many signatures,
    or (for :func:`sign_note`) text that does not end in a newline."""


class InvalidKeyError(NoteError):
    """A key name, public key or verifier-key string is malformed, or two verifiers
    share a key name and key ID but not the public key."""


class MalformedCheckpointError(NoteError):
    """A note text is not a checkpoint body acceptable to custody (see module doc)."""


class OriginMismatchError(MalformedCheckpointError):
    """A well-formed checkpoint names a different origin than the one expected."""


class UnverifiedNoteError(NoteError):
    """No signature from a known verifier verified.

    ``signatures`` lists the (unknown) signatures the note carried, for diagnostics.
    The note text itself is deliberately not attached: it must not be used."""

    def __init__(self, message: str, signatures: Sequence[Signature] = ()) -> None:
        super().__init__(message)
        self.signatures: list[Signature] = list(signatures)


class InvalidSignatureError(UnverifiedNoteError):
    """A signature whose key name and key ID match a known verifier failed to verify;
    the whole note is rejected even if other signatures verify."""


class SigningError(NoteError):
    """The signing callable returned something that is not a valid Ed25519 signature of
    the text under the given public key (wrong key, wrong algorithm, or a bug)."""


# --------------------------------------------------------------------------- helpers


def _b64decode_canonical(s: str) -> bytes | None:
    """Decode canonical standard base64, or return None."""
    if not s.isascii():
        return None
    try:
        raw = base64.b64decode(s, validate=True)
    except ValueError:  # binascii.Error is a ValueError
        return None
    if base64.b64encode(raw).decode("ascii") != s:
        return None
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _utf8(s: str) -> bytes | None:
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return None


def _name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid key name, or None."""
    if not isinstance(name, str):
        return "key name must be a str"
    if not name:
        return "key name is empty"
    if "+" in name:
        return "key name contains '+'"
    if any(ch.isspace() for ch in name):
        return "key name contains white space"
    if _FORBIDDEN_CONTROL.search(name):
        return "key name contains a control character"
    if _utf8(name) is None:
        return "key name is not valid Unicode (lone surrogate)"
    return None


def _check_name(name: str) -> None:
    problem = _name_problem(name)
    if problem is not None:
        raise InvalidKeyError(f"{problem}: {name!r}")


def _check_public(public_raw: bytes) -> None:
    if not isinstance(public_raw, bytes) or len(public_raw) != _ED25519_PUBLIC_SIZE:
        raise InvalidKeyError("Ed25519 public key must be 32 bytes")


def _key_id_unchecked(name: str, public_raw: bytes) -> bytes:
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_raw)
    return digest.digest()[:_KEY_ID_SIZE]


def _ed25519_verify(public_raw: bytes, signature: bytes, message: bytes) -> bool:
    if len(signature) != _ED25519_SIG_SIZE:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _text_bytes(text: str, what: str) -> bytes:
    """UTF-8 of ``text`` after checking signed-note character rules."""
    if not isinstance(text, str):
        raise MalformedNoteError(f"{what} must be a str")
    data = _utf8(text)
    if data is None:
        raise MalformedNoteError(f"{what} is not valid Unicode (lone surrogate)")
    m = _FORBIDDEN_CONTROL.search(text)
    if m is not None:
        raise MalformedNoteError(
            f"{what} contains control character U+{ord(m.group()):04X} at offset {m.start()}"
        )
    return data


# --------------------------------------------------------------------------- keys


def key_id(name: str, public_raw: bytes) -> bytes:
    """The 4-byte Ed25519 key ID: ``SHA-256(name || 0x0A || 0x01 || pub)[:4]``."""
    _check_name(name)
    _check_public(public_raw)
    return _key_id_unchecked(name, public_raw)


@dataclass(frozen=True)
class Verifier:
    """A trusted Ed25519 note key.  Construction checks that ``key_id`` matches."""

    name: str
    key_id: bytes
    public_raw: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_public(self.public_raw)
        if not isinstance(self.key_id, bytes) or len(self.key_id) != _KEY_ID_SIZE:
            raise InvalidKeyError("key ID must be 4 bytes")
        if self.key_id != _key_id_unchecked(self.name, self.public_raw):
            raise InvalidKeyError(
                f"key ID {self.key_id.hex()} does not match key name {self.name!r} and public key"
            )

    @classmethod
    def from_public(cls, name: str, public_raw: bytes) -> Verifier:
        """The verifier for ``name`` and a raw 32-byte Ed25519 public key."""
        return cls(name, key_id(name, public_raw), public_raw)

    @property
    def vkey(self) -> str:
        """The verifier-key string (``name+hex8+base64``)."""
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([ALG_ED25519]) + self.public_raw)}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        """True when ``signature`` (without the key ID) is valid for ``text``."""
        return _ed25519_verify(self.public_raw, signature, text)


def verifier_key(name: str, public_raw: bytes) -> str:
    """Encode a verifier key: ``name + "+" + hex8(key ID) + "+" + base64(0x01 || pub)``."""
    return Verifier.from_public(name, public_raw).vkey


def parse_verifier_key(vkey: str) -> Verifier:
    """Parse a verifier-key string; raise :class:`InvalidKeyError` when malformed.

    Rejected: fewer than three ``+``-separated parts; an invalid key name; a key ID
    that is not 8 lowercase hex digits; non-canonical base64; a signature type other
    than 0x01 (Ed25519); a public key that is not 32 bytes; a key ID that does not
    match the name and key.  No surrounding white space is tolerated."""
    if not isinstance(vkey, str):
        raise InvalidKeyError("verifier key must be a str")
    parts = vkey.split("+", 2)  # the name has no '+', base64 may contain '+'
    if len(parts) != 3:
        raise InvalidKeyError("verifier key must be name+keyid+key")
    name, hex_id, b64 = parts
    problem = _name_problem(name)
    if problem is not None:
        raise InvalidKeyError(f"verifier key: {problem}")
    if not _HEX8.fullmatch(hex_id):
        raise InvalidKeyError("verifier key: key ID must be 8 lowercase hex digits")
    material = _b64decode_canonical(b64)
    if material is None or not material:
        raise InvalidKeyError("verifier key: key material is not canonical base64")
    if material[0] != ALG_ED25519:
        raise InvalidKeyError(
            f"verifier key: unsupported signature type 0x{material[0]:02x} (only 0x01 Ed25519)"
        )
    public_raw = material[1:]
    if len(public_raw) != _ED25519_PUBLIC_SIZE:
        raise InvalidKeyError(
            f"verifier key: Ed25519 public key is {len(public_raw)} bytes, expected 32"
        )
    kid = bytes.fromhex(hex_id)
    if kid != _key_id_unchecked(name, public_raw):
        raise InvalidKeyError("verifier key: key ID does not match the name and public key")
    return Verifier(name, kid, public_raw)


# --------------------------------------------------------------------------- notes


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, 4-byte key ID and the signature bytes (without
    the key ID)."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """The signature line, including its final newline."""
        return f"{SIG_PREFIX}{self.name} {_b64(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """An opened note.

    ``text`` includes its final newline.  ``sigs`` holds every signature line in order
    (verified and unknown); ``verified_by`` the distinct verifiers whose signature
    verified (never empty for a note returned by :func:`open_note`)."""

    text: str
    sigs: list[Signature]
    verified_by: list[Verifier]

    @property
    def unverified_sigs(self) -> list[Signature]:
        """Signatures from keys the caller did not supply (ignored per spec)."""
        known = {(v.name, v.key_id) for v in self.verified_by}
        return [s for s in self.sigs if (s.name, s.key_id) not in known]


def _decode_note(note: str | bytes) -> str:
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedNoteError(f"note is not valid UTF-8 (byte offset {e.start})") from e
    elif not isinstance(note, str):
        raise MalformedNoteError("note must be str or bytes")
    _text_bytes(note, "note")
    return note


def _parse_sig_line(line: str) -> Signature:
    if not line.startswith(SIG_PREFIX):
        raise MalformedNoteError(f"signature line does not start with em dash + space: {line!r}")
    name, sep, b64 = line[len(SIG_PREFIX) :].partition(" ")
    if not sep:
        raise MalformedNoteError(f"signature line has no signature: {line!r}")
    problem = _name_problem(name)
    if problem is not None:
        raise MalformedNoteError(f"signature line: {problem}")
    raw = _b64decode_canonical(b64)
    if raw is None:
        raise MalformedNoteError(f"signature line: signature is not canonical base64: {line!r}")
    if len(raw) <= _KEY_ID_SIZE:
        raise MalformedNoteError(f"signature line: signature too short: {line!r}")
    return Signature(name, raw[:_KEY_ID_SIZE], raw[_KEY_ID_SIZE:])


def _split_note(note: str, max_signatures: int) -> tuple[str, list[Signature]]:
    """Split a character-checked note into text and parsed signature lines."""
    split = note.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise MalformedNoteError("note has no signature lines after its last blank line")
    if not block.endswith("\n"):
        raise MalformedNoteError("note does not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > max_signatures:
        raise MalformedNoteError(
            f"note has {len(lines)} signature lines, more than the limit of {max_signatures}"
        )
    return text, [_parse_sig_line(line) for line in lines]


def _verifier_index(verifiers: Sequence[Verifier]) -> dict[tuple[str, bytes], Verifier]:
    index: dict[tuple[str, bytes], Verifier] = {}
    for v in verifiers:
        if not isinstance(v, Verifier):
            raise InvalidKeyError(f"not a Verifier: {v!r}")
        k = (v.name, v.key_id)
        other = index.setdefault(k, v)
        if other.public_raw != v.public_raw:
            raise InvalidKeyError(
                f"two verifiers share key name {v.name!r} and key ID {v.key_id.hex()}"
            )
    return index


def open_note(
    note: str | bytes,
    verifiers: Sequence[Verifier],
    *,
    max_signatures: int = MAX_SIGNATURES,
) -> Note:
    """Parse ``note`` and verify it against trusted ``verifiers``.

    Signatures whose (key name, key ID) match no verifier are ignored.  Raises
    :class:`MalformedNoteError` for syntax/encoding problems (bytes must be UTF-8),
    :class:`InvalidSignatureError` if any known signature fails, and
    :class:`UnverifiedNoteError` if no known signature is present.  ``max_signatures``
    must be at least 16 (the spec's floor)."""
    if max_signatures < MIN_MAX_SIGNATURES:
        raise ValueError(f"max_signatures must be >= {MIN_MAX_SIGNATURES}")
    index = _verifier_index(verifiers)
    text, sigs = _split_note(_decode_note(note), max_signatures)
    message = text.encode("utf-8")
    verified: dict[tuple[str, bytes], Verifier] = {}
    for sig in sigs:
        v = index.get((sig.name, sig.key_id))
        if v is None:
            continue
        if not v.verify(message, sig.signature):
            raise InvalidSignatureError(
                f"signature by {sig.name} ({sig.key_id.hex()}) does not verify", sigs
            )
        verified.setdefault((v.name, v.key_id), v)
    if not verified:
        names = ", ".join(f"{s.name}+{s.key_id.hex()}" for s in sigs)
        raise UnverifiedNoteError(
            f"note has no signature from a known key (signed by {names})", sigs
        )
    return Note(text=text, sigs=sigs, verified_by=list(verified.values()))


def _make_sig(text: str, name: str, sign: Callable[[bytes], bytes], public_raw: bytes) -> Signature:
    message = _text_bytes(text, "note text")
    if not text.endswith("\n"):
        raise MalformedNoteError("note text must end in a newline")
    kid = key_id(name, public_raw)
    sig = sign(message)
    if not isinstance(sig, bytes) or not _ed25519_verify(public_raw, sig, message):
        raise SigningError(
            f"signer for {name!r} did not return a valid Ed25519 signature for its public key"
        )
    return Signature(name, kid, sig)


def sign_note(text: str, name: str, sign: Callable[[bytes], bytes], public_raw: bytes) -> str:
    """Sign ``text`` and return the full note ``text + "\\n" + signature line``.

    ``text`` must end in a newline and obey the note character rules (no control
    characters but newline); it may contain blank lines.  ``sign`` gets the UTF-8 text
    and must return a 64-byte Ed25519 signature valid under ``public_raw`` - this is
    checked, raising :class:`SigningError`."""
    sig = _make_sig(text, name, sign, public_raw)
    return text + "\n" + sig.line()


def add_signature(
    note: str | bytes,
    name: str,
    sign: Callable[[bytes], bytes],
    public_raw: bytes,
    *,
    max_signatures: int = MAX_SIGNATURES,
) -> str:
    """Add (co)signature by ``name`` to an existing note and return the new note.

    The existing signatures are only parsed, NOT verified: open the note with the
    verifiers you trust first.  An existing signature with the same key name and key
    ID is replaced.  Raises :class:`MalformedNoteError` if the result would exceed
    ``max_signatures``."""
    text, sigs = _split_note(_decode_note(note), max_signatures)
    new = _make_sig(text, name, sign, public_raw)
    kept = [s for s in sigs if (s.name, s.key_id) != (new.name, new.key_id)]
    if len(kept) + 1 > max_signatures:
        raise MalformedNoteError(f"note would have more than {max_signatures} signatures")
    return text + "\n" + "".join(s.line() for s in [*kept, new])


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint body.  Construction validates it (:class:`MalformedCheckpointError`).

    ``extensions`` are the optional extension lines, without their newlines."""

    origin: str
    size: int
    root: bytes
    extensions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _validate_checkpoint(self)


def _line_problem(line: object) -> str | None:
    if not isinstance(line, str):
        return "must be a str"
    if not line:
        return "is empty"
    if "\n" in line:
        return "contains a newline"
    if _FORBIDDEN_CONTROL.search(line):
        return "contains a control character"
    if _utf8(line) is None:
        return "is not valid Unicode (lone surrogate)"
    return None


def _validate_checkpoint(cp: Checkpoint) -> None:
    problem = _line_problem(cp.origin)
    if problem is not None:
        raise MalformedCheckpointError(f"checkpoint origin {problem}")
    if isinstance(cp.size, bool) or not isinstance(cp.size, int):
        raise MalformedCheckpointError("checkpoint size must be an int")
    if not 0 <= cp.size <= UINT64_MAX:
        raise MalformedCheckpointError("checkpoint size must fit in an unsigned 64-bit integer")
    if not isinstance(cp.root, bytes) or len(cp.root) != ROOT_SIZE:
        raise MalformedCheckpointError("checkpoint root hash must be 32 bytes")
    if not isinstance(cp.extensions, list):
        raise MalformedCheckpointError("checkpoint extensions must be a list")
    for i, ext in enumerate(cp.extensions):
        problem = _line_problem(ext)
        if problem is not None:
            raise MalformedCheckpointError(f"checkpoint extension line {i + 1} {problem}")


def format_checkpoint(cp: Checkpoint) -> str:
    """The note text ``origin\\nsize\\nbase64(root)\\n`` plus one line per extension."""
    _validate_checkpoint(cp)  # the list of extensions may have been mutated
    lines = [cp.origin, str(cp.size), _b64(cp.root), *cp.extensions]
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body strictly (see module doc); raise
    :class:`MalformedCheckpointError`.  ``text`` is a note text, e.g. ``Note.text``."""
    if not isinstance(text, str):
        raise MalformedCheckpointError("checkpoint must be a str")
    try:
        _text_bytes(text, "checkpoint")
    except MalformedNoteError as e:
        raise MalformedCheckpointError(str(e)) from e
    if not text.endswith("\n"):
        raise MalformedCheckpointError("checkpoint does not end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise MalformedCheckpointError(
            f"checkpoint has {len(lines)} lines, needs origin, size and root hash"
        )
    origin, size_s, root_s, *extensions = lines
    if not origin:
        raise MalformedCheckpointError("checkpoint origin is empty")
    if len(size_s) > len(str(UINT64_MAX)) or not _DECIMAL.fullmatch(size_s):
        raise MalformedCheckpointError(f"checkpoint size is not a canonical decimal: {size_s!r}")
    size = int(size_s)
    if size > UINT64_MAX:
        raise MalformedCheckpointError("checkpoint size does not fit in 64 bits")
    root = _b64decode_canonical(root_s)
    if root is None:
        raise MalformedCheckpointError(f"checkpoint root hash is not canonical base64: {root_s!r}")
    if len(root) != ROOT_SIZE:
        raise MalformedCheckpointError(f"checkpoint root hash is {len(root)} bytes, expected 32")
    for i, ext in enumerate(extensions):
        if not ext:
            raise MalformedCheckpointError(
                f"checkpoint extension line {i + 1} is empty (extension lines must be non-empty)"
            )
    return Checkpoint(origin, size, root, extensions)


def open_checkpoint(
    note: str | bytes,
    origin: str,
    verifiers: Sequence[Verifier],
    *,
    max_signatures: int = MAX_SIGNATURES,
) -> tuple[Checkpoint, Note]:
    """Open a signed checkpoint: verify the note, parse its text and require the
    expected ``origin`` (:class:`OriginMismatchError` otherwise)."""
    opened = open_note(note, verifiers, max_signatures=max_signatures)
    cp = parse_checkpoint(opened.text)
    if cp.origin != origin:
        raise OriginMismatchError(f"checkpoint origin is {cp.origin!r}, expected {origin!r}")
    return cp, opened
