"""Ed25519 identities: key generation, encrypted storage, loading, fingerprints.

A private key file is an encrypted PKCS#8 PEM block preceded by two RFC 7468
explanatory-text lines naming its holder::

    Custody-Name: Dana Reyes
    Custody-Role: collector
    -----BEGIN ENCRYPTED PRIVATE KEY-----
    ...

OpenSSL and pyca/cryptography both skip text before the PEM boundary, so the file
stays a standard key file.  The public key is written beside it as a
SubjectPublicKeyInfo PEM (``.pub``), which is what ``openssl pkey -pubout`` writes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from custody.errors import InsecureKeyError, KeyLoadError, UsageError
from custody.safeio import (
    CAP_KEY,
    CAP_PUBLIC_KEY,
    UnsafeFileError,
    check_output,
    read_input,
    write_atomic,
)

FINGERPRINT_PREFIX = "sha256:"
_NAME_HEADER = "Custody-Name:"
_ROLE_HEADER = "Custody-Role:"


def fingerprint(public_raw: bytes) -> str:
    """``sha256:<hex>`` of the raw 32-byte Ed25519 public key."""
    return FINGERPRINT_PREFIX + hashlib.sha256(public_raw).hexdigest()


def short_fingerprint(fp: str) -> str:
    """The first 16 hex digits of a fingerprint, for tables."""
    return fp.removeprefix(FINGERPRINT_PREFIX)[:16]


def public_key_b64(public_raw: bytes) -> str:
    return base64.b64encode(public_raw).decode("ascii")


def public_key_pem(public_raw: bytes) -> str:
    """SubjectPublicKeyInfo PEM of a raw Ed25519 public key."""
    key = Ed25519PublicKey.from_public_bytes(public_raw)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def verify_signature(public_raw: bytes, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def signature_checker(public_raw: bytes) -> Callable[[bytes, bytes], bool]:
    """:func:`verify_signature` with ``public_raw`` loaded once, for many checks."""
    try:
        key = Ed25519PublicKey.from_public_bytes(public_raw)
    except ValueError:
        return lambda _signature, _message: False

    def check(signature: bytes, message: bytes) -> bool:
        try:
            key.verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    return check


@dataclass(frozen=True)
class Identity:
    """Who signs: name, role and public key."""

    name: str
    role: str
    public_raw: bytes

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint(self.public_raw)

    @property
    def public_b64(self) -> str:
        return public_key_b64(self.public_raw)


class Signer:
    """A loaded private key with the identity it belongs to."""

    def __init__(self, private_key: Ed25519PrivateKey, name: str, role: str) -> None:
        self._key = private_key
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.identity = Identity(name=name, role=role, public_raw=raw)

    @property
    def fingerprint(self) -> str:
        return self.identity.fingerprint

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


def _check_name_role(name: str, role: str) -> None:
    for label, value in (("name", name), ("role", role)):
        if not value.strip():
            raise UsageError(f"key {label} must not be empty")
        if "\n" in value or "\r" in value:
            raise UsageError(f"key {label} must be a single line")


def generate_key(
    name: str, role: str, passphrase: bytes, out: Path, *, overwrite: bool = False
) -> tuple[Signer, Path]:
    """Create an Ed25519 key, write it encrypted (mode 0600) to ``out`` and the
    public key to ``out`` with suffix ``.pub``.  Returns the signer and .pub path."""
    _check_name_role(name, role)
    if len(passphrase) == 0:
        raise UsageError("refusing to write a private key with an empty passphrase")
    pub_path = out.with_suffix(".pub") if out.suffix == ".pem" else Path(str(out) + ".pub")
    for p in (out, pub_path):
        check_output(p, "key file")  # a folder that exists; a new name or a regular file
        if os.path.lexists(p) and not overwrite:
            raise UsageError(f"{p} already exists; refusing to overwrite a key file")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    text = f"{_NAME_HEADER} {name}\n{_ROLE_HEADER} {role}\n".encode() + pem
    write_atomic(out, text, mode=0o600, what="key file", replace=overwrite)
    signer = Signer(key, name, role)
    pub = public_key_pem(signer.identity.public_raw).encode("ascii")
    write_atomic(pub_path, pub, mode=0o644, what="public key file", replace=overwrite)
    return signer, pub_path


def _parse_headers(text: str) -> tuple[str, str]:
    name = role = ""
    for line in text.splitlines():
        if line.startswith("-----BEGIN"):
            break
        if line.startswith(_NAME_HEADER):
            name = line[len(_NAME_HEADER) :].strip()
        elif line.startswith(_ROLE_HEADER):
            role = line[len(_ROLE_HEADER) :].strip()
    return name, role


def load_signer(path: Path, passphrase: bytes | None, *, insecure: bool = False) -> Signer:
    """Load a private key file, refusing unencrypted or group/world-readable keys
    unless ``insecure``.  Raises KeyLoadError / InsecureKeyError with one clear line."""
    try:
        data, st = read_input(path, "key file", CAP_KEY)
    except UnsafeFileError as e:
        raise KeyLoadError(e.message) from None
    if st.st_mode & 0o077 and not insecure:
        raise InsecureKeyError(
            f"key file {path} is readable by group or others (mode {stat.S_IMODE(st.st_mode):04o});"
            " run 'chmod 600' on it or pass --insecure-key"
        )
    text = data.decode("utf-8", errors="replace")
    encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----" in text
    if "PRIVATE KEY-----" not in text:
        raise KeyLoadError(f"{path} does not contain a PEM private key")
    if not encrypted and not insecure:
        raise InsecureKeyError(
            f"key file {path} is not encrypted; refusing it without --insecure-key"
        )
    try:
        key = serialization.load_pem_private_key(data, passphrase if encrypted else None)
    except TypeError:
        raise KeyLoadError(f"a passphrase is needed to unlock {path}") from None
    except ValueError as e:
        msg = str(e).lower()
        # a wrong passphrase now and then "decrypts" to bytes that pass the padding
        # check and then fail as ASN.1: for an encrypted key, that is the passphrase too
        if "password" in msg or "decrypt" in msg or (encrypted and "asn.1" in msg):
            raise KeyLoadError(f"wrong passphrase for key {path}") from None
        raise KeyLoadError(f"cannot load key {path}: {e}") from None
    except UnsupportedAlgorithm as e:
        raise KeyLoadError(f"unsupported key in {path}: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyLoadError(f"{path} is not an Ed25519 key")
    name, role = _parse_headers(text)
    if not name:
        name = path.stem
    return Signer(key, name, role or "unspecified")


def load_public_key(path: Path) -> bytes:
    """Raw 32-byte Ed25519 public key from a SubjectPublicKeyInfo PEM file."""
    try:
        data, _ = read_input(path, "public key file", CAP_PUBLIC_KEY)
    except UnsafeFileError as e:
        raise KeyLoadError(e.message) from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise KeyLoadError(f"{path} is not a PEM public key: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyLoadError(f"{path} is not an Ed25519 public key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
