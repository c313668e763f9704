"""custody.timestamp: RFC 3161 tokens from a local ``openssl ts`` TSA and the real
Sigstore staging TSA responses in tests/vectors/rfc3161_sigstage/.  No network
except 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tsa_helper
from conftest import VECTORS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tsa_helper import POLICY, TSA, HttpStub, LocalTSA, Pki, make_ca, needs_openssl, openssl

from custody import errors
from custody.timestamp import (
    TimestampConfigError,
    TimestampError,
    TimestampInfo,
    TimestampVerificationError,
    TSAResponseError,
    TSAUnavailableError,
    build_request,
    later_than_token,
    request_token,
    verify_token,
)

# The local TSA fixtures (by assignment, so pytest finds them and ruff sees them used).
local_pki = tsa_helper.local_pki
local_tsa_server = tsa_helper.local_tsa_server
local_tsa = tsa_helper.local_tsa

HELLO = b"hello"
HELLO_SHA256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


# --------------------------------------------------------------------------- helpers


def sigstage() -> Path:
    return VECTORS / "rfc3161_sigstage"


def sigstage_chain() -> tuple[bytes, bytes]:
    """(leaf PEM, root PEM) split from ts_chain.pem."""
    text = (sigstage() / "ts_chain.pem").read_bytes()
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", text, re.S)
    assert len(blocks) == 2
    return blocks[0], blocks[1]


def fresh_root(tmp_path: Path) -> bytes:
    return make_ca(tmp_path / "other-ca", "some other root")[1].read_bytes()


def flip(data: bytes, index: int) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x01
    return bytes(b)


def free_closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def raises_verification(match: str, *args: object, **kwargs: object) -> TimestampVerificationError:
    with pytest.raises(TimestampVerificationError, match=match) as exc:
        verify_token(*args, **kwargs)  # type: ignore[arg-type]
    return exc.value


@pytest.fixture
def token(local_tsa: TSA) -> bytes:
    """A fresh token over HELLO from the local TSA."""
    return request_token(local_tsa.url, HELLO, timeout=10)


# --------------------------------------------------------------------------- request


@needs_openssl
def test_build_request_is_sha256_with_nonce_and_cert_req(tmp_path: Path) -> None:
    req = tmp_path / "req.tsq"
    req.write_bytes(build_request(HELLO))
    text = openssl("ts", "-query", "-in", req, "-text").stdout.decode()
    assert "Hash Algorithm: sha256" in text
    assert "Certificate required: yes" in text
    assert re.search(r"Nonce: 0x[0-9A-F]+", text)
    digest = re.search(r"Message data:\n(.*?)\n\s*Policy", text, re.S)
    assert digest is not None
    hexes = "".join(re.findall(r"\b[0-9a-f]{2}\b", digest.group(1)))
    assert HELLO_SHA256 in hexes
    assert build_request(HELLO) != build_request(HELLO)  # fresh nonce each time


def test_build_request_refuses_empty_data() -> None:
    with pytest.raises(ValueError):
        build_request(b"")


# --------------------------------------------------------------------------- local TSA


def test_request_and_verify_against_local_tsa(local_tsa_server: LocalTSA, token: bytes) -> None:
    tsa = local_tsa_server
    info = verify_token(token, HELLO, [tsa.pki.ca_pem])
    assert isinstance(info, TimestampInfo)
    assert info.gen_time.tzinfo is not None and info.gen_time.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - info.gen_time) < timedelta(minutes=2)
    assert info.policy == POLICY
    assert isinstance(info.serial, int) and info.serial >= 1
    assert info.hash_algorithm == "sha256"
    assert info.imprint.hex() == HELLO_SHA256
    assert isinstance(info.nonce, int)
    assert info.accuracy == timedelta(seconds=1)
    assert "CN=custody test TSA" in info.tsa_name
    assert "CN=custody test TSA" in info.signer_subject
    assert len(tsa.queries) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.serial = 0  # type: ignore[misc]


def test_each_request_gets_a_new_serial(local_tsa: TSA) -> None:
    a = verify_token(request_token(local_tsa.url, HELLO), HELLO, [local_tsa.ca_pem])
    b = verify_token(request_token(local_tsa.url, HELLO), HELLO, [local_tsa.ca_pem])
    assert a.serial != b.serial and a.nonce != b.nonce


def test_openssl_accepts_what_we_got(local_tsa: TSA, token: bytes, tmp_path: Path) -> None:
    """Independent check: stock ``openssl ts -verify`` accepts the stored token."""
    (tmp_path / "data").write_bytes(HELLO)
    (tmp_path / "resp.tsr").write_bytes(token)
    (tmp_path / "ca.crt").write_bytes(local_tsa.ca_pem)
    (tmp_path / "tsa.crt").write_bytes(local_tsa.tsa_pem)
    out = openssl(
        "ts",
        "-verify",
        "-data",
        tmp_path / "data",
        "-in",
        tmp_path / "resp.tsr",
        "-CAfile",
        tmp_path / "ca.crt",
        "-untrusted",
        tmp_path / "tsa.crt",
    )
    assert b"Verification: OK" in out.stdout
    (tmp_path / "other").write_bytes(b"hellO")
    bad = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-data",
            str(tmp_path / "other"),
            "-in",
            str(tmp_path / "resp.tsr"),
            "-CAfile",
            str(tmp_path / "ca.crt"),
            "-untrusted",
            str(tmp_path / "tsa.crt"),
        ],
        capture_output=True,
    )
    assert bad.returncode != 0


def test_roots_may_be_a_bundle_and_intermediates_may_repeat_them(
    local_tsa: TSA, token: bytes, tmp_path: Path
) -> None:
    bundle = fresh_root(tmp_path) + local_tsa.ca_pem
    assert verify_token(token, HELLO, [bundle]).hash_algorithm == "sha256"
    assert (
        verify_token(
            token,
            HELLO,
            [local_tsa.ca_pem],
            intermediates_pem=[local_tsa.tsa_pem, local_tsa.ca_pem],
        ).serial
        >= 1
    )


def test_nonce_checked_when_given(token: bytes, local_tsa: TSA) -> None:
    info = verify_token(token, HELLO, [local_tsa.ca_pem])
    assert info.nonce is not None
    assert verify_token(token, HELLO, [local_tsa.ca_pem], nonce=info.nonce) == info
    raises_verification("nonce", token, HELLO, [local_tsa.ca_pem], nonce=info.nonce + 1)


# --------------------------------------------------------------------------- rejections


def test_rejects_other_data(local_tsa: TSA, token: bytes) -> None:
    raises_verification("not over this data", token, b"hellO", [local_tsa.ca_pem])
    raises_verification("not over this data", token, HELLO + b"\n", [local_tsa.ca_pem])


def test_rejects_token_under_a_different_root(local_tsa: TSA, token: bytes, tmp_path: Path) -> None:
    raises_verification("does not chain to a trusted root", token, HELLO, [fresh_root(tmp_path)])


def test_rejects_leaf_alone_as_trust_anchor(local_tsa: TSA, token: bytes) -> None:
    """Trusting the TSA certificate itself is not enough: the path must end at a root."""
    raises_verification("does not chain to a trusted root", token, HELLO, [local_tsa.tsa_pem])


def test_an_intermediate_is_never_a_trust_anchor(
    local_tsa: TSA, token: bytes, tmp_path: Path
) -> None:
    """rfc3161-client puts roots and intermediates into one OpenSSL store, so a
    self-signed certificate passed as an *intermediate* would be trusted; our own
    path check refuses that."""
    raises_verification(
        "does not chain to a trusted root",
        token,
        HELLO,
        [fresh_root(tmp_path)],
        intermediates_pem=[local_tsa.ca_pem],
    )


def test_rejects_flipped_signature_byte(local_tsa: TSA, token: bytes) -> None:
    # The signature is the last field of the token (no unsigned attributes).
    for i in (len(token) - 1, len(token) - 5, len(token) - 20):
        raises_verification(
            "signature is invalid|malformed", flip(token, i), HELLO, [local_tsa.ca_pem]
        )


def test_rejects_altered_gen_time(local_tsa: TSA, token: bytes) -> None:
    info = verify_token(token, HELLO, [local_tsa.ca_pem])
    stamp = info.gen_time.strftime("%Y%m%d%H%M%S").encode()
    i = token.index(stamp)
    # one second later (carried into the minute, hour, ... as a clock would: replacing only
    # the seconds digits turned :59 into :00, a minute before the fresh TSA certificate
    # existed, and the check refused the certificate before the signature): the
    # certificate is valid then, the signature is not
    later = (info.gen_time + timedelta(seconds=1)).strftime("%Y%m%d%H%M%S").encode()
    moved = bytearray(token)
    moved[i : i + 14] = later
    raises_verification("signature is invalid", bytes(moved), HELLO, [local_tsa.ca_pem])
    # four years earlier (a 29 February stays a date): before the TSA certificate existed,
    # refused before the signature
    earlier = bytearray(token)
    earlier[i : i + 4] = str(info.gen_time.year - 4).encode()
    raises_verification("not valid at its time", bytes(earlier), HELLO, [local_tsa.ca_pem])


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x00",
        b"hello",
        b"\x30\x03\x02\x01\x00",
        b"\x30\x82\xff\xff" + b"\x00" * 16,
        bytes(range(256)),
    ],
)
def test_rejects_garbage(garbage: bytes, tmp_path: Path) -> None:
    raises_verification("malformed", garbage, HELLO, [sigstage_chain()[1]])


def test_rejects_truncated(local_tsa: TSA, token: bytes) -> None:
    for n in (1, 10, len(token) // 2, len(token) - 1):
        raises_verification("malformed", token[:n], HELLO, [local_tsa.ca_pem])


def test_rejects_trailing_bytes(local_tsa: TSA, token: bytes) -> None:
    raises_verification("malformed", token + b"\x00", HELLO, [local_tsa.ca_pem])


def test_rejects_non_granted_response(local_pki: Pki, tmp_path: Path) -> None:
    rejection = _rejection(local_pki, tmp_path)
    raises_verification("not granted: rejection", rejection, HELLO, [local_pki.ca_pem])


def test_bad_trust_configuration(token: bytes, local_tsa: TSA) -> None:
    with pytest.raises(TimestampConfigError, match="no trusted"):
        verify_token(token, HELLO, [])
    with pytest.raises(TimestampConfigError, match="not a PEM"):
        verify_token(token, HELLO, [b"not a certificate"])
    with pytest.raises(TimestampConfigError, match="not a PEM"):
        verify_token(token, HELLO, [local_tsa.ca_pem], intermediates_pem=[b"junk"])


def test_error_hierarchy_and_exit_codes() -> None:
    for cls in (
        TSAUnavailableError,
        TSAResponseError,
        TimestampVerificationError,
        TimestampConfigError,
    ):
        assert issubclass(cls, TimestampError)
    assert issubclass(TimestampError, Exception)
    assert issubclass(TimestampError, errors.CustodyError)
    assert TimestampVerificationError("x").exit_code == errors.EXIT_INTEGRITY
    assert TSAUnavailableError("x").exit_code == errors.EXIT_OPERATIONAL
    assert TSAResponseError("x").exit_code == errors.EXIT_OPERATIONAL
    assert TimestampConfigError("x").exit_code == errors.EXIT_USAGE
    assert str(TimestampVerificationError("one line")) == "one line"


# --------------------------------------------------------------------------- TSA failures


def test_unreachable_tsa_fails_fast() -> None:
    url = f"http://127.0.0.1:{free_closed_port()}/tsa"
    t0 = time.monotonic()
    with pytest.raises(TSAUnavailableError, match="cannot reach TSA") as exc:
        request_token(url, HELLO, timeout=2)
    assert time.monotonic() - t0 < 2
    assert "\n" not in str(exc.value)


def test_credentials_in_url_stay_out_of_messages() -> None:
    url = f"http://alice:s3cret@127.0.0.1:{free_closed_port()}/tsa"
    with pytest.raises(TSAUnavailableError) as exc:
        request_token(url, HELLO, timeout=2)
    assert "s3cret" not in str(exc.value) and "alice" not in str(exc.value)
    assert "127.0.0.1" in str(exc.value)


def test_silent_tsa_times_out() -> None:
    with socket.socket() as listener:  # accepts the connection (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        t0 = time.monotonic()
        with pytest.raises(TSAUnavailableError, match="did not answer within"):
            request_token(url, HELLO, timeout=0.5)
        assert time.monotonic() - t0 < 5


@pytest.fixture
def stub() -> Iterator[list[HttpStub]]:
    servers: list[HttpStub] = []
    yield servers
    for s in servers:
        s.close()


def serve(
    stub: list[HttpStub], status: int, body: bytes, ctype: str = "application/timestamp-reply"
) -> str:
    server = HttpStub(lambda _query: (status, ctype, body))
    stub.append(server)
    return server.url


def test_http_error_status(stub: list[HttpStub]) -> None:
    with pytest.raises(TSAUnavailableError, match="HTTP 503"):
        request_token(serve(stub, 503, b"busy", "text/plain"), HELLO, timeout=5)


def test_tsa_sends_garbage(stub: list[HttpStub]) -> None:
    with pytest.raises(TSAResponseError, match="malformed"):
        request_token(serve(stub, 200, b"<html>hello</html>", "text/html"), HELLO, timeout=5)


def test_tsa_sends_too_much(stub: list[HttpStub]) -> None:
    with pytest.raises(TSAResponseError, match="more than"):
        request_token(serve(stub, 200, b"\x00" * (2 << 20)), HELLO, timeout=5)


def test_tsa_rejects(stub: list[HttpStub], local_pki: Pki, tmp_path: Path) -> None:
    url = serve(stub, 200, _rejection(local_pki, tmp_path))
    with pytest.raises(TSAResponseError, match="not granted: rejection"):
        request_token(url, HELLO, timeout=5)


def test_tsa_replays_an_old_answer(stub: list[HttpStub], token: bytes) -> None:
    with pytest.raises(TSAResponseError, match="different nonce"):
        request_token(serve(stub, 200, token), HELLO, timeout=5)
    with pytest.raises(TSAResponseError, match="other data"):
        request_token(serve(stub, 200, token), b"other bytes", timeout=5)


def test_bad_url() -> None:
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/", "127.0.0.1:1234", "http://"):
        with pytest.raises(TimestampConfigError, match="http"):
            request_token(url, HELLO, timeout=1)


def _rejection(pki: Pki, tmp_path: Path) -> bytes:
    """A real PKIStatus 'rejection' from openssl ts -reply (it refuses SHA-1)."""
    (tmp_path / "d").write_bytes(HELLO)
    openssl("ts", "-query", "-data", tmp_path / "d", "-sha1", "-out", tmp_path / "q.tsq")
    openssl(
        "ts",
        "-reply",
        "-config",
        pki.config,
        "-queryfile",
        tmp_path / "q.tsq",
        "-out",
        tmp_path / "r.tsr",
    )
    return (tmp_path / "r.tsr").read_bytes()


# --------------------------------------------------------------------------- sigstage


@pytest.mark.parametrize(
    "name, algo",
    [
        ("response-sha256.tsr", "sha256"),
        ("response-sha384.tsr", "sha384"),
        ("response-sha512.tsr", "sha512"),
    ],
)
def test_sigstage_responses_verify(name: str, algo: str) -> None:
    leaf, root = sigstage_chain()
    der = (sigstage() / name).read_bytes()
    info = verify_token(der, HELLO, [root])
    assert info.hash_algorithm == algo
    assert info.imprint == hashlib.new(algo, HELLO).digest()
    assert info.policy == "1.3.6.1.4.1.57264.2"
    assert info.gen_time.date().isoformat() == "2025-05-09"
    assert info.accuracy == timedelta(seconds=1)
    assert info.signer_subject == "CN=sigstore-tsa,O=sigstore.dev"
    # the whole ts_chain.pem as root bundle, and the leaf as intermediate, also work
    assert verify_token(der, HELLO, [leaf + root]) == info
    assert verify_token(der, HELLO, [root], intermediates_pem=[leaf]) == info
    raises_verification("not over this data", der, b"hellO", [root])


def test_sigstage_sha256_known_answer() -> None:
    info = verify_token(
        (sigstage() / "response-sha256.tsr").read_bytes(), HELLO, [sigstage_chain()[1]]
    )
    assert info.gen_time == datetime(2025, 5, 9, 11, 58, 55, tzinfo=UTC)
    assert info.serial == 0x784B4C5E57AAA63B570F15CBA4DF95251668AE9E
    assert info.imprint.hex() == HELLO_SHA256
    assert info.tsa_name == "CN=sigstore-tsa,O=sigstore.dev"


def test_sigstage_no_embedded_cert_needs_the_tsa_certificate() -> None:
    leaf, root = sigstage_chain()
    der = (sigstage() / "response-no-embedded-cert.tsr").read_bytes()
    raises_verification("neither embedded in it nor given", der, HELLO, [root])
    info = verify_token(der, HELLO, [root], intermediates_pem=[leaf])
    assert info.signer_subject == "CN=sigstore-tsa,O=sigstore.dev"
    assert info.gen_time.date().isoformat() == "2025-06-18"


def test_sigstage_corrupted_signature_rejected() -> None:
    leaf, root = sigstage_chain()
    der = (sigstage() / "response-invalid-signature.tsr").read_bytes()
    raises_verification("signature is invalid", der, HELLO, [root])
    raises_verification("signature is invalid", der, HELLO, [root], intermediates_pem=[leaf])


def test_sigstage_untrusted_root(tmp_path: Path) -> None:
    leaf, _root = sigstage_chain()
    der = (sigstage() / "response-sha256.tsr").read_bytes()
    raises_verification("does not chain to a trusted root", der, HELLO, [fresh_root(tmp_path)])
    raises_verification("does not chain to a trusted root", der, HELLO, [leaf])


def test_local_token_not_trusted_under_sigstage_root(token: bytes) -> None:
    raises_verification("does not chain to a trusted root", token, HELLO, [sigstage_chain()[1]])


# --------------------------------------------------------------------------- later_than_token


def _info(gen_time: datetime, accuracy: timedelta | None = None) -> TimestampInfo:
    return TimestampInfo(
        gen_time=gen_time,
        serial=1,
        policy="1.2.3",
        tsa_name="t",
        signer_subject="t",
        hash_algorithm="sha256",
        imprint=b"",
        nonce=None,
        accuracy=accuracy,
    )


def test_later_than_token() -> None:
    t = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    info = _info(t)
    assert not later_than_token(t, info)
    assert not later_than_token(t - timedelta(days=3), info)  # stamped later: normal
    assert not later_than_token(t + timedelta(minutes=5), info)
    assert later_than_token(t + timedelta(minutes=5, seconds=1), info)
    assert later_than_token(t + timedelta(seconds=2), info, tolerance=timedelta(seconds=1))
    assert not later_than_token(t, info, tolerance=timedelta(0))
    # other time zones compare by instant
    from datetime import timezone

    plus2 = timezone(timedelta(hours=2))
    assert not later_than_token(datetime(2026, 11, 27, 14, 4, 0, tzinfo=plus2), info)
    assert later_than_token(datetime(2026, 11, 27, 14, 6, 0, tzinfo=plus2), info)


def test_later_than_token_allows_the_declared_accuracy() -> None:
    t = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    info = _info(t, accuracy=timedelta(seconds=30))
    assert not later_than_token(t + timedelta(minutes=5, seconds=30), info)
    assert later_than_token(t + timedelta(minutes=5, seconds=31), info)


def test_later_than_token_needs_aware_times() -> None:
    info = _info(datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC))
    with pytest.raises(ValueError, match="timezone-aware"):
        later_than_token(datetime(2026, 11, 27, 12, 0, 0), info)
    with pytest.raises(ValueError, match="negative"):
        later_than_token(info.gen_time, info, tolerance=timedelta(seconds=-1))


def test_later_than_real_token() -> None:
    info = verify_token(
        (sigstage() / "response-sha256.tsr").read_bytes(), HELLO, [sigstage_chain()[1]]
    )
    assert later_than_token(datetime(2025, 5, 9, 12, 30, tzinfo=UTC), info)
    assert not later_than_token(datetime(2025, 5, 9, 11, 58, 0, tzinfo=UTC), info)


# --------------------------------------------------------------------------- fuzz


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_only_raise_timestamp_error(data: bytes) -> None:
    root = sigstage_chain()[1]
    with pytest.raises(TimestampError):
        verify_token(data, HELLO, [root])


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_token_only_raises_timestamp_error(data: st.DataObject) -> None:
    """Byte flips, truncations and insertions in a real token either leave it verifying
    to the same result or raise a TimestampError - never anything else."""
    leaf, root = sigstage_chain()
    der = (sigstage() / "response-sha256.tsr").read_bytes()
    good = verify_token(der, HELLO, [root])
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "set"]))
    i = data.draw(st.integers(0, len(der) - 1))
    if kind == "flip":
        mutated = (
            flip(der, i)
            if data.draw(st.booleans())
            else bytes(b ^ (0xFF if j == i else 0) for j, b in enumerate(der))
        )
    elif kind == "truncate":
        mutated = der[:i]
    elif kind == "insert":
        mutated = der[:i] + data.draw(st.binary(min_size=1, max_size=8)) + der[i:]
    else:
        mutated = der[:i] + bytes([data.draw(st.integers(0, 255))]) + der[i + 1 :]
    try:
        info = verify_token(mutated, HELLO, [root], intermediates_pem=[leaf])
    except TimestampError:
        return
    assert info == good
