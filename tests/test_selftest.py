"""custody.selftest: the known-answer self-test and its signed record.

* every check passes on this machine, the list of checks is exactly the expected one,
  and the result is plain JSON (no floats) that fits a signed body;
* corrupting one embedded vector fails exactly the check(s) that use it;
* faults injected into custody's own code paths (a wrong digest, a verifier that
  accepts anything, a broken threaded hasher, a missing libmagic ...) are caught,
  and a check that raises never crashes the run;
* the embedded vectors are the official ones in tests/vectors;
* record_selftest writes a signed event that verify accepts.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import VECTORS
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jsonschema import Draft202012Validator

import custody.canonical as canonical
import custody.hashing as hashing
import custody.keys as keys
import custody.merkle as merkle
from custody import selftest
from custody.keys import Signer
from custody.ledger import Ledger
from custody.selftest import (
    SELFTEST_EVENT,
    SelftestResult,
    case_has_selftest,
    record_selftest,
    run_selftest,
    selftest_events,
)
from custody.store import Store
from custody.verify import verify_ledger

ROOT = Path(__file__).resolve().parents[1]

EXPECTED_CHECKS = [
    "hash.md5",
    "hash.sha1",
    "hash.sha256",
    "hash.sha512",
    "hash.blake2b",
    "hash.million-a.serial",
    "hash.million-a.threaded",
    "hash.threaded-file",
    "ed25519.rfc8032-test-1",
    "ed25519.rfc8032-test-2",
    "ed25519.rfc8032-test-3",
    "ed25519.rfc8032-test-sha-abc",
    "jcs.rfc8785-vectors",
    "jcs.rfc8785-numbers",
    "merkle.tree-hash",
    "merkle.inclusion",
    "merkle.consistency",
    "magic.png",
    "magic.pdf",
    "magic.gzip",
    "magic.elf",
    "magic.text",
    "magic.data",
    "store.roundtrip",
]


@pytest.fixture(scope="module")
def result() -> SelftestResult:
    return run_selftest()


def failed(r: SelftestResult) -> set[str]:
    return {c.name for c in r.checks if not c.ok}


def describe(r: SelftestResult) -> str:
    return "\n".join(f"{c.name}: {c.detail}" for c in r.checks if not c.ok)


# -- the self-test itself ------------------------------------------------------------


def test_every_check_passes(result: SelftestResult) -> None:
    assert result.ok, describe(result)
    assert all(c.ok for c in result.checks)
    assert result.failed == []


def test_generous_time_bound(result: SelftestResult) -> None:
    """The target is under 2 s on the field machine (benchmarks measure it); this only
    catches something pathologically slow."""
    assert result.seconds < 10
    assert sum(c.seconds for c in result.checks) <= result.seconds


def test_check_names_are_exactly_these(result: SelftestResult) -> None:
    assert [c.name for c in result.checks] == EXPECTED_CHECKS


def test_every_hash_algorithm_the_tool_offers_is_tested(result: SelftestResult) -> None:
    names = {c.name for c in result.checks}
    assert {f"hash.{a}" for a in hashing.ALGORITHMS} <= names
    assert set(hashing.parse_algorithms(",".join(hashing.ALGORITHMS))) == set(hashing.ALGORITHMS)
    assert set(selftest.HASH_VECTORS) == set(hashing.ALGORITHMS)
    for table in (
        selftest.MILLION_A_DIGESTS,
        selftest.THREADED_FILE_DIGESTS,
        selftest.STORE_SAMPLE_DIGESTS,
    ):
        assert set(table) == set(hashing.ALGORITHMS)


def test_every_check_names_its_standard_and_says_what_it_did(result: SelftestResult) -> None:
    for c in result.checks:
        assert c.standard and c.detail, c
        assert c.seconds >= 0


def test_threaded_checks_really_take_the_threaded_path() -> None:
    assert selftest.THREADED_FILE_SIZE >= hashing.THREADED_MIN
    assert selftest.THREADED_FILE_SIZE > hashing.RING * hashing.CHUNK  # the ring is reused
    assert selftest.MILLION_A_LENGTH < hashing.THREADED_MIN  # the serial check is serial


def test_as_json_is_plain_signable_json(result: SelftestResult) -> None:
    data = result.as_json()
    raw = canonical.canonical_json(data)  # refuses floats and non-JSON values
    assert canonical.parse_canonical(raw) == data
    assert json.loads(raw) == data

    def no_floats(v: Any) -> None:
        assert not isinstance(v, float), v
        if isinstance(v, dict):
            for x in v.values():
                no_floats(x)
        elif isinstance(v, list):
            for x in v:
                no_floats(x)

    no_floats(data)
    assert data["ok"] is True
    assert data["passed"] == len(EXPECTED_CHECKS) and data["failed"] == 0
    assert isinstance(data["microseconds"], int) and data["microseconds"] > 0
    assert [c["name"] for c in data["checks"]] == EXPECTED_CHECKS
    for c in data["checks"]:
        assert set(c) == {"name", "standard", "ok", "detail", "microseconds"}
        assert isinstance(c["microseconds"], int) and c["microseconds"] >= 0
    plat = data["platform"]
    assert all(isinstance(v, str) for v in plat.values())
    assert plat["python"] == ".".join(map(str, sys.version_info[:3]))
    for key in ("openssl", "cryptography", "libmagic", "machine", "os", "custody"):
        assert plat[key], key
    assert plat["libmagic"][0].isdigit()


# -- corrupted vectors fail exactly their check --------------------------------------


def _flip_hex(h: str) -> str:
    return ("1" if h[0] == "0" else "0") + h[1:]


def _corrupt_hash(mp: pytest.MonkeyPatch) -> None:
    table = dict(selftest.HASH_VECTORS)
    first, *rest = table["sha256"]
    table["sha256"] = (dataclasses.replace(first, digest=_flip_hex(first.digest)), *rest)
    mp.setattr(selftest, "HASH_VECTORS", table)


def _corrupt_ed25519(mp: pytest.MonkeyPatch) -> None:
    vs = list(selftest.ED25519_VECTORS)
    vs[2] = dataclasses.replace(vs[2], signature=_flip_hex(vs[2].signature))
    mp.setattr(selftest, "ED25519_VECTORS", tuple(vs))


def _corrupt_ed25519_public(mp: pytest.MonkeyPatch) -> None:
    vs = list(selftest.ED25519_VECTORS)
    vs[3] = dataclasses.replace(vs[3], public_key=_flip_hex(vs[3].public_key))
    mp.setattr(selftest, "ED25519_VECTORS", tuple(vs))


def _corrupt_jcs(mp: pytest.MonkeyPatch) -> None:
    vs = list(selftest.JCS_VECTORS)
    vs[-1] = dataclasses.replace(vs[-1], output=vs[-1].output.replace(b"Smiley", b"smiley"))
    mp.setattr(selftest, "JCS_VECTORS", tuple(vs))


def _corrupt_jcs_number(mp: pytest.MonkeyPatch) -> None:
    nums = list(selftest.JCS_NUMBERS)
    nums[10] = (nums[10][0], "1.0e+23")  # 44b52d02c7e14af6 is "1e+23"
    mp.setattr(selftest, "JCS_NUMBERS", tuple(nums))


def _corrupt_inclusion(mp: pytest.MonkeyPatch) -> None:
    vs = list(selftest.MERKLE_INCLUSION)
    index, size, path = vs[2]
    vs[2] = (index, size, (path[0], _flip_hex(path[1]), path[2]))
    mp.setattr(selftest, "MERKLE_INCLUSION", tuple(vs))


def _corrupt_consistency(mp: pytest.MonkeyPatch) -> None:
    vs = list(selftest.MERKLE_CONSISTENCY)
    s1, s2, path = vs[3]
    vs[3] = (s1, s2, (path[1], path[0]))  # swapped
    mp.setattr(selftest, "MERKLE_CONSISTENCY", tuple(vs))


def _corrupt_magic(mp: pytest.MonkeyPatch) -> None:
    samples = list(selftest.MAGIC_SAMPLES)
    i = next(i for i, s in enumerate(samples) if s.name == "pdf")
    samples[i] = dataclasses.replace(samples[i], mime=("application/x-pdf",))
    mp.setattr(selftest, "MAGIC_SAMPLES", tuple(samples))


def _corrupt_store(mp: pytest.MonkeyPatch) -> None:
    table = dict(selftest.STORE_SAMPLE_DIGESTS)
    table["sha1"] = _flip_hex(table["sha1"])
    mp.setattr(selftest, "STORE_SAMPLE_DIGESTS", table)


def _corrupt_million(mp: pytest.MonkeyPatch) -> None:
    table = dict(selftest.MILLION_A_DIGESTS)
    table["blake2b"] = _flip_hex(table["blake2b"])
    mp.setattr(selftest, "MILLION_A_DIGESTS", table)


def _corrupt_threaded(mp: pytest.MonkeyPatch) -> None:
    table = dict(selftest.THREADED_FILE_DIGESTS)
    table["md5"] = _flip_hex(table["md5"])
    mp.setattr(selftest, "THREADED_FILE_DIGESTS", table)


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (_corrupt_hash, {"hash.sha256"}),
        (_corrupt_ed25519, {"ed25519.rfc8032-test-3"}),
        (_corrupt_ed25519_public, {"ed25519.rfc8032-test-sha-abc"}),
        (_corrupt_jcs, {"jcs.rfc8785-vectors"}),
        (_corrupt_jcs_number, {"jcs.rfc8785-numbers"}),
        (_corrupt_inclusion, {"merkle.inclusion"}),
        (_corrupt_consistency, {"merkle.consistency"}),
        (_corrupt_magic, {"magic.pdf"}),
        (_corrupt_store, {"store.roundtrip"}),
        # one table, read by the serial and the threaded check
        (_corrupt_million, {"hash.million-a.serial", "hash.million-a.threaded"}),
        (_corrupt_threaded, {"hash.threaded-file"}),
    ],
    ids=lambda v: getattr(v, "__name__", "")[len("_corrupt_") :] or None,
)
def test_a_corrupted_vector_fails_exactly_its_check(
    monkeypatch: pytest.MonkeyPatch, corrupt: Any, expected: set[str]
) -> None:
    corrupt(monkeypatch)
    r = run_selftest()
    assert failed(r) == expected, describe(r)
    assert r.ok is False
    assert r.as_json()["ok"] is False
    assert r.as_json()["failed"] == len(expected)
    assert [c.name for c in r.checks] == EXPECTED_CHECKS


def test_failure_detail_names_the_vector_and_both_values(monkeypatch: pytest.MonkeyPatch) -> None:
    _corrupt_hash(monkeypatch)
    r = run_selftest()
    (check,) = r.failed
    assert "FIPS 180-2 B.1" in check.detail
    assert "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" in check.detail


# -- faults in custody's own code are caught ------------------------------------------


def test_wrong_digest_from_the_hashing_code(monkeypatch: pytest.MonkeyPatch) -> None:
    real = hashing.new_hash

    def bad(name: str) -> Any:
        return hashlib.sha256(b"\0") if name == "sha256" else real(name)

    monkeypatch.setattr(hashing, "new_hash", bad)
    r = run_selftest()
    assert failed(r) == {
        "hash.sha256",
        "hash.million-a.serial",
        "hash.million-a.threaded",
        "hash.threaded-file",
        "store.roundtrip",
    }, describe(r)


def test_threaded_hasher_that_loses_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the threaded path is broken: the serial checks still pass."""
    real = hashing._group

    def drop_last(weighted: Any, n: int) -> Any:
        groups = real(weighted, n)
        return [*groups[:-1], lambda mv: None]

    monkeypatch.setattr(hashing, "_group", drop_last)
    r = run_selftest()
    assert failed(r) == {"hash.million-a.threaded", "hash.threaded-file"}, describe(r)


def test_verifier_that_accepts_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "verify_signature", lambda *a: True)
    r = run_selftest()
    assert failed(r) == {n for n in EXPECTED_CHECKS if n.startswith("ed25519.")}
    assert all("rejected" not in c.detail for c in r.failed)


def test_signer_that_signs_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    real = Signer.sign
    monkeypatch.setattr(Signer, "sign", lambda self, m: real(self, m + b"!"))
    r = run_selftest()
    assert failed(r) == {n for n in EXPECTED_CHECKS if n.startswith("ed25519.")}


def test_non_canonical_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """json.dumps with its defaults is not RFC 8785: it escapes non-ASCII (caught by
    the vectors) and would let floats into signed bodies (caught by the numbers)."""
    monkeypatch.setattr(
        canonical,
        "canonical_json",
        lambda v: json.dumps(v, sort_keys=True, separators=(",", ":")).encode(),
    )
    r = run_selftest()
    assert failed(r) == {"jcs.rfc8785-vectors", "jcs.rfc8785-numbers"}, describe(r)
    assert "french (canonical_json)" in r.failed[0].detail


def test_merkle_verifier_that_accepts_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(merkle, "verify_inclusion", lambda *a: None)
    monkeypatch.setattr(merkle, "verify_consistency", lambda *a: None)
    r = run_selftest()
    assert failed(r) == {"merkle.inclusion", "merkle.consistency"}, describe(r)


def test_wrong_merkle_proof(monkeypatch: pytest.MonkeyPatch) -> None:
    real = merkle.inclusion_proof
    monkeypatch.setattr(merkle, "inclusion_proof", lambda *a: real(*a)[::-1])
    r = run_selftest()
    assert failed(r) == {"merkle.inclusion"}, describe(r)


def test_missing_libmagic_fails_the_magic_checks_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "magic", None)  # import magic -> ImportError
    r = run_selftest()
    assert failed(r) == {n for n in EXPECTED_CHECKS if n.startswith("magic.")}
    assert all(c.detail.startswith("ModuleNotFoundError: import of magic") for c in r.failed)
    assert r.platform["libmagic"].startswith("unknown")


def test_a_check_that_raises_is_a_failure_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: Any, **k: Any) -> Any:
        raise OSError(28, "No space left on device (injected)")

    monkeypatch.setattr(Store, "ingest", boom)
    r = run_selftest()
    assert failed(r) == {"store.roundtrip"}
    assert "No space left on device (injected)" in r.failed[0].detail
    assert r.failed[0].detail.startswith("OSError")


def test_no_scratch_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a temporary directory the file-based checks fail; the rest still run
    (the threaded one-million-'a' check reads from a pipe, not a file)."""

    def refuse(*a: Any, **k: Any) -> Any:
        raise OSError(30, "Read-only file system (injected)")

    monkeypatch.setattr(tempfile, "TemporaryDirectory", refuse)
    r = run_selftest()
    assert [c.name for c in r.checks] == EXPECTED_CHECKS
    assert not r.ok
    passing = {c.name for c in r.checks if c.ok}
    assert passing == {
        n for n in EXPECTED_CHECKS if n.split(".")[0] in {"ed25519", "jcs", "merkle"}
    } | {"hash.million-a.threaded"}
    assert all("Read-only file system (injected)" in c.detail for c in r.failed)


def test_an_algorithm_without_vectors_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding a hash algorithm to custody without known answers fails the self-test."""
    monkeypatch.setattr(hashing, "ALGORITHMS", (*hashing.ALGORITHMS, "sha384"))
    r = run_selftest()
    assert "hash.sha384" in [c.name for c in r.checks]
    assert failed(r) == {
        "hash.sha384",
        "hash.million-a.serial",
        "hash.million-a.threaded",
        "hash.threaded-file",
        "store.roundtrip",
    }, describe(r)
    assert "no known-answer vectors for sha384" in r.failed[0].detail


# -- the embedded vectors are the official ones --------------------------------------


def test_embedded_ed25519_vectors_match_the_vector_files() -> None:
    data = json.loads((VECTORS / "ed25519_rfc8032.json").read_text())
    official = {v["name"]: v for v in data["vectors"]}
    names = {
        "test-1": "RFC 8032 s7.1 TEST 1",
        "test-2": "RFC 8032 s7.1 TEST 2",
        "test-3": "RFC 8032 s7.1 TEST 3",
        "test-sha-abc": "RFC 8032 s7.1 TEST SHA(abc) (message = SHA-512('abc'))",
    }
    assert [v.name for v in selftest.ED25519_VECTORS] == list(names)
    for v in selftest.ED25519_VECTORS:
        o = official[names[v.name]]
        assert (v.secret_key, v.public_key, v.message, v.signature) == (
            o["secret_key"],
            o["public_key"],
            o["message"],
            o["signature"],
        )


def test_embedded_jcs_vectors_match_the_vector_files() -> None:
    d = VECTORS / "jcs_rfc8785"
    names = sorted(p.stem for p in (d / "input").glob("*.json"))
    assert sorted(v.name for v in selftest.JCS_VECTORS) == names
    for v in selftest.JCS_VECTORS:
        assert json.loads(v.input) == json.loads((d / "input" / f"{v.name}.json").read_text())
        assert v.output == (d / "output" / f"{v.name}.json").read_bytes()
        hexed = (d / "outhex" / f"{v.name}.txt").read_text().split()
        assert v.output == bytes.fromhex("".join(hexed))


def test_embedded_merkle_vectors_match_the_vector_files() -> None:
    data = json.loads((VECTORS / "merkle_rfc6962.json").read_text())
    assert list(selftest.MERKLE_LEAF_INPUTS) == data["leaf_inputs_hex"]
    assert list(selftest.MERKLE_LEAF_HASHES) == data["leaf_hashes_hex"]
    roots = data["root_by_tree_size_hex"]
    assert list(selftest.MERKLE_ROOTS) == [roots[str(i)] for i in range(len(roots))]
    assert [(i, s, list(p)) for i, s, p in selftest.MERKLE_INCLUSION] == [
        (v["leaf_index"], v["tree_size"], v["proof"]) for v in data["inclusion_proofs_upstream"]
    ]
    assert [(a, b, list(p)) for a, b, p in selftest.MERKLE_CONSISTENCY] == [
        (v["size1"], v["size2"], v["proof"]) for v in data["consistency_proofs_upstream"]
    ]
    hasher = {v["want"] for v in data["hasher_single_vectors"]}
    assert {want for _, _, want in selftest.MERKLE_HASHER} <= hasher


def test_embedded_digests_agree_with_hashlib() -> None:
    """A second opinion (OpenSSL via hashlib, not custody's streaming code) on every
    embedded digest, so a typo in a table cannot hide behind a matching bug."""
    for alg, vectors in selftest.HASH_VECTORS.items():
        for v in vectors:
            assert hashlib.new(alg, v.message).hexdigest() == v.digest, (alg, v.source)
    million = b"a" * selftest.MILLION_A_LENGTH
    pattern = selftest.threaded_file_bytes()
    for alg in hashing.ALGORITHMS:
        assert hashlib.new(alg, million).hexdigest() == selftest.MILLION_A_DIGESTS[alg]
        assert hashlib.new(alg, pattern).hexdigest() == selftest.THREADED_FILE_DIGESTS[alg]
        assert (
            hashlib.new(alg, selftest.STORE_SAMPLE).hexdigest()
            == (selftest.STORE_SAMPLE_DIGESTS[alg])
        )


# -- the signed record -----------------------------------------------------------------


def test_record_selftest_is_a_signed_event_verify_accepts(
    tmp_path: Path, result: SelftestResult
) -> None:
    signer = Signer(Ed25519PrivateKey.generate(), "Dana Reyes", "collector")
    with Ledger.create(tmp_path / "case", "2026-017", "Payroll server breach") as ledger:
        assert not case_has_selftest(ledger)
        ev = record_selftest(ledger, signer, result)
        assert ev.type == SELFTEST_EVENT == "selftest"
        assert ev.signer == signer.fingerprint
        assert case_has_selftest(ledger)
        body = json.loads(ev.body)
        assert body["type"] == "selftest"
        assert body["data"] == result.as_json()
        assert [e.hash for e in selftest_events(ledger)] == [ev.hash]
        assert keys.verify_signature(
            signer.identity.public_raw, base64.b64decode(ev.signature), ev.body.encode()
        )
        schema = json.loads((ROOT / "schemas" / "event-body.schema.json").read_text())
        Draft202012Validator(schema).validate(body)

        report = verify_ledger(ledger)
        assert report.ok, report

        # a failed self-test is recorded too: that is evidence as well
        bad = dataclasses.replace(
            result,
            ok=False,
            checks=[dataclasses.replace(result.checks[0], ok=False, detail="injected")],
        )
        ev2 = record_selftest(ledger, signer, bad)
        assert ev2.data["ok"] is False and ev2.seq == ev.seq + 1
        assert len(selftest_events(ledger)) == 2
        assert verify_ledger(ledger).ok

    with Ledger.open(tmp_path / "case") as again:
        assert case_has_selftest(again)
        assert [e.data["ok"] for e in selftest_events(again)] == [True, False]


def test_magic_checks_use_the_collectors_type_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    """The self-test types its samples with custody.filetype.detect, the very function
    the collector records a file's type with: break it and the magic checks fail."""
    import custody.filetype
    from custody.selftest import run_selftest

    monkeypatch.setattr(custody.filetype, "detect", lambda path, handles: ("x/wrong", "wrong"))
    result = run_selftest()
    magic = [c for c in result.checks if c.name.startswith("magic.")]
    assert magic and all(not c.ok for c in magic)
    assert all(c.ok for c in result.checks if not c.name.startswith("magic."))
