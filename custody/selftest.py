"""Known-answer self-test of every algorithm custody relies on (issue 6, section 4).

:func:`run_selftest` runs each algorithm against published test vectors, through
custody's own code paths (``custody.hashing``, ``custody.keys``, ``custody.canonical``,
``custody.merkle``, ``custody.store`` and the collector's type detector,
``custody.filetype``), and reports every check with the standard it comes from, its
outcome and its duration.  :func:`record_selftest` records the result as a signed
``selftest`` event, so a case shows that the tool gave accurate results on that
machine on that day (the question Federal Rule of Evidence 902(13) asks of a process
that produces an accurate result).

The vectors are data, each with its source, in :mod:`custody.selftest_vectors`,
shipped in the package, so the test runs in the field with nothing but the installed
tool; this module holds the checks.  Nothing here may raise: a check that fails or
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

from custody import TOOL_NAME, __version__, canonical, filetype, hashing, keys, merkle
from custody.ledger import Event, EventDraft, Ledger
from custody.selftest_vectors import (
    ED25519_VECTORS,
    HASH_STANDARDS,
    HASH_VECTORS,
    JCS_NUMBER_ERRORS,
    JCS_NUMBERS,
    JCS_VECTORS,
    MAGIC_SAMPLES,
    MERKLE_CONSISTENCY,
    MERKLE_HASHER,
    MERKLE_INCLUSION,
    MERKLE_LEAF_HASHES,
    MERKLE_LEAF_INPUTS,
    MERKLE_ROOTS,
    MILLION_A_DIGESTS,
    MILLION_A_LENGTH,
    STORE_SAMPLE,
    STORE_SAMPLE_DIGESTS,
    THREADED_FILE_DIGESTS,
    THREADED_FILE_SIZE,
    Ed25519Vector,
    MagicSample,
    threaded_file_bytes,
)
from custody.selftest_vectors import HashVector as HashVector
from custody.selftest_vectors import JcsVector as JcsVector
from custody.store import OBJECT_MODE, Store, object_relpath

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
    skipped: bool = False  # not run: what it tests is absent here (ok is False, not failed)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "standard": self.standard,
            "ok": self.ok,
            "detail": self.detail,
            "microseconds": _micros(self.seconds),
        }
        if self.skipped:
            out["skipped"] = True
        return out


@dataclass
class SelftestResult:
    """Every check, whether all passed, and what they ran on."""

    ok: bool
    checks: list[Check]
    platform: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and not c.skipped]

    @property
    def skipped(self) -> list[Check]:
        return [c for c in self.checks if c.skipped]

    def as_json(self) -> dict[str, Any]:
        """Plain JSON for a signed event body: strings, booleans and integers only
        (durations in integer microseconds; signed bodies never hold floats)."""
        out: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "tool": f"{TOOL_NAME} {__version__}",
            "ok": self.ok,
            "passed": sum(1 for c in self.checks if c.ok),
            "failed": len(self.failed),
            "microseconds": _micros(self.seconds),
            "platform": dict(self.platform),
            "checks": [c.as_json() for c in self.checks],
        }
        if self.skipped:  # only then: bodies of machines with everything stay as they were
            out["skipped"] = len(self.skipped)
        return out


def _micros(seconds: float) -> int:
    return max(0, round(seconds * 1_000_000))


class _Mismatch(Exception):
    """A known answer was not reproduced; the message says which and how."""


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise _Mismatch(what)


# The order of the Ed25519 base point (RFC 8032 section 5.1): S must be below it.
_ED25519_L = 2**252 + 27742317777372353535851937790883648493

# --------------------------------------------------------------------------- context


class _Context:
    """What the checks share: a scratch directory and the libmagic handles."""

    def __init__(self) -> None:
        self._tmp: Path | None = None
        self._tmp_error: str | None = None
        self._magic: filetype.Handles | None = None
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

    def magic(self) -> filetype.Handles:
        """The collector's libmagic handles (custody.filetype), created once."""
        if self._magic is None:
            self._magic = filetype.open_handles()
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


def _check_magic(sample: MagicSample) -> Callable[[_Context], str]:
    def check(ctx: _Context) -> str:
        path = ctx.write(sample.data, f"magic-{sample.name}")
        mime, desc = filetype.detect(str(path), ctx.magic())  # as the collector types a file
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
    want_rel = object_relpath(want_sha)  # a new store is flat
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
    _expect(mode == OBJECT_MODE, f"stored object mode {mode:04o}, expected {OBJECT_MODE:04o}")
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
    no_magic = filetype.unavailable()
    with ctx.open():
        for name, standard, fn in plan:
            if no_magic is not None and name.startswith("magic."):
                checks.append(Check(name, standard, False, f"skipped: {no_magic}", 0.0, True))
                continue
            checks.append(_run_one(name, standard, fn, ctx))
    try:
        plat = platform_info()
    except Exception as e:  # pragma: no cover - platform module failure
        plat = {"error": f"{type(e).__name__}: {e}"}
    return SelftestResult(
        ok=bool(checks) and all(c.ok or c.skipped for c in checks),
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
