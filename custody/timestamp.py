"""Trusted time: RFC 3161 time-stamp tokens over checkpoint bytes.

A time-stamp authority (TSA) signs ``(hash of our bytes, its clock's time)``.  Holding
such a token proves the bytes existed no later than that time, without trusting our
own clock or key holders.

* :func:`build_request` - a DER ``TimeStampReq`` (SHA-256 imprint, random nonce,
  ``certReq`` true so the TSA embeds its certificate);
* :func:`request_token` - POST it to a TSA over HTTP(S) and return the DER
  ``TimeStampResp`` after checking that it answers *this* request (granted, same
  imprint, same nonce).  Store the returned bytes as they are;
* :func:`verify_token` - full offline verification against trusted root certificates;
  returns a :class:`TimestampInfo`;
* :func:`later_than_token` - whether a stated time is later than the token allows.

Parsing and the CMS signature and certificate-path checks are done by
``rfc3161-client`` (which uses OpenSSL): the path is validated *at the token's genTime*,
so a token stays verifiable after the TSA certificate expires; revocation (CRL/OCSP) is
not checked.  On top of it this module checks the status, the message imprint against
the data (SHA-256, SHA-384 or SHA-512, whichever the token names), and independently
that the signer certificate chains to one of the given roots.

Errors: every failure raises a :class:`TimestampError` subclass carrying one line of
text; they are :class:`custody.errors.CustodyError` subclasses, so the CLI maps them
to exit codes (unreachable TSA 3, bad token 1, bad trust configuration 2).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimeStampRequest,
    TimestampRequestBuilder,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from custody.errors import CustodyError, IntegrityError, OperationalError, UsageError

__all__ = [
    "MAX_RESPONSE_BYTES",
    "TSAResponseError",
    "TSAUnavailableError",
    "TimestampConfigError",
    "TimestampError",
    "TimestampInfo",
    "TimestampVerificationError",
    "build_request",
    "later_than_token",
    "request_token",
    "verify_token",
]

MAX_RESPONSE_BYTES = 1 << 20
"""A TimeStampResp is a few kilobytes; anything above 1 MiB is refused."""

_CONTENT_TYPE = "application/timestamp-query"
_HASHES = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_MAX_CHAIN = 8


# --------------------------------------------------------------------------- errors


class TimestampError(CustodyError):
    """Base class of every error raised by this module."""


class TSAUnavailableError(TimestampError, OperationalError):
    """The TSA could not be reached or answered with an HTTP error (exit 3)."""

    exit_code = OperationalError.exit_code


class TSAResponseError(TimestampError, OperationalError):
    """The TSA answered, but not with a granted token for our request (exit 3)."""

    exit_code = OperationalError.exit_code


class TimestampVerificationError(TimestampError, IntegrityError):
    """A stored token is malformed, forged, untrusted or not over the data (exit 1)."""

    exit_code = IntegrityError.exit_code


class TimestampConfigError(TimestampError, UsageError):
    """The trusted roots or intermediates given are unusable (exit 2)."""

    exit_code = UsageError.exit_code


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class TimestampInfo:
    """What a verified token says.

    ``gen_time`` is timezone-aware UTC.  ``accuracy`` is the TSA's declared accuracy
    (``None`` if the token has none).  ``tsa_name`` is the TSTInfo ``tsa`` field as text
    if present, else the signer certificate's subject; ``signer_subject`` is always the
    signer certificate's subject (RFC 4514).  ``hash_algorithm`` is ``"sha256"``,
    ``"sha384"`` or ``"sha512"``; ``imprint`` the hash it carries.
    """

    gen_time: datetime
    serial: int
    policy: str
    tsa_name: str
    signer_subject: str
    hash_algorithm: str
    imprint: bytes
    nonce: int | None
    accuracy: timedelta | None


# --------------------------------------------------------------------------- request


def _request(data: bytes) -> TimeStampRequest:
    if not data:
        raise ValueError("cannot time-stamp empty data")
    return TimestampRequestBuilder(
        data=data, hash_algorithm=HashAlgorithm.SHA256, nonce=True, cert_req=True
    ).build()


def build_request(data: bytes) -> bytes:
    """DER ``TimeStampReq`` over SHA-256(``data``) with a random nonce and certReq."""
    return _request(data).as_bytes()


def request_token(url: str, data: bytes, timeout: float = 30) -> bytes:
    """Ask the TSA at ``url`` (http or https) for a token over ``data``.

    Returns the DER ``TimeStampResp``, checked to be a granted answer to this very
    request (imprint and nonce); its signature is *not* checked here - use
    :func:`verify_token` with the roots you trust.

    Raises :class:`TSAUnavailableError` (network, timeout, HTTP status) or
    :class:`TSAResponseError` (rejection, not a TimeStampResp, wrong answer).
    """
    # here, not at the top: http.client and urllib (with ssl and email) would
    # cost every command's start-up, and only time-stamping goes on the network
    import http.client
    import urllib.error
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TimestampConfigError("TSA URL must start with http:// or https:// and name a host")
    where = url
    if parts.username is not None or parts.password is not None:  # keep secrets out of messages
        where = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    req = _request(data)
    http_req = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url,
        data=req.as_bytes(),
        method="POST",
        headers={"Content-Type": _CONTENT_TYPE, "Accept": "application/timestamp-reply"},
    )
    try:
        with urllib.request.urlopen(http_req, timeout=timeout) as resp:  # noqa: S310
            body: bytes = resp.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise TSAUnavailableError(f"TSA {where} answered HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):
            raise TSAUnavailableError(f"TSA {where} did not answer within {timeout:g} s") from e
        raise TSAUnavailableError(f"cannot reach TSA {where}: {_reason(e.reason)}") from e
    except TimeoutError as e:
        raise TSAUnavailableError(f"TSA {where} did not answer within {timeout:g} s") from e
    except (OSError, http.client.HTTPException) as e:
        raise TSAUnavailableError(f"cannot reach TSA {where}: {_reason(e)}") from e
    if len(body) > MAX_RESPONSE_BYTES:
        raise TSAResponseError(f"TSA {where} sent more than {MAX_RESPONSE_BYTES} bytes")

    try:
        tsr = _decode(body)
        _check_granted(tsr)
        tst = tsr.tst_info
        imprint = tst.message_imprint
        algo = imprint.hash_algorithm.dotted_string
        nonce = tst.nonce
    except TimestampError as e:
        raise TSAResponseError(f"TSA {where}: {e.message}") from e
    except Exception as e:  # the response looked fine to the parser but its TSTInfo did not
        raise TSAResponseError(f"TSA {where} sent a malformed token: {_reason(e)}") from e
    if algo != req.message_imprint.hash_algorithm.dotted_string or not hmac.compare_digest(
        imprint.message, req.message_imprint.message
    ):
        raise TSAResponseError(f"TSA {where} time-stamped other data than we sent")
    if nonce != req.nonce:
        raise TSAResponseError(f"TSA {where} answered with a different nonce (replayed answer?)")
    return body


# --------------------------------------------------------------------------- verify


def verify_token(
    response_der: bytes,
    data: bytes,
    roots_pem: Sequence[bytes],
    *,
    intermediates_pem: Sequence[bytes] = (),
    nonce: int | None = None,
) -> TimestampInfo:
    """Verify a DER ``TimeStampResp`` over ``data`` and return what it says.

    Checks: well-formed DER; status granted; CMS signature valid; signer certificate
    chains (through the token's embedded certificates and ``intermediates_pem``) to one
    of ``roots_pem``, every certificate valid at genTime; signer certificate has the
    critical extendedKeyUsage timeStamping; message imprint equals the hash of
    ``data``; and, if given, the nonce.  Each PEM item may hold several certificates.
    A token that embeds no certificate needs the TSA certificate in
    ``intermediates_pem``.

    Raises :class:`TimestampVerificationError` naming the first failure, or
    :class:`TimestampConfigError` if ``roots_pem`` is empty or not PEM certificates.
    """
    try:
        return _verify_token(response_der, data, roots_pem, intermediates_pem, nonce)
    except TimestampError:
        raise
    except Exception as e:  # a hostile token must never surface as anything else
        raise TimestampVerificationError(f"malformed time-stamp token: {_reason(e)}") from e


def _verify_token(
    response_der: bytes,
    data: bytes,
    roots_pem: Sequence[bytes],
    intermediates_pem: Sequence[bytes],
    nonce: int | None,
) -> TimestampInfo:
    roots = _load_pems(roots_pem, "trusted root")
    if not roots:
        raise TimestampConfigError("no trusted TSA root certificate given")
    intermediates = _load_pems(intermediates_pem, "intermediate")

    try:
        tsr = _decode(response_der)
        _check_granted(tsr)
        tst = tsr.tst_info
        algo_oid = tst.message_imprint.hash_algorithm.dotted_string
        token_imprint = tst.message_imprint.message
        gen_time = tst.gen_time
        serial = tst.serial_number
        policy = tst.policy.dotted_string
        token_nonce = tst.nonce
        embedded = [x509.load_der_x509_certificate(c) for c in tsr.signed_data.certificates]
        signers = [(si.issuer, si.serial_number) for si in tsr.signed_data.signer_infos]
    except TimestampError:
        raise
    except Exception as e:
        raise TimestampVerificationError(f"malformed time-stamp token: {_reason(e)}") from e

    if len(signers) != 1:
        raise TimestampVerificationError(
            f"time-stamp token has {len(signers)} signers, expected exactly one"
        )
    signer = _find_signer(*signers[0], [*embedded, *intermediates])
    if signer is None:
        raise TimestampVerificationError(
            "the TSA certificate that signed the token is neither embedded in it nor given"
        )

    builder = VerifierBuilder()
    for root in _unique(roots):
        builder = builder.add_root_certificate(root)
    for cert in _unique(intermediates):
        if cert not in roots:
            builder = builder.add_intermediate_certificate(cert)
    if not embedded:
        builder = builder.tsa_certificate(signer)
    try:
        # Pass the token's own imprint: the library checks authenticity (signature,
        # path, EKU); binding to ``data`` is checked below with our own message.
        builder.build().verify(tsr, token_imprint)
    except VerificationError as e:
        raise TimestampVerificationError(_explain(str(e))) from e
    except Exception as e:
        raise TimestampVerificationError(f"malformed time-stamp token: {_reason(e)}") from e

    # Independent of the OpenSSL store semantics: the path must end at a given root.
    _check_chain(signer, [*embedded, *intermediates], roots)

    name = _hash_name(algo_oid)
    if not hmac.compare_digest(token_imprint, hashlib.new(name, data).digest()):
        raise TimestampVerificationError(
            "time-stamp token is not over this data (message imprint differs)"
        )
    if nonce is not None and token_nonce != nonce:
        raise TimestampVerificationError("time-stamp token nonce differs from the request's")

    return TimestampInfo(
        gen_time=gen_time.astimezone(UTC),
        serial=serial,
        policy=policy,
        tsa_name=_tsa_name(tsr) or signer.subject.rfc4514_string(),
        signer_subject=signer.subject.rfc4514_string(),
        hash_algorithm=name,
        imprint=bytes(token_imprint),
        nonce=token_nonce,
        accuracy=_accuracy(tsr),
    )


def later_than_token(
    stated: datetime, info: TimestampInfo, tolerance: timedelta = timedelta(minutes=5)
) -> bool:
    """True if ``stated`` is later than the token's time by more than ``tolerance``
    (plus the TSA's declared accuracy): bytes cannot have been written after they
    were time-stamped, so such a stated time is false.  ``stated`` must be
    timezone-aware.  An earlier stated time is normal (stamped later) and not flagged.
    """
    if stated.tzinfo is None or stated.utcoffset() is None:
        raise ValueError("stated time must be timezone-aware")
    if tolerance < timedelta(0):
        raise ValueError("tolerance must not be negative")
    slack = tolerance + (info.accuracy or timedelta(0))
    return stated - info.gen_time > slack


# --------------------------------------------------------------------------- helpers


def _reason(e: object) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text and text[0] else type(e).__name__


def _decode(der: bytes) -> TimeStampResponse:
    if not der:
        raise TimestampVerificationError("malformed time-stamp token: empty")
    try:
        return decode_timestamp_response(der)
    except Exception as e:
        raise TimestampVerificationError(
            f"malformed time-stamp token: not a DER TimeStampResp ({_reason(e)})"
        ) from e


def _check_granted(tsr: TimeStampResponse) -> None:
    status = tsr.status
    if status != PKIStatus.GRANTED:
        try:
            label = PKIStatus(status).name.lower().replace("_", " ")
        except ValueError:
            label = f"status {status}"
        text = "; ".join(tsr.status_string)
        raise TimestampVerificationError(
            f"time-stamp not granted: {label}" + (f" ({text})" if text else "")
        )


def _hash_name(oid: str) -> str:
    try:
        return _HASHES[oid]
    except KeyError:
        raise TimestampVerificationError(
            f"time-stamp token uses unsupported hash algorithm {oid}"
        ) from None


def _load_pems(pems: Sequence[bytes], what: str) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for pem in pems:
        try:
            out.extend(x509.load_pem_x509_certificates(pem))
        except Exception as e:
            raise TimestampConfigError(
                f"{what} certificate is not a PEM certificate: {_reason(e)}"
            ) from e
    return out


def _unique(certs: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    seen: set[bytes] = set()
    out = []
    for cert in certs:
        der = cert.public_bytes(Encoding.DER)
        if der not in seen:
            seen.add(der)
            out.append(cert)
    return out


def _find_signer(
    issuer: x509.Name, serial: int, certs: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    for cert in certs:
        if cert.issuer == issuer and cert.serial_number == serial:
            return cert
    return None


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:
        return False
    return True


def _check_chain(
    signer: x509.Certificate, pool: Sequence[x509.Certificate], roots: Sequence[x509.Certificate]
) -> None:
    cert = signer
    for _ in range(_MAX_CHAIN):
        if any(_issued_by(cert, root) or cert == root for root in roots):
            return
        nxt = next((c for c in pool if c != cert and _issued_by(cert, c)), None)
        if nxt is None:
            break
        cert = nxt
    raise TimestampVerificationError(
        "time-stamp token's certificate does not chain to a trusted root "
        f"(signer {signer.subject.rfc4514_string()})"
    )


def _explain(message: str) -> str:
    """One line for a rfc3161-client VerificationError (whose texts embed OpenSSL's)."""
    low = message.lower()
    if "verify error:" in low:
        detail = message[low.index("verify error:") + len("verify error:") :]
        detail = detail.split('"', 1)[0].strip()
        if "local issuer" in detail or "self-signed" in detail or "self signed" in detail:
            return f"time-stamp token's certificate does not chain to a trusted root ({detail})"
        return f"time-stamp token's certificate path is not valid at its time ({detail})"
    if "signature failure" in low or "digest failure" in low or "signature verify" in low:
        return "time-stamp token signature is invalid (token altered or forged)"
    if "eku" in low:
        return f"TSA certificate is not a time-stamping certificate: {message}"
    if "certificate" in low:
        return f"time-stamp token's certificates are unusable: {_reason(message)}"
    return f"time-stamp token does not verify: {_reason(message)}"


def _tsa_name(tsr: TimeStampResponse) -> str | None:
    try:
        name = tsr.tst_info.name
    except Exception:
        return None
    if name is None:
        return None
    value = name.value
    if isinstance(value, x509.Name):
        return value.rfc4514_string()
    return str(value)


def _accuracy(tsr: TimeStampResponse) -> timedelta | None:
    try:
        acc = tsr.tst_info.accuracy
    except Exception:
        return None
    if acc is None:
        return None
    return timedelta(
        seconds=acc.seconds or 0, milliseconds=acc.millis or 0, microseconds=acc.micros or 0
    )
