"""custody.note: C2SP signed-note and tlog-checkpoint, against published vectors.

Vectors come from tests/vectors/checkpoint_examples.txt: the C2SP signed-note
example (A), a real sum.golang.org checkpoint (B), the tlog-checkpoint spec example
(C, no public key), the transparency-dev/formats test key pair (D) and the formats
checkpoint-body parsing cases (E).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field

import pytest
from conftest import VECTORS
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custody.note import (
    MAX_SIGNATURES,
    Checkpoint,
    InvalidKeyError,
    InvalidSignatureError,
    MalformedCheckpointError,
    MalformedNoteError,
    NoteError,
    OriginMismatchError,
    Signature,
    SigningError,
    UnverifiedNoteError,
    Verifier,
    add_signature,
    format_checkpoint,
    key_id,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    parse_verifier_key,
    sign_note,
    verifier_key,
)

VECTORS_FILE = VECTORS / "checkpoint_examples.txt"
EM = "\u2014"


# --------------------------------------------------------------------------- vector file


@dataclass
class Section:
    vkeys: list[str] = field(default_factory=list)
    skeys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _load_sections() -> dict[str, Section]:
    sections: dict[str, Section] = {}
    current: Section | None = None
    block: list[str] | None = None
    # newline="" keeps the file's bytes exactly (no \r\n translation)
    with VECTORS_FILE.open(encoding="utf-8", newline="") as f:
        for raw in f:
            line = raw.removesuffix("\n")
            if block is not None:
                if line == "-----END NOTE-----":
                    assert current is not None
                    current.notes.append("".join(x + "\n" for x in block))
                    block = None
                else:
                    block.append(line)
                continue
            m = re.match(r"## ([A-Z])\. ", line)
            if m:
                current = sections.setdefault(m.group(1), Section())
            elif line.startswith("#"):
                if line.startswith("####"):
                    current = None  # spec text follows
            elif current is not None and line.startswith("vkey: "):
                current.vkeys.append(line.removeprefix("vkey: "))
            elif current is not None and line.startswith("skey: "):
                current.skeys.append(line.removeprefix("skey: "))
            elif current is not None and line == "-----BEGIN NOTE-----":
                block = []
    assert block is None, "unterminated NOTE block"
    return sections


@pytest.fixture(scope="module")
def sections() -> dict[str, Section]:
    return _load_sections()


def _one(section: Section) -> tuple[str, str]:
    assert len(section.vkeys) == 1 and len(section.notes) == 1
    return section.vkeys[0], section.notes[0]


@pytest.fixture(scope="module")
def vec_a(sections: dict[str, Section]) -> tuple[Verifier, str]:
    vkey, note = _one(sections["A"])
    return parse_verifier_key(vkey), note


@pytest.fixture(scope="module")
def vec_b(sections: dict[str, Section]) -> tuple[Verifier, str]:
    vkey, note = _one(sections["B"])
    return parse_verifier_key(vkey), note


def _decode_skey(skey: str) -> tuple[str, bytes, bytes]:
    """transparency-dev/formats skey: PRIVATE+KEY+name+hex(keyid)+base64(0x01||seed)."""
    prefix = "PRIVATE+KEY+"
    assert skey.startswith(prefix)
    name, hex_id, b64 = skey.removeprefix(prefix).split("+", 2)
    material = base64.b64decode(b64, validate=True)
    assert material[0] == 0x01 and len(material) == 33
    return name, bytes.fromhex(hex_id), material[1:]


@dataclass
class KeyPair:
    name: str
    key: Ed25519PrivateKey
    public_raw: bytes
    vkey: str

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@pytest.fixture(scope="module")
def key_d(sections: dict[str, Section]) -> KeyPair:
    sec = sections["D"]
    assert len(sec.vkeys) == 1 and len(sec.skeys) == 1
    name, _kid, seed = _decode_skey(sec.skeys[0])
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return KeyPair(name, key, _raw_public(key), sec.vkeys[0])


def _fresh_key(name: str) -> KeyPair:
    key = Ed25519PrivateKey.generate()
    pub = _raw_public(key)
    return KeyPair(name, key, pub, verifier_key(name, pub))


def _sig_line_parts(note: str) -> tuple[str, str, str]:
    """(text, name, base64) of a note with exactly one signature line."""
    text, _, block = note.rpartition("\n\n")
    name, b64 = block.removeprefix(EM + " ").removesuffix("\n").split(" ")
    return text + "\n", name, b64


# --------------------------------------------------------------------------- A and B


def test_vector_file_shapes(sections: dict[str, Section]) -> None:
    assert set("ABCDE") <= set(sections)
    assert len(sections["C"].notes) == 1 and not sections["C"].vkeys


def test_key_ids_match_published_vkeys(
    vec_a: tuple[Verifier, str], vec_b: tuple[Verifier, str]
) -> None:
    for v, hex_id in ((vec_a[0], "530d903a"), (vec_b[0], "033de0ae")):
        assert v.key_id.hex() == hex_id
        assert key_id(v.name, v.public_raw) == v.key_id
        expected = hashlib.sha256(v.name.encode() + b"\n\x01" + v.public_raw).digest()[:4]
        assert v.key_id == expected
        assert parse_verifier_key(verifier_key(v.name, v.public_raw)) == v
        assert v.vkey == verifier_key(v.name, v.public_raw)
    assert vec_a[0].name == "example.com/foo"
    assert vec_b[0].name == "sum.golang.org"


def test_vkey_roundtrip_strings(sections: dict[str, Section]) -> None:
    for letter in "ABD":
        (vkey,) = sections[letter].vkeys
        v = parse_verifier_key(vkey)
        assert verifier_key(v.name, v.public_raw) == vkey


def test_open_example_a(vec_a: tuple[Verifier, str]) -> None:
    v, note = vec_a
    n = open_note(note, [v])
    assert n.text == "This is an example message.\n"
    assert n.verified_by == [v]
    assert len(n.sigs) == 1 and n.sigs[0].name == "example.com/foo"
    assert n.sigs[0].key_id == v.key_id and len(n.sigs[0].signature) == 64
    assert n.unverified_sigs == []
    # same note as UTF-8 bytes
    assert open_note(note.encode("utf-8"), [v]).text == n.text


def test_open_sumdb_checkpoint_b(vec_b: tuple[Verifier, str]) -> None:
    v, note = vec_b
    n = open_note(note, [v])
    cp = parse_checkpoint(n.text)
    assert cp.origin == "go.sum database tree"
    assert cp.size == 6476701
    assert cp.root == base64.b64decode("mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=")
    assert cp.extensions == []
    assert format_checkpoint(cp) == n.text
    cp2, n2 = open_checkpoint(note, "go.sum database tree", [v])
    assert cp2 == cp and n2 == n
    # formats' TestSumDBNoteParsing: a wrong expected origin must error
    with pytest.raises(OriginMismatchError):
        open_checkpoint(note, "go.sum database", [v])


def test_wrong_verifier_is_unverified(
    vec_a: tuple[Verifier, str], vec_b: tuple[Verifier, str]
) -> None:
    with pytest.raises(UnverifiedNoteError) as ei:
        open_note(vec_a[1], [vec_b[0]])
    assert not isinstance(ei.value, InvalidSignatureError)
    assert [s.name for s in ei.value.signatures] == ["example.com/foo"]
    with pytest.raises(UnverifiedNoteError):
        open_note(vec_b[1], [])


@pytest.mark.parametrize("which", ["A", "B"])
def test_every_text_byte_change_rejected(
    which: str, vec_a: tuple[Verifier, str], vec_b: tuple[Verifier, str]
) -> None:
    v, note = {"A": vec_a, "B": vec_b}[which]
    data = note.encode("utf-8")
    text_len = len(open_note(note, [v]).text.encode("utf-8"))
    outcomes: dict[str, int] = {}
    for pos in range(text_len):
        for delta in (0x01, 0x20, 0x80):
            mutated = bytearray(data)
            mutated[pos] ^= delta
            with pytest.raises((MalformedNoteError, InvalidSignatureError)) as ei:
                open_note(bytes(mutated), [v])
            kind = type(ei.value).__name__
            outcomes[kind] = outcomes.get(kind, 0) + 1
    # most single-byte changes keep the note well-formed and fail the signature itself
    assert outcomes.get("InvalidSignatureError", 0) > text_len


def test_size_digit_changes_rejected(vec_b: tuple[Verifier, str]) -> None:
    v, note = vec_b
    assert "\n6476701\n" in note
    for digit_pos in range(7):
        for d in "0123456789":
            size = list("6476701")
            if size[digit_pos] == d:
                continue
            size[digit_pos] = d
            mutated = note.replace("\n6476701\n", "\n" + "".join(size) + "\n")
            with pytest.raises(InvalidSignatureError):
                open_note(mutated, [v])
    with pytest.raises(InvalidSignatureError):
        open_note(note.replace("6476701", "6476702"), [v])


@pytest.mark.parametrize("which", ["A", "B"])
def test_altered_signature_rejected(
    which: str, vec_a: tuple[Verifier, str], vec_b: tuple[Verifier, str]
) -> None:
    v, note = {"A": vec_a, "B": vec_b}[which]
    text, name, b64 = _sig_line_parts(note)
    raw = base64.b64decode(b64)

    def with_sig(name: str, raw: bytes) -> str:
        return f"{text}\n{EM} {name} {base64.b64encode(raw).decode()}\n"

    assert open_note(with_sig(name, raw), [v]).text == text
    # every byte of the Ed25519 signature itself: the known key must reject it
    for pos in range(4, len(raw)):
        bad = bytearray(raw)
        bad[pos] ^= 0x01
        with pytest.raises(InvalidSignatureError):
            open_note(with_sig(name, bytes(bad)), [v])
    # truncated / extended signature from the known key
    for bad_raw in (raw[:-1], raw + b"\x00", raw[:5]):
        with pytest.raises(InvalidSignatureError):
            open_note(with_sig(name, bad_raw), [v])
    # a different key ID or name makes it an unknown key: ignored, so unverified
    for pos in range(4):
        bad = bytearray(raw)
        bad[pos] ^= 0x01
        with pytest.raises(UnverifiedNoteError) as ei:
            open_note(with_sig(name, bytes(bad)), [v])
        assert not isinstance(ei.value, InvalidSignatureError)
    with pytest.raises(UnverifiedNoteError) as ei:
        open_note(with_sig(name + "x", raw), [v])
    assert not isinstance(ei.value, InvalidSignatureError)


def test_unknown_signatures_ignored_but_bad_known_rejects(vec_a: tuple[Verifier, str]) -> None:
    v, note = vec_a
    text, name, b64 = _sig_line_parts(note)
    good = f"{EM} {name} {b64}\n"
    unknown = f"{EM} other.example/key {base64.b64encode(b'1234' + bytes(64)).decode()}\n"
    same_name_other_id = f"{EM} {name} {base64.b64encode(b'1234' + bytes(64)).decode()}\n"
    n = open_note(text + "\n" + unknown + good + same_name_other_id, [v])
    assert n.verified_by == [v]
    assert [s.name for s in n.sigs] == ["other.example/key", name, name]
    assert [s.key_id for s in n.unverified_sigs] == [b"1234", b"1234"]
    # duplicate good signature: still one verifier
    assert open_note(text + "\n" + good + good, [v]).verified_by == [v]
    # a known key's bad signature rejects the note even with a good one present
    bad_raw = bytearray(base64.b64decode(b64))
    bad_raw[-1] ^= 1
    bad = f"{EM} {name} {base64.b64encode(bytes(bad_raw)).decode()}\n"
    for sigs in (good + bad, bad + good):
        with pytest.raises(InvalidSignatureError):
            open_note(text + "\n" + sigs, [v])


def test_spec_example_c_shares_key_id_with_sumdb(
    sections: dict[str, Section], vec_b: tuple[Verifier, str]
) -> None:
    """C's signature has key ID 033de0ae (same as sum.golang.org) but another name:
    it must be ignored (unknown key), not treated as a failed known signature."""
    (note,) = sections["C"].notes
    v = vec_b[0]
    text, name, b64 = _sig_line_parts(note)
    assert base64.b64decode(b64)[:4] == v.key_id and name != v.name
    with pytest.raises(UnverifiedNoteError) as ei:
        open_note(note, [v])
    assert not isinstance(ei.value, InvalidSignatureError)
    cp = parse_checkpoint(text)
    assert (cp.origin, cp.size) == ("example.com/behind-the-sofa", 20852163)
    assert len(cp.root) == 32
    # same name AND id as the known key: now it must verify, and fails
    with pytest.raises(InvalidSignatureError):
        open_note(f"{text}\n{EM} {v.name} {b64}\n", [v])


# --------------------------------------------------------------------------- D: test key


def test_test_key_derives_published_vkey(key_d: KeyPair, sections: dict[str, Section]) -> None:
    name, kid, _seed = _decode_skey(sections["D"].skeys[0])
    assert name == "Log"
    assert key_id(name, key_d.public_raw) == kid == bytes.fromhex("2271c621")
    assert verifier_key(name, key_d.public_raw) == key_d.vkey
    assert parse_verifier_key(key_d.vkey) == Verifier.from_public(name, key_d.public_raw)


def test_sign_and_open_checkpoint_with_test_key(key_d: KeyPair) -> None:
    v = parse_verifier_key(key_d.vkey)
    cp = Checkpoint("Log", 123, hashlib.sha256(b"root").digest(), ["ext one", "ext two"])
    note = sign_note(format_checkpoint(cp), key_d.name, key_d.sign, key_d.public_raw)
    assert note.startswith("Log\n123\n")
    assert f"\n\n{EM} Log " in note and note.endswith("\n")
    got, n = open_checkpoint(note, "Log", [v])
    assert got == cp and n.verified_by == [v]
    # Ed25519 is deterministic: signing again gives the same note
    assert sign_note(format_checkpoint(cp), key_d.name, key_d.sign, key_d.public_raw) == note
    with pytest.raises(InvalidSignatureError):
        open_note(note.replace("\n123\n", "\n124\n"), [v])


def test_cosign_with_add_signature(key_d: KeyPair) -> None:
    log = parse_verifier_key(key_d.vkey)
    witness = _fresh_key("witness.example/w1")
    wv = parse_verifier_key(witness.vkey)
    text = format_checkpoint(Checkpoint("Log", 0, bytes(32)))
    note = sign_note(text, key_d.name, key_d.sign, key_d.public_raw)
    cosigned = add_signature(note, witness.name, witness.sign, witness.public_raw)
    assert cosigned.startswith(note)
    n = open_note(cosigned, [log, wv])
    assert n.verified_by == [log, wv]
    assert open_note(cosigned, [wv]).verified_by == [wv]
    # re-adding the same key replaces its line rather than duplicating it
    again = add_signature(cosigned, witness.name, witness.sign, witness.public_raw)
    assert again == cosigned


# --------------------------------------------------------------------------- signing


@pytest.mark.parametrize(
    "text",
    [
        "x\n",
        "\n",
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n"
        "\ned è subito sera.\n",
        "ends in blank lines\n\n\n",
        f"{EM} looks like a signature line\n\n{EM} too\n",
        "tab-free\x7f DEL and C1 \u0085 are not ASCII controls\n",
        "emoji \U0001f600 and \ufeff BOM\n",
    ],
)
def test_sign_open_roundtrip_texts(text: str) -> None:
    k = _fresh_key("example.com/signer")
    note = sign_note(text, k.name, k.sign, k.public_raw)
    assert note.startswith(text + "\n" + EM + " example.com/signer ")
    assert open_note(note, [parse_verifier_key(k.vkey)]).text == text


@pytest.mark.parametrize(
    "text", ["", "no final newline", "cr\r\n", "tab\t\n", "nul\x00\n", "surrogate \ud800\n"]
)
def test_sign_rejects_bad_text(text: str) -> None:
    k = _fresh_key("example.com/signer")
    with pytest.raises(MalformedNoteError):
        sign_note(text, k.name, k.sign, k.public_raw)


@pytest.mark.parametrize(
    "name", ["", "a b", "a+b", "a\tb", "a\nb", "a\u00a0b", "a\u3000b", "a\x00"]
)
def test_sign_rejects_bad_names(name: str) -> None:
    k = _fresh_key("ok")
    with pytest.raises(InvalidKeyError):
        sign_note("x\n", name, k.sign, k.public_raw)


def test_sign_checks_signature_matches_public_key() -> None:
    k, other = _fresh_key("a"), _fresh_key("a")
    with pytest.raises(SigningError):
        sign_note("x\n", "a", other.sign, k.public_raw)
    with pytest.raises(SigningError):
        sign_note("x\n", "a", lambda m: b"\x00" * 64, k.public_raw)
    with pytest.raises(InvalidKeyError):
        sign_note("x\n", "a", k.sign, k.public_raw[:31])


# --------------------------------------------------------------------------- malformed notes


def _good_note() -> tuple[str, Verifier]:
    k = _fresh_key("example.com/k")
    return sign_note("hello\n", k.name, k.sign, k.public_raw), parse_verifier_key(k.vkey)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda n: n.replace("\n\n", "\n"),  # no blank line
        lambda n: n.removesuffix("\n"),  # no final newline
        lambda n: n + "\n",  # trailing blank line after signatures
        lambda n: n.replace(EM + " ", "- "),  # ASCII dash
        lambda n: n.replace(EM + " ", EM),  # no space after dash
        lambda n: n.replace(EM + " ", EM + "  "),  # empty name
        lambda n: n.replace("example.com/k ", "example.com/k  "),  # double space
        lambda n: n.replace("example.com/k ", "example.com/k\t"),  # tab (control + no space)
        lambda n: n.replace("example.com/k ", "example.com+k "),  # '+' in name
        lambda n: n.replace("=\n", "\n"),  # unpadded base64
        lambda n: n[: n.rindex(" ") + 1] + "!!!!\n",  # not base64
        lambda n: n[: n.rindex(" ") + 1] + "AAAAAA==\n",  # key ID only, no signature
        lambda n: n[: n.rindex(" ") + 1] + "\n",  # empty signature
        lambda n: n.replace("\n", "\r\n"),  # CRLF
        lambda n: "\x01" + n,  # control char in text
        lambda n: n.replace("hello", "hel\ud800lo"),  # lone surrogate
    ],
)
def test_malformed_notes(mutate: object) -> None:
    note, v = _good_note()
    assert open_note(note, [v])
    bad = mutate(note)  # type: ignore[operator]
    assert bad != note
    with pytest.raises(MalformedNoteError):
        open_note(bad, [v])


def test_malformed_bytes() -> None:
    note, v = _good_note()
    for bad in (
        b"\xff" + note.encode(),
        note.encode().replace(b"hello", b"h\xc3(llo"),
        b"\xed\xa0\x80\n\n" + note.encode(),
    ):
        with pytest.raises(MalformedNoteError):
            open_note(bad, [v])


def test_non_canonical_base64_signature_rejected() -> None:
    note, v = _good_note()
    text, name, b64 = _sig_line_parts(note)
    # 68 bytes -> 92 chars ending in one '='; the last data char carries 2 pad bits
    assert b64.endswith("=") and not b64.endswith("==")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(b64[-2])
    assert last % 4 == 0
    tweaked = b64[:-2] + alphabet[last + 1] + "="
    assert base64.b64decode(tweaked) == base64.b64decode(b64)  # lenient decoders agree
    with pytest.raises(MalformedNoteError):
        open_note(f"{text}\n{EM} {name} {tweaked}\n", [v])


def test_signature_count_limit() -> None:
    note, v = _good_note()
    text, name, b64 = _sig_line_parts(note)
    good = f"{EM} {name} {b64}\n"
    filler = f"{EM} other.example {base64.b64encode(b'abcd' + bytes(64)).decode()}\n"
    # the spec's floor of 16, and our default cap of 100, are accepted
    for count in (16, MAX_SIGNATURES):
        assert open_note(text + "\n" + filler * (count - 1) + good, [v]).verified_by == [v]
    with pytest.raises(MalformedNoteError, match="limit"):
        open_note(text + "\n" + filler * MAX_SIGNATURES + good, [v])
    assert open_note(text + "\n" + filler * 150 + good, [v], max_signatures=151)
    with pytest.raises(ValueError):
        open_note(note, [v], max_signatures=15)
    w = _fresh_key("x.example")
    full = text + "\n" + filler * (MAX_SIGNATURES - 1) + good
    with pytest.raises(MalformedNoteError):
        add_signature(full, w.name, w.sign, w.public_raw)


def test_text_split_uses_last_blank_line() -> None:
    k = _fresh_key("k")
    v = parse_verifier_key(k.vkey)
    text = "a\n\nb\n\n"
    note = sign_note(text, k.name, k.sign, k.public_raw)
    assert note == "a\n\nb\n\n\n" + f"{EM} k " + note.rsplit(" ", 1)[1]
    assert open_note(note, [v]).text == text


def _colliding_public_keys(name: str) -> tuple[bytes, bytes]:
    """Two 32-byte public keys with the same 4-byte key ID (birthday search, ~65k hashes)."""
    seen: dict[bytes, bytes] = {}
    i = 0
    while True:
        pub = hashlib.sha256(b"collide" + i.to_bytes(8, "big")).digest()
        kid = key_id(name, pub)
        if kid in seen:
            return seen[kid], pub
        seen[kid] = pub
        i += 1


def test_ambiguous_verifiers_rejected() -> None:
    note, v = _good_note()
    assert open_note(note, [v, v]).verified_by == [v]  # identical duplicates are fine
    with pytest.raises(InvalidKeyError):  # the key ID must match name and key
        Verifier(v.name, v.key_id, _fresh_key(v.name).public_raw)
    # a genuine key-ID collision under one name: the verifier set is ambiguous
    p1, p2 = _colliding_public_keys(v.name)
    v1, v2 = Verifier.from_public(v.name, p1), Verifier.from_public(v.name, p2)
    assert v1.key_id == v2.key_id and v1 != v2
    with pytest.raises(InvalidKeyError, match="share"):
        open_note(note, [v1, v2])


# --------------------------------------------------------------------------- vkeys


A_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"


def _vkey_with(name: str, alg: int, pub: bytes, kid: bytes | None = None) -> str:
    if kid is None:
        kid = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + pub).digest()[:4]
    return f"{name}+{kid.hex()}+{base64.b64encode(bytes([alg]) + pub).decode()}"


def test_parse_verifier_key_rejects() -> None:
    good = parse_verifier_key(A_VKEY)
    pub = good.public_raw
    bad = [
        "",
        "example.com/foo",
        "example.com/foo+530d903a",
        "+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # empty name
        A_VKEY.replace("530d903a", "530D903A"),  # uppercase hex
        A_VKEY.replace("530d903a", "530d903"),  # short key id
        A_VKEY.replace("530d903a", "530d903b"),  # key id mismatch
        A_VKEY + "\n",
        " " + A_VKEY,
        A_VKEY.removesuffix("k") + "=",  # broken base64
        A_VKEY.replace("example.com/foo", "example.com/fo"),  # id mismatch via name
        _vkey_with("ex ample", 1, pub),  # space in name, but ID consistent
        _vkey_with("ex\u2003ample", 1, pub),  # EM SPACE
        _vkey_with("ex\x00ample", 1, pub),  # control char
        _vkey_with("example.com/foo", 2, pub),  # wrong algorithm, consistent ID
        _vkey_with("example.com/foo", 0x04, pub),
        _vkey_with("example.com/foo", 1, pub[:31]),  # short key
        _vkey_with("example.com/foo", 1, pub + b"\x00"),  # long key
        _vkey_with("example.com/foo", 1, b""),
        "example.com/foo+530d903a+",
    ]
    for s in bad:
        with pytest.raises(InvalidKeyError):
            parse_verifier_key(s)
    with pytest.raises(InvalidKeyError, match="signature type"):
        parse_verifier_key(_vkey_with("example.com/foo", 2, pub))
    with pytest.raises(InvalidKeyError, match="32"):
        parse_verifier_key(_vkey_with("example.com/foo", 1, pub[:31]))
    with pytest.raises(InvalidKeyError, match="does not match"):
        parse_verifier_key(A_VKEY.replace("530d903a", "530d903b"))
    # NoteError is a ValueError
    assert issubclass(InvalidKeyError, NoteError) and issubclass(NoteError, ValueError)


def test_key_id_rejects_bad_input() -> None:
    with pytest.raises(InvalidKeyError):
        key_id("a b", bytes(32))
    with pytest.raises(InvalidKeyError):
        key_id("ab", bytes(31))


# --------------------------------------------------------------------------- E: bodies

ROOT_37 = "dGhlIHZpZXcgZnJvbSB0aGUgdHJlZSB0b3BzIGlzIGdyZWF0IQ=="  # 37 bytes
ROOT_32 = base64.b64encode(hashlib.sha256(b"custody").digest()).decode()

# (file spelling with literal \n, what formats says)
E_LISTED = [
    ("Log\n123\nYmFuYW5hcw==\n", "valid"),
    (f"Log\n9944\n{ROOT_37}\nHere's some associated data.\n", "valid"),
    (f"Log\n9944\n{ROOT_37}\n\n\n\n", "valid"),
    ("Head\n9944\n", "invalid"),
    ("Log\n123\nYmFuYW5hcw==", "invalid"),
    ("Log\n123\nThisIsn'tBase64\n", "invalid"),
]


def test_e_literals_are_the_files(sections: dict[str, Section]) -> None:
    text = VECTORS_FILE.read_text(encoding="utf-8")
    for body, verdict in E_LISTED:
        escaped = body.replace("\n", "\\n")
        assert re.search(rf'^{verdict}\s+"{re.escape(escaped)}"', text, re.M), body


def test_e_valid_cases_under_custody_rules() -> None:
    # formats' "valid" bodies with an 8- or 37-byte root: custody requires 32 bytes
    for body in (
        "Log\n123\nYmFuYW5hcw==\n",
        f"Log\n9944\n{ROOT_37}\nHere's some associated data.\n",
    ):
        with pytest.raises(MalformedCheckpointError, match="32"):
            parse_checkpoint(body)
    # ...and is valid once the root is a 32-byte hash
    cp = parse_checkpoint(f"Log\n123\n{ROOT_32}\n")
    assert (cp.origin, cp.size, cp.extensions) == ("Log", 123, [])
    cp = parse_checkpoint(f"Log\n9944\n{ROOT_32}\nHere's some associated data.\n")
    assert (cp.origin, cp.size) == ("Log", 9944)
    assert cp.extensions == ["Here's some associated data."]
    assert format_checkpoint(cp) == f"Log\n9944\n{ROOT_32}\nHere's some associated data.\n"


def test_e_trailing_newlines_rejected() -> None:
    # tlog-checkpoint: every line is non-empty ("Extension lines, if any, MUST be
    # non-empty"), so formats' leniency is not followed, with either root length
    for root in (ROOT_37, ROOT_32):
        with pytest.raises(MalformedCheckpointError):
            parse_checkpoint(f"Log\n9944\n{root}\n\n\n\n")
    for tail in ("\n", "\n\n", "ext\n\n", "\next\n"):
        with pytest.raises(MalformedCheckpointError, match="empty"):
            parse_checkpoint(f"Log\n9944\n{ROOT_32}\n{tail}")


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("Head\n9944\n", "lines"),
        (f"\n9944\n{ROOT_37}\n", "origin"),
        (f"\n9944\n{ROOT_32}\n", "origin"),
        ("Log\n123\nYmFuYW5hcw==", "newline"),
        (f"Log\n123\n{ROOT_32}", "newline"),
        (f"Log\nbananas\n{ROOT_32}\n", "size"),
        (f"Log\n-34\n{ROOT_32}\n", "size"),
        (f"Log\n3438945738945739845734895735\n{ROOT_32}\n", "size"),
        ("Log\n123\nThisIsn'tBase64\n", "base64"),
        # custody's stricter rules
        (f"Log\n0123\n{ROOT_32}\n", "size"),
        (f"Log\n00\n{ROOT_32}\n", "size"),
        (f"Log\n+1\n{ROOT_32}\n", "size"),
        (f"Log\n 1\n{ROOT_32}\n", "size"),
        (f"Log\n1_000\n{ROOT_32}\n", "size"),
        (f"Log\n\u0661\u0662\n{ROOT_32}\n", "size"),  # Arabic-Indic digits: int() accepts
        (f"Log\n18446744073709551616\n{ROOT_32}\n", "size"),
        (f"Log\n{'9' * 5000}\n{ROOT_32}\n", "size"),  # beyond int()'s digit limit
        (f"Log\n\n{ROOT_32}\n", "size"),
        (f"Log\n1\n{ROOT_32.rstrip('=')}\n", "base64"),
        (f"Log\n1\n {ROOT_32}\n", "base64"),
        (f"Log\n1\n{base64.b64encode(bytes(31)).decode()}\n", "32"),
        (f"Log\n1\n{base64.b64encode(bytes(33)).decode()}\n", "32"),
        ("Log\n1\n\n", "32"),  # empty root decodes to 0 bytes
        (f"Log\r\n1\n{ROOT_32}\n", "control"),
        (f"Log\n1\n{ROOT_32}\r\n", "control"),
        ("", "newline"),
        ("\n", "lines"),
    ],
)
def test_e_invalid_bodies(body: str, why: str) -> None:
    with pytest.raises(MalformedCheckpointError, match=why):
        parse_checkpoint(body)


def test_size_bounds() -> None:
    for size in (0, 1, 2**64 - 1):
        cp = parse_checkpoint(f"Log\n{size}\n{ROOT_32}\n")
        assert cp.size == size
        assert format_checkpoint(cp) == f"Log\n{size}\n{ROOT_32}\n"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": ""},
        {"origin": "a\nb"},
        {"origin": "a\rb"},
        {"size": -1},
        {"size": 2**64},
        {"size": True},
        {"root": bytes(31)},
        {"extensions": [""]},
        {"extensions": ["a\nb"]},
    ],
)
def test_checkpoint_constructor_validates(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"origin": "Log", "size": 1, "root": bytes(32), "extensions": []}
    args.update(kwargs)
    with pytest.raises(MalformedCheckpointError):
        Checkpoint(**args)  # type: ignore[arg-type]


def test_format_revalidates_mutated_extensions() -> None:
    cp = Checkpoint("Log", 1, bytes(32), [])
    cp.extensions.append("")
    with pytest.raises(MalformedCheckpointError):
        format_checkpoint(cp)


# --------------------------------------------------------------------------- properties

# codec="utf-8" excludes lone surrogates
_line_chars = st.characters(codec="utf-8", exclude_characters="\n").filter(lambda c: c >= " ")
lines = st.text(_line_chars, min_size=1, max_size=40)
names = st.text(
    st.characters(exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")).filter(
        lambda c: c != "+" and not c.isspace()
    ),
    min_size=1,
    max_size=30,
)
checkpoints = st.builds(
    Checkpoint,
    origin=lines,
    size=st.integers(min_value=0, max_value=2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(lines, max_size=4),
)
texts = st.lists(st.text(_line_chars, max_size=30), min_size=1, max_size=6).map(
    lambda ls: "".join(x + "\n" for x in ls)
)

_SIGNER = Ed25519PrivateKey.generate()
_SIGNER_PUB = _raw_public(_SIGNER)


@given(checkpoints)
def test_checkpoint_roundtrip(cp: Checkpoint) -> None:
    body = format_checkpoint(cp)
    assert parse_checkpoint(body) == cp
    assert format_checkpoint(parse_checkpoint(body)) == body


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cp=checkpoints, name=names)
def test_signed_checkpoint_roundtrip(cp: Checkpoint, name: str) -> None:
    v = Verifier.from_public(name, _SIGNER_PUB)
    assert parse_verifier_key(v.vkey) == v
    note = sign_note(format_checkpoint(cp), name, _SIGNER.sign, _SIGNER_PUB)
    got, n = open_checkpoint(note, cp.origin, [v])
    assert got == cp and n.verified_by == [v]


@settings(deadline=None)
@given(text=texts, name=names)
def test_sign_open_roundtrip(text: str, name: str) -> None:
    v = Verifier.from_public(name, _SIGNER_PUB)
    note = sign_note(text, name, _SIGNER.sign, _SIGNER_PUB)
    n = open_note(note, [v])
    assert n.text == text and n.verified_by == [v]
    assert open_note(note.encode("utf-8"), [v]).text == text


_A_NOTE_FRAGMENTS = [
    "\n",
    "\n\n",
    EM,
    EM + " ",
    " ",
    "+",
    "=",
    "==",
    "/",
    "A",
    "0",
    "9",
    "-",
    "\r",
    "\t",
    "\x00",
    "\ud800",
    "\x7f",
    "\u00a0",
    "é",
    "Log",
    "example.com/foo",
    "Uw2QOkn8",
    "AAAAAAAA",
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=",
    "mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=",
    "18446744073709551616",
    "This is an example",
]
garbage_text = st.one_of(
    st.text(st.characters(exclude_categories=())),  # includes lone surrogates
    st.lists(st.sampled_from(_A_NOTE_FRAGMENTS), max_size=30).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(garbage=st.one_of(garbage_text, st.binary()))
def test_garbage_raises_only_note_errors(garbage: str | bytes) -> None:
    v = parse_verifier_key(A_VKEY)
    try:
        open_note(garbage, [v])
    except NoteError:
        pass
    if isinstance(garbage, str):
        for fn in (parse_checkpoint, parse_verifier_key):
            try:
                fn(garbage)
            except NoteError:
                pass


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_valid_note_raises_only_note_errors(
    data: st.DataObject, vec_a: tuple[Verifier, str]
) -> None:
    v, note = vec_a
    chars = list(note)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(chars) - 1))
        op = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        c = data.draw(st.sampled_from(_A_NOTE_FRAGMENTS))
        if op == "replace":
            chars[i] = c
        elif op == "insert":
            chars.insert(i, c)
        elif len(chars) > 1:
            del chars[i]
    mutated = "".join(chars)
    try:
        n = open_note(mutated, [v])
    except NoteError:
        return
    # if it still opens, the signed text must be exactly the original text
    assert n.text == "This is an example message.\n"


def test_signature_dataclass_line() -> None:
    s = Signature("n", b"\x00\x01\x02\x03", b"\xff" * 3)
    assert s.line() == f"{EM} n AAECA////w==\n"
