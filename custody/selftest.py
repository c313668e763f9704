"""Known-answer self-test of every algorithm custody relies on (issue 6, section 4).

:func:`run_selftest` runs each algorithm against published test vectors, through
custody's own code paths (``custody.hashing``, ``custody.keys``, ``custody.canonical``,
``custody.merkle``, ``custody.store`` and the libmagic calls of the collector), and
reports every check with the standard it comes from, its outcome and its duration.
:func:`record_selftest` records the result as a signed ``selftest`` event, so a case
shows that the tool gave accurate results on that machine on that day (the question
Federal Rule of Evidence 902(13) asks of a process that produces an accurate result).

The vectors are embedded here, each with its source, so the test runs in the field
with nothing but the installed tool.  Nothing here may raise: a check that fails or
raises is reported as failed, with what went wrong as its detail.  The whole run
takes well under two seconds (about 0.5 s on a 2-CPU development VM, most of it
hashing the 4 MiB input of the threaded path).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import ssl
import stat
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody import TOOL_NAME, __version__, canonical, hashing, keys, merkle
from custody.ledger import Event, EventDraft, Ledger
from custody.store import Store

SELFTEST_EVENT = "selftest"
FORMAT_VERSION = 1

# --------------------------------------------------------------------------- results


@dataclass
class Check:
    """One known-answer check: what was tested, against which standard, the outcome."""

    name: str
    standard: str
    ok: bool
    detail: str
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "standard": self.standard,
            "ok": self.ok,
            "detail": self.detail,
            "microseconds": _micros(self.seconds),
        }


@dataclass
class SelftestResult:
    """Every check, whether all passed, and what they ran on."""

    ok: bool
    checks: list[Check]
    platform: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def as_json(self) -> dict[str, Any]:
        """Plain JSON for a signed event body: strings, booleans and integers only
        (durations in integer microseconds; signed bodies never hold floats)."""
        return {
            "format": FORMAT_VERSION,
            "tool": f"{TOOL_NAME} {__version__}",
            "ok": self.ok,
            "passed": sum(1 for c in self.checks if c.ok),
            "failed": sum(1 for c in self.checks if not c.ok),
            "microseconds": _micros(self.seconds),
            "platform": dict(self.platform),
            "checks": [c.as_json() for c in self.checks],
        }


def _micros(seconds: float) -> int:
    return max(0, round(seconds * 1_000_000))


class _Mismatch(Exception):
    """A known answer was not reproduced; the message says which and how."""


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise _Mismatch(what)


# --------------------------------------------------------------------------- vectors
#
# Message digests.  Sources:
#   [RFC1321]  RFC 1321 appendix A.5, "Test suite".
#   [FIPS]     FIPS 180-2 appendices A-C (the worked examples NIST now publishes as
#              "Examples with Intermediate Values", SHA1.pdf / SHA256.pdf / SHA512.pdf,
#              for FIPS 180-4): "abc", the 448-bit and 896-bit two-block messages and
#              one million repetitions of "a".
#   [CAVP]     NIST CAVP "SHA Test Vectors for Hashing Byte-Oriented Messages"
#              (shabytetestvectors.zip, CAVS 11.0): SHA*ShortMsg.rsp / SHA*LongMsg.rsp,
#              identified by their "Len =" line (message length in bits).
#   [RFC7693]  RFC 7693 appendix A, BLAKE2b-512("abc").
#   [PYCA]     pyca/cryptography vectors/cryptography_vectors/hashes/blake2/blake2b.txt
#              @ a60a48a26d78262d55b0dc4611ab19f9a6e7e1d9 (BLAKE2b-512 of the RFC 1321
#              test-suite messages).


@dataclass(frozen=True)
class HashVector:
    source: str
    message: bytes
    digest: str


_ABC = b"abc"
_FIPS_448 = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
_FIPS_896 = (
    b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
    b"ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
)
_ALNUM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_DIGITS80 = b"1234567890" * 8

HASH_STANDARDS: dict[str, str] = {
    "md5": "RFC 1321 appendix A.5 test suite",
    "sha1": "FIPS 180-4 (NIST SHA-1 examples; CAVP SHA1ShortMsg, SHA1LongMsg)",
    "sha256": "FIPS 180-4 (NIST SHA-256 examples; CAVP SHA256ShortMsg, SHA256LongMsg)",
    "sha512": "FIPS 180-4 (NIST SHA-512 examples; CAVP SHA512ShortMsg)",
    "blake2b": "RFC 7693 appendix A; BLAKE2b-512 of the RFC 1321 test messages",
}

HASH_VECTORS: dict[str, tuple[HashVector, ...]] = {
    "md5": (  # [RFC1321]
        HashVector('RFC 1321 A.5 ""', b"", "d41d8cd98f00b204e9800998ecf8427e"),
        HashVector('RFC 1321 A.5 "a"', b"a", "0cc175b9c0f1b6a831c399e269772661"),
        HashVector('RFC 1321 A.5 "abc"', _ABC, "900150983cd24fb0d6963f7d28e17f72"),
        HashVector(
            'RFC 1321 A.5 "message digest"',
            b"message digest",
            "f96b697d7cb7938d525a2f31aaf161d0",
        ),
        HashVector(
            "RFC 1321 A.5 a-z",
            b"abcdefghijklmnopqrstuvwxyz",
            "c3fcd3d76192e4007dfb496cca67e13b",
        ),
        HashVector("RFC 1321 A.5 A-Za-z0-9", _ALNUM, "d174ab98d277d9f5a5611c2c9f419d9f"),
        HashVector('RFC 1321 A.5 8x"1234567890"', _DIGITS80, "57edf4a22be3c955ac49da2e2107b67a"),
    ),
    "sha1": (
        HashVector('FIPS 180-2 A.1 "abc"', _ABC, "a9993e364706816aba3e25717850c26c9cd0d89d"),
        HashVector(
            "FIPS 180-2 A.2 448-bit message",
            _FIPS_448,
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
        ),
        HashVector(
            "CAVP SHA1ShortMsg Len = 8",
            bytes.fromhex("36"),
            "c1dfd96eea8cc2b62785275bca38ac261256e278",
        ),
        HashVector(
            "CAVP SHA1ShortMsg Len = 16",
            bytes.fromhex("195a"),
            "0a1c2d555bbe431ad6288af5a54f93e0449c9232",
        ),
        HashVector(
            "CAVP SHA1LongMsg Len = 1304",
            bytes.fromhex(
                "7c9c67323a1df1adbfe5ceb415eaef0155ece2820f4d50c1ec22cba4928ac656"
                "c83fe585db6a78ce40bc42757aba7e5a3f582428d6ca68d0c3978336a6efb729"
                "613e8d9979016204bfd921322fdd5222183554447de5e6e9bbe6edf76d7b71e1"
                "8dc2e8d6dc89b7398364f652fafc734329aafa3dcd45d4f31e388e4fafd7fc64"
                "95f37ca5cbab7f54d586463da4bfeaa3bae09f7b8e9239d832b4f0a733aa609c"
                "c1f8d4"
            ),
            "d8fd6a91ef3b6ced05b98358a99107c1fac8c807",
        ),
    ),
    "sha256": (
        HashVector(
            'FIPS 180-2 B.1 "abc"',
            _ABC,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        HashVector(
            "FIPS 180-2 B.2 448-bit message",
            _FIPS_448,
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
        HashVector(
            "CAVP SHA256ShortMsg Len = 0",
            b"",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        HashVector(
            "CAVP SHA256ShortMsg Len = 8",
            bytes.fromhex("d3"),
            "28969cdfa74a12c82f3bad960b0b000aca2ac329deea5c2328ebc6f2ba9802c1",
        ),
        HashVector(
            "CAVP SHA256ShortMsg Len = 16",
            bytes.fromhex("11af"),
            "5ca7133fa735326081558ac312c620eeca9970d1e70a4b95533d956f072d1f98",
        ),
        HashVector(
            "CAVP SHA256ShortMsg Len = 24",
            bytes.fromhex("b4190e"),
            "dff2e73091f6c05e528896c4c831b9448653dc2ff043528f6769437bc7b975c2",
        ),
        HashVector(
            "CAVP SHA256LongMsg Len = 1304",
            bytes.fromhex(
                "451101250ec6f26652249d59dc974b7361d571a8101cdfd36aba3b5854d3ae08"
                "6b5fdd4597721b66e3c0dc5d8c606d9657d0e323283a5217d1f53f2f284f57b8"
                "5c8a61ac8924711f895c5ed90ef17745ed2d728abd22a5f7a13479a462d71b56"
                "c19a74a40b655c58edfe0a188ad2cf46cbf30524f65d423c837dd1ff2bf462ac"
                "4198007345bb44dbb7b1c861298cdf61982a833afc728fae1eda2f87aa2c9480"
                "858bec"
            ),
            "3c593aa539fdcdae516cdf2f15000f6634185c88f505b39775fb9ab137a10aa2",
        ),
    ),
    "sha512": (
        HashVector(
            'FIPS 180-2 C.1 "abc"',
            _ABC,
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
            "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
        HashVector(
            "FIPS 180-2 C.2 896-bit message",
            _FIPS_896,
            "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
            "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909",
        ),
        HashVector(
            "CAVP SHA512ShortMsg Len = 8",
            bytes.fromhex("21"),
            "3831a6a6155e509dee59a7f451eb35324d8f8f2df6e3708894740f98fdee2388"
            "9f4de5adb0c5010dfb555cda77c8ab5dc902094c52de3278f35a75ebc25f093a",
        ),
        HashVector(
            "CAVP SHA512ShortMsg Len = 16",
            bytes.fromhex("9083"),
            "55586ebba48768aeb323655ab6f4298fc9f670964fc2e5f2731e34dfa4b0c09e"
            "6e1e12e3d7286b3145c61c2047fb1a2a1297f36da64160b31fa4c8c2cddd2fb4",
        ),
        HashVector(
            "CAVP SHA512ShortMsg Len = 1016",
            bytes.fromhex(
                "c13e6ca3abb893aa5f82c4a8ef754460628af6b75af02168f45b72f8f09e45ed"
                "127c203bc7bb80ff0c7bd96f8cc6d8110868eb2cfc01037d8058992a6cf2effc"
                "bfe498c842e53a2e68a793867968ba18efc4a78b21cdf6a11e5de821dcabab14"
                "921ddb33625d48a13baffad6fe8272dbdf4433bd0f7b813c981269c388f001"
            ),
            "6e56f77f6883d0bd4face8b8d557f144661989f66d51b1fe4b8fc7124d66d9d2"
            "0218616fea1bcf86c08d63bf8f2f21845a3e519083b937e70aa7c358310b5a7c",
        ),
    ),
    "blake2b": (
        HashVector(
            'RFC 7693 appendix A "abc"',
            _ABC,
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
            "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923",
        ),
        HashVector(  # [PYCA] Len = 0
            "pyca blake2b.txt Len = 0",
            b"",
            "786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419"
            "d25e1031afee585313896444934eb04b903a685b1448b755d56f701afe9be2ce",
        ),
        HashVector(  # [PYCA] Len = 112
            'pyca blake2b.txt Len = 112 "message digest"',
            b"message digest",
            "3c26ce487b1c0f062363afa3c675ebdbf5f4ef9bdc022cfbef91e3111cdc2838"
            "40d8331fc30a8a0906cff4bcdbcd230c61aaec60fdfad457ed96b709a382359a",
        ),
        HashVector(  # [PYCA] Len = 640
            'pyca blake2b.txt Len = 640 8x"1234567890"',
            _DIGITS80,
            "686f41ec5afff6e87e1f076f542aa466466ff5fbde162c48481ba48a748d8427"
            "99f5b30f5b67fc684771b33b994206d05cc310f31914edd7b97e41860d77d282",
        ),
    ),
}

# One million repetitions of "a" (0x61), hashed streamed, as custody hashes evidence.
MILLION_A_LENGTH = 1_000_000
MILLION_A_DIGESTS: dict[str, str] = {
    # NESSIE MD5 test vectors, set 1 vector #8 (not part of RFC 1321).
    "md5": "7707d6ae4e027c70eea2a935c2296f21",
    # FIPS 180-2 A.3 / B.3 / C.3.
    "sha1": "34aa973cd4c4daa4f61eeb2bdbad27316534016f",
    "sha256": "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
    "sha512": "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973eb"
    "de0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b",
    # The BLAKE2b-512 value published in the test suites of independent
    # implementations (e.g. the D standard library's std.digest blake2 unittest).
    "blake2b": "98fb3efb7206fd19ebf69b6f312cf7b64e3b94dbe1a17107913975a793f177e1"
    "d077609d7fba363cbba00d05f7aa4e4fa8715d6428104c0a75643b0ff3fd3eaf",
}

# Input above custody.hashing.THREADED_MIN, so hash_file takes the threaded path (ring
# of reused buffers, one thread per digest group).  No standard publishes a vector
# this long and short enough to run in the field, so custody defines one: byte i is
# i mod 251 (a period prime to the 1 MiB buffer size, so buffers handed over out of
# order or reused too early change the digest).  The digests were computed with GNU
# coreutils 9.1 md5sum, sha1sum, sha256sum, sha512sum and b2sum, an implementation
# independent of the OpenSSL that hashlib uses, and agree with hashlib.
THREADED_FILE_SIZE = 4 * 2**20 + 4099  # five 1 MiB reads: one more than the ring holds
THREADED_FILE_DIGESTS: dict[str, str] = {
    "md5": "b283b86badf0725e1bf806b5cb45ad91",
    "sha1": "0db227c1f2c8ddab2dc5883a79cb5ecaaeca0d43",
    "sha256": "777f2875bb03219c1f02f7e0c1eb60efb4a5d3968a8a31bae00e29a714c6de97",
    "sha512": "daf2149a5c5aaae8066b24d95a756c2240464a3af9172ff60a5a99cb265c8549"
    "6d4e515de4fc67f5ecb694a1d5963744fb57a285eba8667d4f987e5b9c8ea7a1",
    "blake2b": "69c17c828202b0a54c84818422d3013eb1e1c28176b578b05db0cb024f231591"
    "f1bc7e99bc5b1acbedfe36f3b33ce92e04a534597c7d87da722e5e2d8f6effc5",
}


def threaded_file_bytes(size: int = THREADED_FILE_SIZE) -> bytes:
    """The custody-defined pattern input of :data:`THREADED_FILE_DIGESTS`."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


# Ed25519: RFC 8032 section 7.1 (the TEST 1, TEST 2, TEST 3 and TEST SHA(abc)
# blocks).  Secret key = the 32-byte seed; signature = R || S.


@dataclass(frozen=True)
class Ed25519Vector:
    name: str
    label: str  # as RFC 8032 section 7.1 names it
    secret_key: str
    public_key: str
    message: str
    signature: str


ED25519_VECTORS: tuple[Ed25519Vector, ...] = (
    Ed25519Vector(
        "test-1",
        "TEST 1",
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
        "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    Ed25519Vector(
        "test-2",
        "TEST 2",
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    Ed25519Vector(
        "test-3",
        "TEST 3",
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    Ed25519Vector(
        "test-sha-abc",
        "TEST SHA(abc)",
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
        "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
)

# The order of the Ed25519 base point (RFC 8032 section 5.1): S must be below it.
_ED25519_L = 2**252 + 27742317777372353535851937790883648493

# RFC 8785 (JCS).  Input/output pairs from the RFC author's reference repository,
# cyberphone/json-canonicalization @ 19d51d7fe467d4706a3ff08adf8a748f29fc21e0,
# testdata/input/*.json -> testdata/output/*.json (whitespace of the inputs folded).
# "values" is the sample of RFC 8785 section 3.2.2 (output: section 3.2.3) and
# "weird" the key-sorting example of section 3.2.3.


@dataclass(frozen=True)
class JcsVector:
    name: str
    input: str
    output: bytes


JCS_VECTORS: tuple[JcsVector, ...] = (
    JcsVector(
        "arrays",
        r'[56, {"d": true, "10": null, "1": [ ]}]',
        b'[56,{"1":[],"10":null,"d":true}]',
    ),
    JcsVector(
        "french",
        r'{"peach": "This sorting order", "p\u00e9ch\u00e9": "is wrong according to French",'
        r' "p\u00eache": "but canonicalization MUST", "sin":   "ignore locale"}',
        b'{"peach":"This sorting order","p\xc3\xa9ch\xc3\xa9":"is wrong according to French",'
        b'"p\xc3\xaache":"but canonicalization MUST","sin":"ignore locale"}',
    ),
    JcsVector(
        "structures",
        r'{"1": {"f": {"f": "hi","F": 5} ,"\n": 56.0}, "10": { }, "": "empty", "a": { },'
        r' "111": [ {"e": "yes","E": "no" } ], "A": { }}',
        b'{"":"empty","1":{"\\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{"E":"no","e":"yes"}],'
        b'"A":{},"a":{}}',
    ),
    JcsVector(
        "unicode",
        r'{"Unnormalized Unicode":"A\u030a"}',
        b'{"Unnormalized Unicode":"A\xcc\x8a"}',
    ),
    JcsVector(
        "values",
        r"""{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],"""
        r""" "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/","""
        r""" "literals": [null, true, false]}""",
        b'{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        b'"string":"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    ),
    JcsVector(
        "weird",
        r'{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\u000a": "Newline", "1": "One",'
        r' "\u0080": "Control\u007f", "\ud83d\ude02": "Smiley",'
        r' "\u00f6": "Latin Small Letter O With Diaeresis",'
        r' "\ufb33": "Hebrew Letter Dalet With Dagesh", "</script>": "Browser Challenge"}',
        b'{"\\n":"Newline","\\r":"Carriage Return","1":"One","</script>":"Browser Challenge",'
        b'"\xc2\x80":"Control\x7f","\xc3\xb6":"Latin Small Letter O With Diaeresis",'
        b'"\xe2\x82\xac":"Euro Sign","\xf0\x9f\x98\x82":"Smiley",'
        b'"\xef\xac\xb3":"Hebrew Letter Dalet With Dagesh"}',
    ),
)

# RFC 8785 appendix B: IEEE 754 double (as 16 hex digits) -> JSON number text.
JCS_NUMBERS: tuple[tuple[str, str], ...] = (
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
)
# Appendix B: NaN and Infinity have no JSON form and must be refused.
JCS_NUMBER_ERRORS: tuple[str, ...] = ("7fffffffffffffff", "7ff0000000000000")

# RFC 6962 / RFC 9162 Merkle tree over SHA-256: the reference vectors of
# transparency-dev/merkle @ 417fb0c314750d94e53942e9f92e79b6d35915db
# (testonly/constants.go: LeafInputs, RootHashes; cmd/proofgen: inclusion and
# consistency proofs, leaf indices here 0-based; rfc6962/rfc6962_test.go: hasher).
MERKLE_LEAF_INPUTS: tuple[str, ...] = (
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)
MERKLE_LEAF_HASHES: tuple[str, ...] = (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
)
MERKLE_ROOTS: tuple[str, ...] = (  # index = tree size, 0..8
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)
# rfc6962_test.go: (what, input, expected) for the hasher alone.
MERKLE_HASHER: tuple[tuple[str, str, str], ...] = (
    ("leaf", "", "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    (
        "leaf",
        b"L123456".hex(),
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56",
    ),
    (
        "node",
        b"N123".hex() + ":" + b"N456".hex(),
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb",
    ),
)
_N = {  # node hashes of the 8-leaf tree, named for readability of the proofs below
    "l0": "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "l1": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "l4": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "l6": "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "n01": "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "n23": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "n45": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "n67": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "n0-3": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "n4-7": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
}
# (leaf index, tree size, audit path)
MERKLE_INCLUSION: tuple[tuple[int, int, tuple[str, ...]], ...] = (
    (0, 1, ()),
    (0, 8, (_N["l1"], _N["n23"], _N["n4-7"])),
    (5, 8, (_N["l4"], _N["n67"], _N["n0-3"])),
    (2, 3, (_N["n01"],)),
    (1, 5, (_N["l0"], _N["n23"], _N["l4"])),
)
# (size1, size2, consistency proof)
MERKLE_CONSISTENCY: tuple[tuple[int, int, tuple[str, ...]], ...] = (
    (1, 1, ()),
    (1, 8, (_N["l1"], _N["n23"], _N["n4-7"])),
    (6, 8, (_N["n45"], _N["n67"], _N["n0-3"])),
    (2, 5, (_N["n23"], _N["l4"])),
    (6, 7, (_N["n45"], _N["l6"], _N["n0-3"])),
)

# libmagic: tiny samples, identified exactly as the collector does (custody.collect
# _Typer: a description handle and a MIME handle; description "data" means
# application/octet-stream).  (name, bytes, accepted MIME types, description prefix)
# The MIME type must be one listed; the alternatives are the names older libmagic
# releases used for the same format (application/x-gzip before file 5.37).


@dataclass(frozen=True)
class MagicSample:
    name: str
    data: bytes
    mime: tuple[str, ...]
    description: str


MAGIC_SAMPLES: tuple[MagicSample, ...] = (
    MagicSample(  # a complete 1x1 8-bit greyscale PNG (signature, IHDR, IDAT, IEND)
        "png",
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010800000000"
            "3a7e9b550000000a4944415478da6360000000020001e527defc000000"
            "0049454e44ae426082"
        ),
        ("image/png",),
        "PNG image data",
    ),
    MagicSample(
        "pdf",
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n",
        ("application/pdf",),
        "PDF document",
    ),
    MagicSample(  # gzip of "custody selftest\n", mtime 0
        "gzip",
        bytes.fromhex("1f8b08000000000002034b2e2d2ec94fa954284ecd492b492d2ee10200cb71ad5e11000000"),
        ("application/gzip", "application/x-gzip"),
        "gzip compressed data",
    ),
    MagicSample(  # a bare ELF64 little-endian header: ET_EXEC, EM_X86_64, version 1
        "elf",
        b"\x7fELF\x02\x01\x01\x00"
        + bytes(8)
        + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, 0x401000, 0, 0, 0, 64, 0, 0, 0, 0, 0),
        ("application/x-executable",),
        "ELF 64-bit LSB executable",
    ),
    MagicSample(
        "text",
        b"Chain of custody self-test sample.\n",
        ("text/plain",),
        "ASCII text",
    ),
    MagicSample(  # nothing libmagic recognises
        "data",
        bytes([0x00, 0x01, 0x02, 0xFE, 0xFF, 0x10, 0x80, 0x7F]) * 4,
        ("application/octet-stream",),
        "data",
    ),
)

# Store round trip: "abc", whose digest is published for every algorithm
# (RFC 1321 A.5, FIPS 180-2 A.1/B.1/C.1, RFC 7693 appendix A).
STORE_SAMPLE = b"abc"
STORE_SAMPLE_DIGESTS: dict[str, str] = {
    "md5": "900150983cd24fb0d6963f7d28e17f72",
    "sha1": "a9993e364706816aba3e25717850c26c9cd0d89d",
    "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    "sha512": "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    "blake2b": "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
    "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923",
}

# --------------------------------------------------------------------------- context


class _Context:
    """What the checks share: a scratch directory and the libmagic handles."""

    def __init__(self) -> None:
        self._tmp: Path | None = None
        self._tmp_error: str | None = None
        self._magic: tuple[Any, Any] | None = None
        self._counter = 0

    @contextmanager
    def open(self) -> Iterator[_Context]:
        try:
            holder = tempfile.TemporaryDirectory(
                prefix="custody-selftest-", ignore_cleanup_errors=True
            )
        except OSError as e:
            self._tmp_error = f"cannot create a scratch directory: {e}"
            yield self
            return
        with holder as name:
            self._tmp = Path(name)
            try:
                yield self
            finally:
                self._tmp = None

    @property
    def tmp(self) -> Path:
        if self._tmp is None:
            raise RuntimeError(self._tmp_error or "no scratch directory")
        return self._tmp

    def write(self, data: bytes, stem: str = "sample") -> Path:
        self._counter += 1
        path = self.tmp / f"{stem}-{self._counter}"
        path.write_bytes(data)
        return path

    def magic(self) -> tuple[Any, Any]:
        """(MIME handle, description handle), created once, as in custody.collect."""
        if self._magic is None:
            import magic

            self._magic = (magic.Magic(mime=True), magic.Magic())
        return self._magic


# --------------------------------------------------------------------------- checks


def _digest_mismatch(alg: str, source: str, got: str, want: str) -> str:
    return f"{alg} of {source}: got {got}, expected {want}"


def _check_hash_vectors(alg: str) -> Callable[[_Context], str]:
    def check(ctx: _Context) -> str:
        vectors = HASH_VECTORS.get(alg, ())
        _expect(bool(vectors), f"no known-answer vectors for {alg}, which custody offers")
        for v in vectors:
            _expect(len(v.message) < hashing.THREADED_MIN, f"{v.source} is not a small input")
            path = ctx.write(v.message, alg)
            res = hashing.hash_file(path, [alg])
            got = res.digests.get(alg, "")
            _expect(got == v.digest, _digest_mismatch(alg, v.source, got, v.digest))
            _expect(res.size == len(v.message), f"{v.source}: size {res.size} != {len(v.message)}")
        return f"{len(vectors)} vectors via hash_file (serial path): " + "; ".join(
            v.source for v in vectors
        )

    return check


def _compare_all(what: str, digests: dict[str, str], want: dict[str, str]) -> None:
    for alg in hashing.ALGORITHMS:
        _expect(alg in want, f"no known answer for {alg} of {what}")
        got = digests.get(alg, "")
        _expect(got == want[alg], _digest_mismatch(alg, what, got, want[alg]))


def _check_million_a_serial(ctx: _Context) -> str:
    _expect(MILLION_A_LENGTH < hashing.THREADED_MIN, "one million bytes no longer hash serially")
    path = ctx.write(b"a" * MILLION_A_LENGTH, "million-a")
    res = hashing.hash_file(path, hashing.ALGORITHMS)
    _expect(res.size == MILLION_A_LENGTH, f"read {res.size} bytes of {MILLION_A_LENGTH}")
    _compare_all("one million 'a'", res.digests, MILLION_A_DIGESTS)
    return f"{', '.join(hashing.ALGORITHMS)} in one pass via hash_file (serial path)"


def _check_million_a_threaded(ctx: _Context) -> str:
    """Fed through a pipe, as from an acquisition device: no size is known, so
    hash_fd takes the threaded path, and the short pipe reads cycle the buffer ring."""
    rfd, wfd = os.pipe()
    reads = 0

    def feed() -> None:
        try:
            block = memoryview(b"a" * 10_000)
            for _ in range(MILLION_A_LENGTH // len(block)):
                view = block
                while view:
                    view = view[os.write(wfd, view) :]
        except OSError:
            pass  # the reader gave up (a failed check): its error is reported
        finally:
            os.close(wfd)

    def count(n: int) -> None:
        nonlocal reads
        reads += 1

    writer = threading.Thread(target=feed, name="custody-selftest-feed", daemon=True)
    writer.start()
    try:
        res = hashing.hash_fd(rfd, hashing.ALGORITHMS, progress=count)
    finally:
        os.close(rfd)
        writer.join(10)
    _expect(res.size == MILLION_A_LENGTH, f"read {res.size} bytes of {MILLION_A_LENGTH}")
    _compare_all("one million 'a'", res.digests, MILLION_A_DIGESTS)
    return (
        f"{', '.join(hashing.ALGORITHMS)} in one pass via hash_fd from a pipe"
        f" (threaded path, {reads} reads)"
    )


def _check_threaded_file(ctx: _Context) -> str:
    size = THREADED_FILE_SIZE
    _expect(
        size >= hashing.THREADED_MIN,
        f"{size} bytes is below THREADED_MIN ({hashing.THREADED_MIN}): not the threaded path",
    )
    data = threaded_file_bytes(size)
    path = ctx.write(data, "threaded")
    res = hashing.hash_file(path, hashing.ALGORITHMS)
    _expect(res.size == size, f"hash_file read {res.size} bytes of {size}")
    _compare_all(f"the {size}-byte pattern", res.digests, THREADED_FILE_DIGESTS)
    # Again writing a copy alongside, as the store ingests evidence (the digests were
    # checked above: SHA-256, which names store objects, is enough here).
    copy = ctx.tmp / "threaded-copy"
    src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(copy, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            res2 = hashing.hash_fd(src, ["sha256"], out_fd=dst, size_hint=size)
        finally:
            os.close(dst)
    finally:
        os.close(src)
    got, want = res2.digests.get("sha256", ""), THREADED_FILE_DIGESTS.get("sha256", "")
    _expect(
        got == want, _digest_mismatch("sha256", f"the {size}-byte pattern (copying)", got, want)
    )
    _expect(res2.size == size, f"hash_fd copied {res2.size} bytes of {size}")
    _expect(copy.read_bytes() == data, "the copy written while hashing differs from its source")
    return (
        f"{size}-byte file: {', '.join(hashing.ALGORITHMS)} via hash_file, and sha256 via"
        " hash_fd writing an identical copy (threaded path)"
    )


def _check_ed25519(vector: Ed25519Vector) -> Callable[[_Context], str]:
    def check(ctx: _Context) -> str:
        v = vector
        sk, pk = bytes.fromhex(v.secret_key), bytes.fromhex(v.public_key)
        msg, sig = bytes.fromhex(v.message), bytes.fromhex(v.signature)
        signer = keys.Signer(Ed25519PrivateKey.from_private_bytes(sk), "selftest", "selftest")
        raw = signer.identity.public_raw
        _expect(raw == pk, f"public key derived as {raw.hex()}, expected {v.public_key}")
        got = signer.sign(msg)
        _expect(got == sig, f"signature {got.hex()}, expected {v.signature}")
        _expect(keys.verify_signature(pk, sig, msg), "the published signature does not verify")
        flipped = bytearray(sig)
        flipped[0] ^= 0x01
        _expect(
            not keys.verify_signature(pk, bytes(flipped), msg),
            "a signature with one bit flipped was accepted",
        )
        other = bytes([msg[0] ^ 0x01]) + msg[1:] if msg else b"\x00"
        _expect(
            not keys.verify_signature(pk, sig, other),
            "the signature was accepted for a different message",
        )
        s = int.from_bytes(sig[32:], "little") + _ED25519_L
        malleable = sig[:32] + s.to_bytes(32, "little")
        _expect(
            not keys.verify_signature(pk, malleable, msg),
            "a non-canonical signature (S + L) was accepted",
        )
        return (
            f"{len(msg)}-byte message: public key and signature reproduced; signature"
            " verified; flipped bit, other message and S + L rejected"
        )

    return check


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


def _check_jcs_vectors(ctx: _Context) -> str:
    strict = 0
    for v in JCS_VECTORS:
        value = json.loads(v.input)
        got = canonical.canonical_json_any(value)
        _expect(got == v.output, f"{v.name}: got {got!r}, expected {v.output!r}")
        if not _has_float(value):  # custody's signed-body encoder must agree
            strict += 1
            got = canonical.canonical_json(value)
            _expect(got == v.output, f"{v.name} (canonical_json): got {got!r}")
            _expect(
                canonical.parse_canonical(v.output) == value,
                f"{v.name}: parse_canonical does not give back the value",
            )
    return (
        f"{len(JCS_VECTORS)} vectors ({', '.join(v.name for v in JCS_VECTORS)}) via"
        f" canonical_json_any; the {strict} without floats also via canonical_json and"
        " parse_canonical"
    )


def _check_jcs_numbers(ctx: _Context) -> str:
    for bits, want in JCS_NUMBERS:
        number = struct.unpack(">d", bytes.fromhex(bits))[0]
        got = canonical.canonical_json_any(number)
        _expect(got == want.encode("ascii"), f"{bits}: got {got!r}, expected {want!r}")
    for bits in JCS_NUMBER_ERRORS:
        number = struct.unpack(">d", bytes.fromhex(bits))[0]
        try:
            out = canonical.canonical_json_any(number)
        except ValueError:
            continue
        raise _Mismatch(f"{bits} ({number}) was serialised as {out!r} instead of refused")
    try:
        out = canonical.canonical_json({"n": 0.5})
    except canonical.NonCanonicalValueError:
        pass
    else:
        raise _Mismatch(f"canonical_json let a float into a signed body: {out!r}")
    return (
        f"{len(JCS_NUMBERS)} numbers serialised as appendix B prescribes;"
        f" {len(JCS_NUMBER_ERRORS)} non-finite values refused; floats refused in signed bodies"
    )


def _merkle_leaves() -> list[bytes]:
    return [bytes.fromhex(h) for h in MERKLE_LEAF_HASHES]


def _flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 0x01]) + h[1:]


def _rejects(verify: Callable[..., None], *args: Any) -> bool:
    """True when ``verify(*args)`` refuses the proof, as it must."""
    try:
        verify(*args)
    except merkle.ProofError:
        return True
    return False


def _check_merkle_tree(ctx: _Context) -> str:
    empty = MERKLE_ROOTS[0]
    _expect(merkle.EMPTY_ROOT.hex() == empty, f"empty root {merkle.EMPTY_ROOT.hex()}")
    for what, arg, want in MERKLE_HASHER:
        if what == "leaf":
            got = merkle.leaf_hash(bytes.fromhex(arg)).hex()
        else:
            left, right = (bytes.fromhex(p) for p in arg.split(":"))
            got = merkle.node_hash(left, right).hex()
        _expect(got == want, f"{what} hash of {arg or 'empty'}: got {got}, expected {want}")
    for i, data in enumerate(MERKLE_LEAF_INPUTS):
        got = merkle.leaf_hash(bytes.fromhex(data)).hex()
        _expect(got == MERKLE_LEAF_HASHES[i], f"leaf {i}: got {got}")
    leaves = _merkle_leaves()
    cache = merkle.TreeCache()
    for size, want in enumerate(MERKLE_ROOTS):
        got = merkle.root(leaves[:size]).hex()
        _expect(got == want, f"root of {size} leaves: got {got}, expected {want}")
        if size:
            cache.append(leaves[size - 1])
        got = cache.root().hex()
        _expect(got == want, f"TreeCache root of {size} leaves: got {got}, expected {want}")
    whole = merkle.TreeCache(leaves)
    for size, want in enumerate(MERKLE_ROOTS):
        got = whole.root(size).hex()
        _expect(got == want, f"TreeCache.root({size}) of 8 leaves: got {got}")
    return (
        f"{len(MERKLE_HASHER)} hasher vectors, {len(MERKLE_LEAF_INPUTS)} leaf hashes and the"
        f" roots of sizes 0-{len(MERKLE_ROOTS) - 1} via root and TreeCache"
    )


def _check_merkle_inclusion(ctx: _Context) -> str:
    leaves = _merkle_leaves()
    cache = merkle.TreeCache(leaves)
    for index, size, path in MERKLE_INCLUSION:
        want = [bytes.fromhex(h) for h in path]
        label = f"inclusion of leaf {index} in {size}"
        got = merkle.inclusion_proof(leaves, index, size)
        _expect(got == want, f"{label}: got {[h.hex() for h in got]}")
        got = cache.inclusion_proof(index, size)
        _expect(got == want, f"{label} (TreeCache): got {[h.hex() for h in got]}")
        root = bytes.fromhex(MERKLE_ROOTS[size])
        leaf = leaves[index]
        merkle.verify_inclusion(leaf, index, size, want, root)
        _expect(
            _rejects(merkle.verify_inclusion, leaf, index, size, want, _flip(root)),
            f"{label}: accepted against a wrong root",
        )
        _expect(
            _rejects(merkle.verify_inclusion, _flip(leaf), index, size, want, root),
            f"{label}: accepted for a wrong leaf",
        )
        if want:
            bad = [_flip(want[0]), *want[1:]]
            _expect(
                _rejects(merkle.verify_inclusion, leaf, index, size, bad, root),
                f"{label}: accepted a proof with a flipped bit",
            )
    return (
        f"{len(MERKLE_INCLUSION)} audit paths generated (inclusion_proof, TreeCache) and"
        " verified; wrong root, wrong leaf and flipped bits rejected"
    )


def _check_merkle_consistency(ctx: _Context) -> str:
    leaves = _merkle_leaves()
    cache = merkle.TreeCache(leaves)
    for size1, size2, path in MERKLE_CONSISTENCY:
        want = [bytes.fromhex(h) for h in path]
        label = f"consistency {size1} -> {size2}"
        got = merkle.consistency_proof(leaves, size1, size2)
        _expect(got == want, f"{label}: got {[h.hex() for h in got]}")
        got = cache.consistency_proof(size1, size2)
        _expect(got == want, f"{label} (TreeCache): got {[h.hex() for h in got]}")
        r1, r2 = bytes.fromhex(MERKLE_ROOTS[size1]), bytes.fromhex(MERKLE_ROOTS[size2])
        merkle.verify_consistency(size1, size2, want, r1, r2)
        _expect(
            _rejects(merkle.verify_consistency, size1, size2, want, r1, _flip(r2)),
            f"{label}: accepted a wrong new root",
        )
        _expect(
            _rejects(merkle.verify_consistency, size1, size2, want, _flip(r1), r2),
            f"{label}: accepted a wrong old root",
        )
        if want:
            bad = [*want[:-1], _flip(want[-1])]
            _expect(
                _rejects(merkle.verify_consistency, size1, size2, bad, r1, r2),
                f"{label}: accepted a proof with a flipped bit",
            )
    _expect(
        _rejects(merkle.verify_consistency, 0, 0, [], merkle.EMPTY_ROOT, merkle.EMPTY_ROOT),
        "a consistency proof from the empty tree was accepted",
    )
    return (
        f"{len(MERKLE_CONSISTENCY)} consistency proofs generated (consistency_proof,"
        " TreeCache) and verified; wrong roots, flipped bits and size 0 rejected"
    )


def _detect(ctx: _Context, path: Path) -> tuple[str, str]:
    """The collector's libmagic call (custody.collect._Typer._detect)."""
    mime_handle, desc_handle = ctx.magic()
    desc = str(desc_handle.from_file(str(path)))
    if desc == "data":
        return "application/octet-stream", desc
    return str(mime_handle.from_file(str(path))), desc


def _check_magic(sample: MagicSample) -> Callable[[_Context], str]:
    def check(ctx: _Context) -> str:
        path = ctx.write(sample.data, f"magic-{sample.name}")
        mime, desc = _detect(ctx, path)
        _expect(mime in sample.mime, f"MIME type {mime!r}, expected {' or '.join(sample.mime)}")
        _expect(
            desc.startswith(sample.description),
            f"description {desc!r}, expected it to start with {sample.description!r}",
        )
        return f"{len(sample.data)}-byte sample: {mime}; {desc}"

    return check


def _check_store(ctx: _Context) -> str:
    store = Store(ctx.tmp / "store", deferred_sync=True)  # as the collector opens it
    src = ctx.write(STORE_SAMPLE, "store-src")
    want_sha = STORE_SAMPLE_DIGESTS.get("sha256", "")
    want_rel = f"sha256/{want_sha[0:2]}/{want_sha[2:4]}/{want_sha}"
    relpaths = []
    for attempt in ("first", "second"):
        fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        try:
            stored = store.ingest(fd, hashing.ALGORITHMS, size_hint=len(STORE_SAMPLE))
        finally:
            os.close(fd)
        _compare_all(
            f"{STORE_SAMPLE!r} ({attempt} ingest)", stored.result.digests, STORE_SAMPLE_DIGESTS
        )
        _expect(stored.result.size == len(STORE_SAMPLE), f"stored {stored.result.size} bytes")
        _expect(stored.relpath == want_rel, f"object path {stored.relpath}, expected {want_rel}")
        _expect(
            stored.deduplicated == (attempt == "second"),
            f"{attempt} ingest: deduplicated is {stored.deduplicated}",
        )
        relpaths.append(stored.relpath)
    obj = store.path_of(want_rel)
    _expect(obj.read_bytes() == STORE_SAMPLE, "the stored object's bytes differ from the source")
    mode = stat.S_IMODE(obj.stat().st_mode)
    _expect(mode == 0o444, f"stored object mode {mode:04o}, expected 0444")
    leftovers = list((ctx.tmp / "store" / "tmp").iterdir())
    _expect(not leftovers, f"temporary files left in the store: {[p.name for p in leftovers]}")
    return f"ingested twice (second deduplicated) as {want_rel}, read-only, digests as published"


# --------------------------------------------------------------------------- running

_CheckFn = Callable[[_Context], str]


def _plan() -> list[tuple[str, str, _CheckFn]]:
    """Every check, in order: (name, standard, function)."""
    million = "FIPS 180-4 NIST examples (1,000,000 x 'a'); NESSIE MD5 set 1 #8"
    plan: list[tuple[str, str, _CheckFn]] = [
        (f"hash.{alg}", HASH_STANDARDS.get(alg, "none"), _check_hash_vectors(alg))
        for alg in hashing.ALGORITHMS
    ]
    plan += [
        (
            "hash.million-a.serial",
            million,
            _check_million_a_serial,
        ),
        (
            "hash.million-a.threaded",
            million,
            _check_million_a_threaded,
        ),
        (
            "hash.threaded-file",
            "custody pattern vector, digests from GNU coreutils 9.1",
            _check_threaded_file,
        ),
    ]
    plan += [
        (
            f"ed25519.rfc8032-{v.name}",
            f"RFC 8032 section 7.1 {v.label}",
            _check_ed25519(v),
        )
        for v in ED25519_VECTORS
    ]
    plan += [
        (
            "jcs.rfc8785-vectors",
            "RFC 8785 sections 3.2.2-3.2.3 (reference test data)",
            _check_jcs_vectors,
        ),
        ("jcs.rfc8785-numbers", "RFC 8785 appendix B", _check_jcs_numbers),
        ("merkle.tree-hash", "RFC 6962 / RFC 9162 section 2.1.1", _check_merkle_tree),
        ("merkle.inclusion", "RFC 6962 / RFC 9162 section 2.1.3", _check_merkle_inclusion),
        ("merkle.consistency", "RFC 6962 / RFC 9162 section 2.1.4", _check_merkle_consistency),
    ]
    plan += [
        (f"magic.{s.name}", "libmagic identification (custody built-in sample)", _check_magic(s))
        for s in MAGIC_SAMPLES
    ]
    plan.append(
        (
            "store.roundtrip",
            "custody content-addressed store (RFC 1321 / FIPS 180-4 / RFC 7693 'abc')",
            _check_store,
        )
    )
    return plan


def _run_one(name: str, standard: str, fn: _CheckFn, ctx: _Context) -> Check:
    start = time.perf_counter()
    try:
        detail = fn(ctx)
        ok = True
    except _Mismatch as e:
        ok, detail = False, str(e)
    except Exception as e:  # a check that raises has failed; the run goes on
        ok, detail = False, f"{type(e).__name__}: {e}"
    return Check(name, standard, ok, detail, time.perf_counter() - start)


def run_selftest() -> SelftestResult:
    """Run every known-answer check; never raises."""
    start = time.perf_counter()
    checks: list[Check] = []
    ctx = _Context()
    try:
        plan = _plan()
    except Exception as e:  # pragma: no cover - a broken vector table
        plan = []
        checks.append(Check("plan", "custody", False, f"{type(e).__name__}: {e}", 0.0))
    with ctx.open():
        for name, standard, fn in plan:
            checks.append(_run_one(name, standard, fn, ctx))
    try:
        plat = platform_info()
    except Exception as e:  # pragma: no cover - platform module failure
        plat = {"error": f"{type(e).__name__}: {e}"}
    return SelftestResult(
        ok=bool(checks) and all(c.ok for c in checks),
        checks=checks,
        platform=plat,
        seconds=time.perf_counter() - start,
    )


# --------------------------------------------------------------------------- platform


def _version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except Exception:
        return "unknown"


def _libmagic_version() -> str:
    try:
        import magic

        v = int(magic.version())  # type: ignore[no-untyped-call]
    except Exception as e:
        return f"unknown ({type(e).__name__})"
    return f"{v // 100}.{v % 100:02d}"


def _crypto_openssl() -> str:
    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        return str(backend.openssl_version_text())
    except Exception as e:
        return f"unknown ({type(e).__name__})"


def platform_info() -> dict[str, str]:
    """The machine and the implementations the checks ran on (all strings)."""
    return {
        "custody": __version__,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "openssl": ssl.OPENSSL_VERSION,  # behind hashlib
        "cryptography": _version_of("cryptography"),
        "cryptography_openssl": _crypto_openssl(),  # behind Ed25519
        "rfc8785": _version_of("rfc8785"),
        "python_magic": _version_of("python-magic"),
        "libmagic": _libmagic_version(),
        "system": platform.system(),
        "release": platform.release(),
        "os": platform.platform(),  # as collection events record it
        "machine": platform.machine(),
        "host": socket.gethostname(),  # as collection events record it
        "cpus": str(os.cpu_count() or 0),
    }


# --------------------------------------------------------------------------- ledger


def record_selftest(
    ledger: Ledger, signer: keys.Signer, result: SelftestResult, *, once: bool = False
) -> Event | None:
    """Append the result as one signed ``selftest`` event (failed results too: the
    record of a failure is evidence as well) and return it.  With ``once``, a
    passed result is not recorded if the case already holds a self-test (decided
    inside the write lock, so concurrent first collections record one), and None
    is returned."""
    draft = EventDraft(SELFTEST_EVENT, result.as_json())

    def drafts() -> list[EventDraft]:
        return [] if once and result.ok and case_has_selftest(ledger) else [draft]

    events = ledger.append(signer, drafts)
    return events[-1] if events else None


def case_has_selftest(ledger: Ledger) -> bool:
    """True when the case records at least one self-test."""
    row = ledger.conn.execute(
        "SELECT 1 FROM events WHERE type = ? LIMIT 1", (SELFTEST_EVENT,)
    ).fetchone()
    return row is not None


def selftest_events(ledger: Ledger) -> Sequence[Event]:
    """Every self-test recorded in the case, oldest first."""
    return [ev for ev in ledger.events() if ev.type == SELFTEST_EVENT]
