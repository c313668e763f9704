"""The fast paths of ``custody bundle verify``, held to the slow ones.

* ``custody.bundle._item_shape`` checks an item of bundle.json by hand instead of
  through jsonschema: it must give ``$defs/item``'s verdict on every item, valid or
  mutated, hand-written or random.
* A folder bag of at least ``PARALLEL_MIN_BYTES`` is hashed, and its signatures
  checked, on forked worker processes: the report must be the very one the serial
  path gives, findings in the same order.  The threshold and ``_SIG_BATCH`` are
  lowered so a small case takes the worker path.
* ``import custody.ledger`` leaves pandas and numpy alone (sqlite-utils imports
  them when installed), without breaking a later ``import pandas``.

A disagreement that is a library bug has its test assert the correct behaviour,
marked ``xfail(strict=True, reason="BUG: ...")``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar
from unittest.mock import ANY

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from tampering import read_events, retag, write_events

import custody.bundle.verify as bundle_verify  # where verify_bundle looks its tuning up
from custody import bundle
from custody.bundle import _item_shape, export_bundle, verify_bundle
from custody.collect import collect
from custody.keys import Signer
from custody.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]

# -- _item_shape against $defs/item ----------------------------------------------------

SCHEMA = json.loads(resources.files("custody.schemas").joinpath("bundle.schema.json").read_text())
ITEM_VALIDATOR = Draft202012Validator({"$defs": SCHEMA["$defs"], "$ref": "#/$defs/item"})
OUTCOMES = [
    "collected",
    "unstable",
    "unreadable",
    "vanished",
    "symlink",
    "special",
    "directory",
    "excluded",
    "captured",
]
SHA = "0123456789abcdef" * 4

STORED: dict[str, Any] = {
    "id": "ITEM-1",
    "path": "/evidence/exhibit-1.log",
    "path_hex": b"/evidence/exhibit-1.log".hex(),
    "outcome": "collected",
    "sha256": SHA,
    "size": 1220,
    "payload": "data/ITEM-1/exhibit-1.log",
    "name_mapped": False,
}
UNSTORED: dict[str, Any] = {
    "id": "ITEM-2",
    "path": "/evidence/gone",
    "path_hex": b"/evidence/gone".hex(),
    "outcome": "vanished",
    "sha256": None,
    "size": None,
}
_DROP = object()

ANY_DETAIL = ANY  # findings are asserted by kind and subject, not by sentence


def schema_valid(x: Any) -> bool:
    return bool(ITEM_VALIDATOR.is_valid(x))


def test_runtime_schema_is_the_published_one() -> None:
    assert SCHEMA == json.loads((ROOT / "schemas" / "bundle.schema.json").read_text())
    assert set(SCHEMA["$defs"]["item"]["properties"]) == set(STORED)
    assert SCHEMA["$defs"]["item"]["properties"]["outcome"]["enum"] == OUTCOMES


def mutate(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = dict(base)
    for k, v in changes.items():
        if v is _DROP:
            del out[k]
        else:
            out[k] = v
    return out


def _cases() -> list[Any]:
    """(label, item, verdict both checkers must give)."""
    cases: list[tuple[str, Any, bool]] = [
        ("stored", STORED, True),
        ("unstored", UNSTORED, True),
        (
            "stored, mapped name",
            mutate(STORED, payload="data/ITEM-1/ITEM-1.bin", name_mapped=True),
            True,
        ),
        ("unstored, size 0", mutate(UNSTORED, size=0), True),
        ("stored, size null", mutate(STORED, size=None), True),
        ("stored, size 2**64", mutate(STORED, size=2**64), True),
        ("empty path and path_hex", mutate(STORED, path="", path_hex=""), True),
        ("non-ASCII path", mutate(STORED, path="/ev/caf\\xe9 ü"), True),
        ("id ITEM-10", mutate(STORED, id="ITEM-10"), True),
        ("id ITEM-9007199254740993", mutate(STORED, id="ITEM-9007199254740993"), True),
        ("payload of another item's folder", mutate(STORED, payload="data/ITEM-2/x.log"), True),
        ("payload '...'", mutate(STORED, payload="data/ITEM-1/..."), True),
        ("payload '.x'", mutate(STORED, payload="data/ITEM-1/.x"), True),
        ("payload 200-byte name", mutate(STORED, payload="data/ITEM-1/" + "n" * 200), True),
        ("payload with space and #", mutate(STORED, payload="data/ITEM-1/a b#1"), True),
        ("payload non-ASCII", mutate(STORED, payload="data/ITEM-1/café 😂.txt"), True),
        ("not an object: list", [STORED], False),
        ("not an object: null", None, False),
        ("not an object: string", "ITEM-1", False),
        ("empty object", {}, False),
        ("extra key", mutate(STORED, extra=1), False),
        ("extra key, unstored", mutate(UNSTORED, note="x"), False),
        ("id ITEM-0", mutate(STORED, id="ITEM-0"), False),
        ("id item-1", mutate(STORED, id="item-1"), False),
        ("id ITEM-01", mutate(STORED, id="ITEM-01"), False),
        ("id ITEM-", mutate(STORED, id="ITEM-"), False),
        ("id ITEM-1a", mutate(STORED, id="ITEM-1a"), False),
        ("id ' ITEM-1'", mutate(STORED, id=" ITEM-1"), False),
        ("id ITEM-1 fullwidth digit", mutate(STORED, id="ITEM-\uff11"), False),
        ("id ITEM-1 arabic-indic digit", mutate(STORED, id="ITEM-\u0661"), False),
        ("id integer", mutate(STORED, id=1), False),
        ("id null", mutate(STORED, id=None), False),
        ("path integer", mutate(STORED, path=1), False),
        ("path null", mutate(STORED, path=None), False),
        ("path_hex uppercase", mutate(STORED, path_hex="2F65"), False),
        ("path_hex odd length", mutate(STORED, path_hex="2f6"), False),
        ("path_hex not hex", mutate(STORED, path_hex="zz"), False),
        ("path_hex with 0x", mutate(STORED, path_hex="0x2f"), False),
        ("path_hex null", mutate(STORED, path_hex=None), False),
        ("path_hex list", mutate(STORED, path_hex=["2f"]), False),
        ("outcome unknown", mutate(STORED, outcome="unknown"), False),
        ("outcome capitalised", mutate(STORED, outcome="Collected"), False),
        ("outcome empty", mutate(STORED, outcome=""), False),
        ("outcome null", mutate(STORED, outcome=None), False),
        ("outcome integer", mutate(STORED, outcome=0), False),
        ("outcome true", mutate(STORED, outcome=True), False),
        ("sha256 uppercase", mutate(STORED, sha256=SHA.upper()), False),
        ("sha256 63 digits", mutate(STORED, sha256=SHA[:-1]), False),
        ("sha256 65 digits", mutate(STORED, sha256=SHA + "0"), False),
        ("sha256 prefixed", mutate(STORED, sha256="sha256:" + SHA), False),
        ("sha256 not hex", mutate(STORED, sha256="g" * 64), False),
        ("sha256 empty", mutate(STORED, sha256=""), False),
        ("sha256 integer", mutate(STORED, sha256=1), False),
        ("sha256 false", mutate(STORED, sha256=False), False),
        ("sha256 bad, no payload", mutate(UNSTORED, sha256=SHA.upper()), False),
        ("sha256 set, no payload or name_mapped", mutate(UNSTORED, sha256=SHA), False),
        ("size -1", mutate(STORED, size=-1), False),
        ("size true", mutate(STORED, size=True), False),
        ("size false", mutate(STORED, size=False), False),
        ("size string", mutate(STORED, size="1220"), False),
        ("size 1.5", mutate(STORED, size=1.5), False),
        ("size list", mutate(STORED, size=[1]), False),
        ("name_mapped 1", mutate(STORED, name_mapped=1), False),
        ("name_mapped 0", mutate(STORED, name_mapped=0), False),
        ("name_mapped string", mutate(STORED, name_mapped="false"), False),
        ("name_mapped null", mutate(STORED, name_mapped=None), False),
        ("payload '..'", mutate(STORED, payload="data/ITEM-1/.."), False),
        ("payload '.'", mutate(STORED, payload="data/ITEM-1/."), False),
        ("payload ends '/.'", mutate(STORED, payload="data/ITEM-1/a/."), False),
        ("payload '../' inside", mutate(STORED, payload="data/ITEM-1/../x"), False),
        ("payload nested folder", mutate(STORED, payload="data/ITEM-1/sub/x"), False),
        ("payload backslash", mutate(STORED, payload="data/ITEM-1/a\\b"), False),
        ("payload percent", mutate(STORED, payload="data/ITEM-1/a%2fb"), False),
        ("payload control char", mutate(STORED, payload="data/ITEM-1/a\x01b"), False),
        ("payload newline inside", mutate(STORED, payload="data/ITEM-1/a\nb"), False),
        ("payload NUL", mutate(STORED, payload="data/ITEM-1/a\x00"), False),
        ("payload DEL", mutate(STORED, payload="data/ITEM-1/a\x7f"), False),
        ("payload 201-byte name", mutate(STORED, payload="data/ITEM-1/" + "n" * 201), False),
        ("payload empty name", mutate(STORED, payload="data/ITEM-1/"), False),
        ("payload no name", mutate(STORED, payload="data/ITEM-1"), False),
        ("payload under custody/", mutate(STORED, payload="custody/bundle.json"), False),
        ("payload other prefix", mutate(STORED, payload="payload/ITEM-1/x.log"), False),
        ("payload absolute", mutate(STORED, payload="/data/ITEM-1/x.log"), False),
        ("payload lowercase item", mutate(STORED, payload="data/item-1/x.log"), False),
        ("payload ITEM-0", mutate(STORED, payload="data/ITEM-0/x.log"), False),
        ("payload ITEM-01", mutate(STORED, payload="data/ITEM-01/x.log"), False),
        ("payload integer", mutate(STORED, payload=1), False),
        ("payload null", mutate(STORED, payload=None), False),
        ("payload present, sha256 null", mutate(UNSTORED, payload="data/ITEM-2/gone"), False),
        ("name_mapped present, sha256 null", mutate(UNSTORED, name_mapped=False), False),
        ("both present, sha256 null", mutate(STORED, sha256=None), False),
    ]
    for k in STORED:
        cases.append((f"stored without {k}", mutate(STORED, **{k: _DROP}), False))
    for k in UNSTORED:
        cases.append((f"unstored without {k}", mutate(UNSTORED, **{k: _DROP}), False))
    for o in OUTCOMES:
        cases.append((f"outcome {o}", mutate(UNSTORED, outcome=o), True))
    labels = [c[0] for c in cases]
    assert len(labels) == len(set(labels))
    return [pytest.param(item, verdict, id=label) for label, item, verdict in cases]


@pytest.mark.parametrize(("item", "verdict"), _cases())
def test_item_shape_matches_schema(item: Any, verdict: bool) -> None:
    assert (_item_shape(item), schema_valid(item)) == (verdict, verdict)


@pytest.mark.parametrize(
    "item",
    [
        pytest.param(mutate(STORED, outcome=[]), id="outcome list"),
        pytest.param(mutate(STORED, outcome={}), id="outcome object"),
        pytest.param(mutate(STORED, outcome=["collected"]), id="outcome list of valid"),
    ],
)
def test_item_shape_unhashable_outcome_is_false(item: Any) -> None:
    assert schema_valid(item) is False
    assert _item_shape(item) is False


def test_verify_refuses_unhashable_outcome(clean_bundle: Path, tmp_path: Path) -> None:
    bag = copy_bag(clean_bundle, tmp_path)
    meta = json.loads((bag / "custody" / "bundle.json").read_text())
    meta["items"][0]["outcome"] = []
    (bag / "custody" / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n")
    retag(bag)
    with pytest.raises(bundle.HostileBundleError, match="items/0"):
        verify_bundle(bag)


@pytest.mark.parametrize(
    "item",
    [
        pytest.param(mutate(STORED, size=1.0), id="size 1.0"),
        pytest.param(mutate(STORED, size=0.0), id="size 0.0"),
        pytest.param(mutate(UNSTORED, size=5.0), id="unstored size 5.0"),
    ],
)
def test_item_shape_refuses_integral_float_size(item: Any) -> None:
    """Deliberately stricter than JSON Schema's 'integer' (which takes 1.0): custody
    never writes a float, and a float in a size is refused (the bundle exits 2)."""
    assert schema_valid(item) is True
    assert _item_shape(item) is False


@pytest.mark.parametrize(
    "item",
    [
        pytest.param(mutate(STORED, id="ITEM-1\n"), id="id"),
        pytest.param(mutate(STORED, path_hex="2f\n"), id="path_hex"),
        pytest.param(mutate(STORED, sha256=SHA + "\n"), id="sha256"),
        pytest.param(mutate(STORED, payload="data/ITEM-1/x\n"), id="payload"),
    ],
)
def test_item_shape_refuses_a_final_newline(item: Any) -> None:
    """JSON Schema patterns are ECMA-262, where "$" does not match before a final
    newline; the hand check's fullmatch agrees.  (jsonschema runs them with Python's
    re.search, whose "$" does: it calls these valid, so the random search below
    leaves final newlines out.)"""
    assert _item_shape(item) is False


def _no_final_newline(s: str) -> bool:
    # see test_item_shape_refuses_a_final_newline
    return not s.endswith("\n")


def _text(max_size: int = 12) -> st.SearchStrategy[str]:
    return st.text(max_size=max_size).filter(_no_final_newline)


_OTHER = st.none() | st.booleans() | st.integers(-3, 3) | st.just(1.5) | st.just([]) | st.just({})
_NAME_CHARS = st.sampled_from(
    ["a", "Z", "0", ".", " ", "é", "😂", "%", "\\", "/", "\x01", "\x1f", "\x7f", "\x00", "#", "-"]
)
_NAMES = st.one_of(
    st.lists(_NAME_CHARS, max_size=6).map("".join),
    st.sampled_from([".", "..", "...", "n" * 199, "n" * 200, "n" * 201, "é" * 150]),
    _text(),
)
_ITEM_IDS = st.one_of(
    st.from_regex(r"ITEM-[0-9]{0,3}", fullmatch=True),
    st.sampled_from(["ITEM-1", "ITEM-20", "ITEM-0", "item-1", "ITEM-01", "ITEM-\uff11"]),
    _text(8),
)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": _ITEM_IDS | _OTHER,
    "path": _text() | _OTHER,
    "path_hex": st.one_of(
        st.binary(max_size=6).map(bytes.hex),
        st.from_regex(r"[0-9a-fA-Fx]{0,5}", fullmatch=True),
        _text(4),
        _OTHER,
    ),
    "outcome": st.sampled_from([*OUTCOMES, "unknown", "Collected", ""])
    | st.none()
    | st.booleans()
    | st.integers(-1, 1)
    | st.just([])
    | st.just({}),
    "sha256": st.one_of(
        st.binary(min_size=32, max_size=32).map(bytes.hex),
        st.binary(min_size=32, max_size=32).map(lambda b: b.hex().upper()),
        st.from_regex(r"[0-9a-g]{63,65}", fullmatch=True),
        st.none(),
        _text(4),
        _OTHER,
    ),
    # integral floats (1.0): test_item_shape_parity_integral_float_size
    "size": st.none() | st.integers(-2, 2**64) | st.booleans() | st.just(1.5) | _text(3),
    "payload": st.one_of(
        st.builds(lambda i, n: f"data/{i}/{n}", _ITEM_IDS, _NAMES),
        st.builds(lambda n: f"data/ITEM-1/{n}", _NAMES),
        _text(),
        _OTHER,
    ),
    "name_mapped": st.booleans() | _OTHER,
    "extra": _OTHER,
}


_GOOD_NAMES = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"], exclude_characters="/\\%"),
    min_size=1,
    max_size=200,
).filter(lambda n: n not in (".", ".."))


@st.composite
def valid_items(draw: st.DrawFn) -> dict[str, Any]:
    item_id = draw(st.from_regex(r"ITEM-[1-9][0-9]{0,4}", fullmatch=True))
    item: dict[str, Any] = {
        "id": item_id,
        "path": draw(_text()),
        "path_hex": draw(st.binary(max_size=8).map(bytes.hex)),
        "outcome": draw(st.sampled_from(OUTCOMES)),
        "sha256": draw(st.none() | st.binary(min_size=32, max_size=32).map(bytes.hex)),
        "size": draw(st.none() | st.integers(0, 2**64)),
    }
    if item["sha256"] is not None:
        item["payload"] = f"data/{item_id}/{draw(_GOOD_NAMES)}"
        item["name_mapped"] = draw(st.booleans())
    return item


@st.composite
def items(draw: st.DrawFn) -> Any:
    """Valid items, items with one or two keys changed, dropped or added, and
    arbitrary dicts over the item's keys."""
    how = draw(st.sampled_from(["valid", "one", "one", "two", "random"]))
    if how == "random":
        return draw(st.fixed_dictionaries({}, optional=FIELDS))
    item = draw(valid_items())
    for _ in range(0 if how == "valid" else 1 if how == "one" else 2):
        key = draw(st.sampled_from(sorted(FIELDS)))
        if key in item and draw(st.booleans()):
            del item[key]
        else:
            item[key] = draw(FIELDS[key])
    return item


def test_item_shape_matches_schema_on_random_items() -> None:
    seen: Counter[bool] = Counter()

    @settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
    @given(items())
    def check(item: Any) -> None:
        verdict = _item_shape(item)
        assert verdict == schema_valid(item), item
        seen[verdict] += 1

    check()
    # the search reached both verdicts, not only mutations every checker refuses
    assert seen[True] >= 50, seen
    assert seen[False] >= 200, seen


# -- worker-process hashing and signature checks ------------------------------------------

FILES = {  # name -> content: six items, two hash jobs when a job is 4 files
    "exhibit-1.log": b"Jan 12 03:14:07 payroll sshd[811]: Accepted password for svc\n" * 40,
    "payroll.csv": b"id,name,iban\n" + b"7,J. Doe,DE00 0000 0000\n" * 50,
    "notes-caf\u00e9.txt": "notes kept by the administrator, caf\u00e9\n".encode() * 5,
    "empty.bin": b"",
    "one-byte": b"\x00",
    "image.raw": bytes(range(256)) * 64,
}


class SpyPool(ProcessPoolExecutor):
    """ProcessPoolExecutor recording what it is asked to run."""

    submitted: ClassVar[list[str]] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        SpyPool.submitted.append(fn.__name__)
        return super().submit(fn, *args, **kwargs)


@pytest.fixture(scope="module")
def clean_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder bundle of a six-item case made through the library: identity, six
    collect events and the export event are disclosed."""
    root = tmp_path_factory.mktemp("fastpaths")
    evidence = root / "evidence"
    evidence.mkdir()
    for name, data in FILES.items():
        (evidence / name).write_bytes(data)
    signer = Signer(Ed25519PrivateKey.generate(), "Dana Reyes", "collector")
    with Ledger.create(root / "case", "2026-017", "Payroll server breach") as ledger:
        collect(
            ledger,
            signer,
            [os.fsencode(evidence / n) for n in FILES],
            reason="suspected credential theft",
            algorithms=["sha256", "sha512"],
            describe=False,  # the counts below: describe events are tested elsewhere
        )
        result = export_bundle(ledger, signer, [], root / "bundle")
    assert result.items == [f"ITEM-{i}" for i in range(1, 7)]
    assert result.events == 8
    assert result.bytes == sum(len(d) for d in FILES.values())
    return root / "bundle"


def copy_bag(src: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "bag"
    shutil.copytree(src, dest)
    return dest


def payload_of(bag: Path, item: str) -> str:
    meta = json.loads((bag / "custody" / "bundle.json").read_text(encoding="utf-8"))
    (rel,) = [it["payload"] for it in meta["items"] if it["id"] == item]
    return str(rel)


def flip_byte(path: Path, at: int) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


MODES = ["serial", "workers"]


@pytest.fixture
def mode_run(monkeypatch: pytest.MonkeyPatch) -> Any:
    """verify_bundle in one mode, checking that mode's path was the one taken."""
    monkeypatch.setattr(bundle_verify, "ProcessPoolExecutor", SpyPool)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # the worker path needs two CPUs

    def run(bag: Path, mode: str) -> dict[str, Any]:
        SpyPool.submitted = []
        if mode == "workers":
            monkeypatch.setattr(bundle_verify, "PARALLEL_MIN_BYTES", 0)
            monkeypatch.setattr(bundle_verify, "_SIG_BATCH", 2)
            monkeypatch.setattr(bundle_verify, "_JOB_FILES", 4)
        else:
            monkeypatch.setattr(bundle_verify, "PARALLEL_MIN_BYTES", 1 << 40)
            monkeypatch.setattr(bundle_verify, "_SIG_BATCH", 512)
            monkeypatch.setattr(bundle_verify, "_JOB_FILES", 64)
        report = verify_bundle(bag).as_json()
        if mode == "workers":
            # 6 payload files in jobs of 4; 8 signatures in batches of 2
            assert SpyPool.submitted == ["_hash_job"] * 2 + ["verify_batch"] * 4
        else:
            assert SpyPool.submitted == []
        return report

    return run


@pytest.mark.parametrize("mode", MODES)
def test_clean_folder_bundle_verifies(
    clean_bundle: Path, tmp_path: Path, mode: str, mode_run: Any
) -> None:
    bag = copy_bag(clean_bundle, tmp_path)
    report = mode_run(bag, mode)
    assert report["ok"] is True
    assert report["findings"] == []
    assert report["case"] == "2026-017"
    assert report["items"] == [f"ITEM-{i}" for i in range(1, 7)]
    assert report["events"] == 8
    assert report["payload_files"] == 6


def test_workers_and_serial_give_the_same_clean_report(
    clean_bundle: Path, tmp_path: Path, mode_run: Any
) -> None:
    bag = copy_bag(clean_bundle, tmp_path)
    assert mode_run(bag, "workers") == mode_run(bag, "serial")


@pytest.mark.parametrize("mode", MODES)
def test_flipped_payload_byte_is_one_digest_finding_per_manifest(
    clean_bundle: Path, tmp_path: Path, mode: str, mode_run: Any
) -> None:
    bag = copy_bag(clean_bundle, tmp_path)
    rel = payload_of(bag, "ITEM-2")
    assert rel == "data/ITEM-2/payroll.csv"
    before = (bag / rel).read_bytes()
    flip_byte(bag / rel, 100)
    after = (bag / rel).read_bytes()
    h = {
        a: (hashlib.new(a, before).hexdigest(), hashlib.new(a, after).hexdigest())
        for a in ("sha256", "sha512")
    }
    report = mode_run(bag, mode)
    assert report["ok"] is False
    assert report["payload_files"] == 6
    assert report["findings"] == [
        {
            "kind": "payload-digest",
            "subject": rel,
            "detail": f"{a}: manifest says {h[a][0]}, found {h[a][1]}",
        }
        for a in ("sha256", "sha512")
    ] + [
        {
            "kind": "payload-digest",
            "subject": "ITEM-2",
            "detail": f"{a}: collected as {h[a][0]}, bundle holds {h[a][1]}",
        }
        for a in ("sha256", "sha512")
    ]


@pytest.mark.parametrize("mode", MODES)
def test_flipped_payload_byte_with_sha512_manifest_redone(
    clean_bundle: Path, tmp_path: Path, mode: str, mode_run: Any
) -> None:
    """The SHA-512 manifest recomputed over the changed file: exactly one finding
    names the file (the SHA-256 manifest's), the signed collect event the rest."""
    bag = copy_bag(clean_bundle, tmp_path)
    rel = payload_of(bag, "ITEM-6")
    before = (bag / rel).read_bytes()
    flip_byte(bag / rel, len(before) - 1)
    after = (bag / rel).read_bytes()
    lines = (bag / "manifest-sha512.txt").read_text().splitlines()
    (bag / "manifest-sha512.txt").write_text(
        "".join(
            (f"{hashlib.sha512(after).hexdigest()}  {rel}" if line.endswith("  " + rel) else line)
            + "\n"
            for line in lines
        )
    )
    retag(bag)
    report = mode_run(bag, mode)
    about_file = [f for f in report["findings"] if f["subject"] == rel]
    assert about_file == [
        {
            "kind": "payload-digest",
            "subject": rel,
            "detail": f"sha256: manifest says {hashlib.sha256(before).hexdigest()},"
            f" found {hashlib.sha256(after).hexdigest()}",
        }
    ]
    assert [(f["kind"], f["subject"]) for f in report["findings"]] == [
        ("payload-digest", rel),
        ("payload-digest", "ITEM-6"),
        ("payload-digest", "ITEM-6"),
    ]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("line", [0, 3, 7], ids=["first", "middle", "last"])
def test_rewritten_signature_is_one_finding(
    clean_bundle: Path, tmp_path: Path, mode: str, line: int, mode_run: Any
) -> None:
    bag = copy_bag(clean_bundle, tmp_path)
    rows = read_events(bag)
    assert len(rows) == 8
    forged = base64.b64encode(hashlib.sha512(b"not a signature").digest()).decode()
    assert len(base64.b64decode(forged, validate=True)) == 64
    assert forged != rows[line]["signature"]
    rows[line]["signature"] = forged
    write_events(bag, rows)
    retag(bag)
    report = mode_run(bag, mode)
    assert report["findings"] == [
        {
            "kind": "signature",
            "subject": f"event {rows[line]['seq']}",
            "detail": ANY_DETAIL,
        }
    ]


@pytest.mark.parametrize("mode", MODES)
def test_another_events_signature_is_one_finding(
    clean_bundle: Path, tmp_path: Path, mode: str, mode_run: Any
) -> None:
    """Swapping in a genuine signature of the same key over another body."""
    bag = copy_bag(clean_bundle, tmp_path)
    rows = read_events(bag)
    rows[4]["signature"] = rows[5]["signature"]
    write_events(bag, rows)
    retag(bag)
    report = mode_run(bag, mode)
    assert report["findings"] == [
        {
            "kind": "signature",
            "subject": f"event {rows[4]['seq']}",
            "detail": ANY_DETAIL,
        }
    ]


def tamper_many(bag: Path) -> None:
    """Several problems of several kinds in one bundle (tag manifest left stale)."""
    flip_byte(bag / payload_of(bag, "ITEM-1"), 0)
    flip_byte(bag / payload_of(bag, "ITEM-5"), 0)
    rows = read_events(bag)
    for i in (1, 4, 6):
        rows[i]["signature"] = base64.b64encode(bytes([i]) * 64).decode()
    body = json.loads(rows[2]["body"])
    body["data"]["reason"] = "routine backup"  # breaks its hash, signature and proof
    # (the line keeps its "hash": the export event still lists it, nothing is withheld)
    rows[2]["body"] = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    rows[3]["body"] = json.dumps(json.loads(rows[3]["body"]), sort_keys=True, indent=1)
    rows[7]["signature"] = "not base64!"
    write_events(bag, rows)
    (bag / "data" / "ITEM-9").mkdir()
    (bag / "data" / "ITEM-9" / "smuggled.txt").write_bytes(b"not exported")


def test_findings_in_the_same_order_on_workers(
    clean_bundle: Path, tmp_path: Path, mode_run: Any
) -> None:
    bag = copy_bag(clean_bundle, tmp_path)
    tamper_many(bag)
    serial = mode_run(bag, "serial")
    workers = mode_run(bag, "workers")
    assert workers == serial
    seq = [r["seq"] for r in read_events(bag)]
    one, five = payload_of(bag, "ITEM-1"), payload_of(bag, "ITEM-5")
    assert [(f["kind"], f["subject"]) for f in serial["findings"]] == [
        ("payload-extra", "data/ITEM-9/smuggled.txt"),
        ("payload-digest", one),
        ("payload-digest", one),
        ("payload-digest", five),
        ("payload-digest", five),
        ("tag-digest", "custody/events.jsonl"),
        ("signature", f"event {seq[1]}"),
        ("event-hash", f"event {seq[2]}"),
        ("signature", f"event {seq[2]}"),
        ("event-hash", f"event {seq[3]}"),
        ("event-noncanonical", f"event {seq[3]}"),  # the same kind as in a ledger
        ("signature", f"event {seq[3]}"),  # signed over the canonical bytes
        ("signature", f"event {seq[4]}"),
        ("signature", f"event {seq[6]}"),
        ("signature", f"event {seq[7]}"),
        ("proof", f"event {seq[2]}"),
        ("proof", f"event {seq[3]}"),
        ("payload-digest", "ITEM-1"),
        ("payload-digest", "ITEM-1"),
        ("payload-digest", "ITEM-5"),
        ("payload-digest", "ITEM-5"),
        ("payload-extra", "data/ITEM-9/smuggled.txt"),
    ]


def test_archives_are_never_hashed_on_workers(
    clean_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a folder's files can be opened by another process: a tar is read in place."""
    import tarfile

    tar_path = tmp_path / "bag.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(clean_bundle, arcname="bag")
    monkeypatch.setattr(bundle_verify, "ProcessPoolExecutor", SpyPool)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(bundle_verify, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(bundle_verify, "_SIG_BATCH", 2)
    SpyPool.submitted = []
    report = verify_bundle(tar_path)
    assert SpyPool.submitted == []
    assert report.ok, report.findings
    assert report.payload_files == 6


# -- import cost ------------------------------------------------------------------------


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


@pytest.mark.parametrize("module", ["custody.ledger", "custody.bundle", "custody_cli.main"])
def test_import_does_not_load_pandas_or_numpy(module: str) -> None:
    proc = _python(
        f"import sys, {module}\n"
        "print(sorted(m for m in ('pandas', 'numpy') if m in sys.modules))\n"
        "print(sorted(m for m in ('pandas', 'numpy') if sys.modules.get(m, 0) is None))\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[]\n[]\n"


def test_pandas_still_imports_after_custody_ledger() -> None:
    pytest.importorskip("pandas")
    proc = _python(
        "import sys, custody.ledger, custody._sqlite  # what opening a case imports\n"
        "assert 'pandas' not in sys.modules\n"
        "import numpy, pandas\n"
        "frame = pandas.DataFrame({'a': [1, 2]})\n"
        "print(int(frame['a'].sum()), type(numpy.int64(1)).__name__)\n"
        "import sqlite_utils.db\n"
        "print(sqlite_utils.db.pd is None, sqlite_utils.db.np is None)\n"
    )
    assert proc.returncode == 0, proc.stderr
    # pandas works; sqlite-utils, imported before it, keeps going without it
    assert proc.stdout == "3 int64\nTrue True\n"
