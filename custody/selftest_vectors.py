"""The known-answer vectors of custody's self-test (:mod:`custody.selftest`), as data:
published test vectors for every algorithm custody relies on, each with its source,
and the few custody defines itself (with how their answers were obtained).  They
ship inside the package, so the self-test runs in the field with nothing but the
installed tool.  Nothing here runs a check; tests compare these tables with the
official vector files.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

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

# libmagic: tiny samples, identified by the collector's own detector
# (custody.filetype.detect: a description handle and a MIME handle; description
# "data" means application/octet-stream).  (name, bytes, accepted MIME types, description prefix)
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
