"""Known-answer tests against public vectors written by others:
RFC 8032 Ed25519 (section 7.1), RFC 8410 key encodings, RFC 8785 JSON
canonicalization, and RFC 3339 nanosecond timestamps."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import VECTORS
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from custody.canonical import (
    NonCanonicalValueError,
    canonical_json,
    canonical_json_any,
    rfc3339_ns,
)
from custody.keys import (
    Signer,
    fingerprint,
    public_key_pem,
    verify_signature,
)

# Ed25519 group order (RFC 8032 section 5.1)
L = 2**252 + 27742317777372353535851937790883648493


def _ed25519() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / "ed25519_rfc8032.json").read_text())
    return data


def _ed25519_vectors() -> list[Any]:
    return [pytest.param(v, id=v["name"]) for v in _ed25519()["vectors"]]


def _flip(b: bytes, bit: int) -> bytes:
    out = bytearray(b)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# -- RFC 8032 ---------------------------------------------------------------------------


def test_ed25519_vector_file_has_the_five_rfc_tests() -> None:
    names = [v["name"] for v in _ed25519()["vectors"]]
    assert len(names) == 5
    assert all(n.startswith("RFC 8032 s7.1 TEST") for n in names)


@pytest.mark.parametrize("vec", _ed25519_vectors())
def test_ed25519_rfc8032(vec: dict[str, str]) -> None:
    seed = bytes.fromhex(vec["secret_key"])
    public = bytes.fromhex(vec["public_key"])
    message = bytes.fromhex(vec["message"])
    signature = bytes.fromhex(vec["signature"])

    signer = Signer(Ed25519PrivateKey.from_private_bytes(seed), "RFC 8032", "vector")
    assert signer.identity.public_raw == public
    assert signer.identity.name == "RFC 8032" and signer.identity.role == "vector"
    assert signer.fingerprint == "sha256:" + hashlib.sha256(public).hexdigest()
    assert signer.identity.public_b64 == base64.b64encode(public).decode()
    assert signer.sign(message) == signature  # Ed25519 is deterministic

    assert verify_signature(public, signature, message)
    # flip any bit of the signature -> reject (a sample of bits across R and S)
    for bit in (0, 7, 100, 255, 256, 300, 511):
        assert not verify_signature(public, _flip(signature, bit), message), bit
    # flip a bit of the message -> reject
    other = _flip(message, 0) if message else b"\x00"
    assert not verify_signature(public, signature, other)
    # S replaced by S + L (non-canonical) -> reject
    s = int.from_bytes(signature[32:], "little")
    assert s < L
    assert not verify_signature(public, signature[:32] + (s + L).to_bytes(32, "little"), message)
    # wrong public key -> reject
    wrong = Signer(Ed25519PrivateKey.from_private_bytes(bytes(32)), "x", "y").identity.public_raw
    assert not verify_signature(wrong, signature, message)
    # malformed input is a rejection, not an exception
    assert not verify_signature(public[:31], signature, message)
    assert not verify_signature(public, signature[:63], message)


def test_rfc8410_key_encodings() -> None:
    enc = _ed25519()["rfc8410_key_encodings"]
    spki = base64.b64decode(enc["ed25519_public_key_spki_der_b64"])
    pkcs8 = base64.b64decode(enc["ed25519_private_key_pkcs8_der_b64"])
    raw_public = spki[-32:]
    assert spki[:-32] == bytes.fromhex("302a300506032b6570032100")

    key = serialization.load_der_private_key(pkcs8, None)
    assert isinstance(key, Ed25519PrivateKey)
    signer = Signer(key, "RFC 8410", "vector")
    assert signer.identity.public_raw == raw_public
    assert fingerprint(raw_public) == "sha256:" + hashlib.sha256(raw_public).hexdigest()

    pem = public_key_pem(raw_public)
    b64 = base64.b64encode(spki).decode()
    assert pem == f"-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n"


# -- RFC 8785 ------------------------------------------------------------------------------

JCS_NAMES = ["arrays", "french", "structures", "unicode", "values", "weird"]
JCS_WITH_FLOATS = {"structures", "values"}  # 56.0, 4.50, 1E30 ... parse as floats


def _jcs(name: str) -> tuple[Any, bytes]:
    d = VECTORS / "jcs_rfc8785"
    value = json.loads((d / "input" / f"{name}.json").read_text(encoding="utf-8"))
    expected = (d / "output" / f"{name}.json").read_bytes()
    assert bytes.fromhex((d / "outhex" / f"{name}.txt").read_text()) == expected
    return value, expected


def test_jcs_vector_set_is_complete() -> None:
    d = VECTORS / "jcs_rfc8785"
    assert sorted(p.stem for p in (d / "input").glob("*.json")) == JCS_NAMES
    assert "19d51d7fe467d4706a3ff08adf8a748f29fc21e0" in (d / "SOURCE.txt").read_text()


@pytest.mark.parametrize("name", JCS_NAMES)
def test_jcs_rfc8785(name: str) -> None:
    value, expected = _jcs(name)
    assert canonical_json_any(value) == expected
    # canonical output is a fixed point
    assert canonical_json_any(json.loads(expected)) == expected
    if name in JCS_WITH_FLOATS:
        with pytest.raises(NonCanonicalValueError):
            canonical_json(value)
    else:
        assert canonical_json(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        0.5,
        float("inf"),
        {"a": [1, 2, {"b": 2.5}]},
        2**53,
        -(2**53),
        2**64,
        {"n": [2**53]},
        {1: "non-string key"},
        {"bytes": b"raw"},
    ],
    ids=repr,
)
def test_canonical_json_rejects_non_canonical_values(value: Any) -> None:
    with pytest.raises(NonCanonicalValueError):
        canonical_json(value)


def test_canonical_json_accepts_exact_integers() -> None:
    assert canonical_json([2**53 - 1, -(2**53 - 1), 0, True, None]) == (
        b"[9007199254740991,-9007199254740991,0,true,null]"
    )
    assert canonical_json({"b": 1, "a": "\u20ac", "": []}) == '{"":[],"a":"€","b":1}'.encode()


# -- RFC 3339 with nanoseconds ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "1970-01-01T00:00:00.000000000Z"),
        (1, "1970-01-01T00:00:00.000000001Z"),
        (999_999_999, "1970-01-01T00:00:00.999999999Z"),
        (1_000_000_000, "1970-01-01T00:00:01.000000000Z"),
        # 1795780721 s = 20784 days + 43121 s; day 20784 = 2026-01-01 (day 20454) + 330
        # = 27 November 2026; 43121 s = 11:58:41
        (1795780721350616522, "2026-11-27T11:58:41.350616522Z"),
        # 2000-02-29 (leap day of a century leap year): 11016 days * 86400
        (951_782_400_000_000_000, "2000-02-29T00:00:00.000000000Z"),
        (951_868_799_999_999_999, "2000-02-29T23:59:59.999999999Z"),
        (2**31 * 10**9, "2038-01-19T03:14:08.000000000Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
    ],
)
def test_rfc3339_ns_known_answers(ns: int, text: str) -> None:
    assert rfc3339_ns(ns) == text


def _civil(ns: int) -> str:
    """Independent reference: H. Hinnant's civil_from_days."""
    secs, frac = divmod(ns, 10**9)
    days, sod = divmod(secs, 86400)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y += m <= 2
    hh, rem = divmod(sod, 3600)
    mm, ss = divmod(rem, 60)
    return f"{y:04d}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{frac:09d}Z"


MAX_NS = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()) * 10**9 + 999_999_999


@given(st.integers(min_value=0, max_value=MAX_NS))
def test_rfc3339_ns_matches_civil_calendar(ns: int) -> None:
    assert rfc3339_ns(ns) == _civil(ns)


# -- the canonical_json fast path agrees with the rfc8785 package ---------------------

import rfc8785  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_json_values)
def test_canonical_json_equals_rfc8785(value: object) -> None:
    from custody.canonical import canonical_json

    try:
        expected = rfc8785.dumps(value)
    except Exception:  # rfc8785 refuses lone surrogates; so must we
        import pytest

        from custody.canonical import NonCanonicalValueError

        with pytest.raises(NonCanonicalValueError):
            canonical_json(value)
        return
    assert canonical_json(value) == expected
