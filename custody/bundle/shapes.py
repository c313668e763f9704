"""The documents of a bundle and their shapes: custody/bundle.json, keys.json,
proofs.json, events.jsonl and the bag's manifests, each parsed strictly and
checked against its JSON Schema (by hand where jsonschema would cost more than
hashing the payload)."""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

from custody.bundle.archive import (
    MAX_JSON_DEPTH,
    HostileBundleError,
    _Source,
    path_is_dangerous,
)
from custody.canonical import parse_strict
from custody.ledger import KNOWN_RULES

SCHEMA_VERSION = 1
TIMESTAMP_FILE = "custody/checkpoint.tsr"  # optional RFC 3161 TimeStampResp over checkpoint.txt
EXPORT_EVENT = "export"


def export_time(event_time: str) -> str:
    """bundle.json's ``exported``: the signed export event's time, to the second."""
    return event_time[:19] + "Z"


#: characters no payload name may hold: C0 and C1 controls (U+0085 among them), DEL,
#: the line and paragraph separators (a reader that splits lines as Python's
#: str.splitlines does, bagit.py among them, breaks a manifest line at each), and
#: ``%`` and ``\\`` (BagIt's percent-encoding, and a Windows separator)
_NOT_IN_NAME = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029%\\\\]")


def _payload_name(raw: bytes, item: str) -> tuple[str, bool]:
    """The payload file name for an item (docs/bundle-format.md §2): its original
    base name when every BagIt reader reads it back exactly, else ``ITEM-<n>.bin``
    (``name_mapped``; the original bytes are the signed ``path_hex``)."""
    base = raw.rstrip(b"/").rsplit(b"/", 1)[-1]
    try:
        name = base.decode("utf-8")
    except UnicodeDecodeError:
        return f"{item}.bin", True
    bad = (
        not name
        or name in (".", "..")
        or len(base) > 200
        or _NOT_IN_NAME.search(name) is not None
        # a manifest reader strips white space (U+0020, U+00A0, U+3000 ...) at the
        # end of a line: a name ending in it would lose it
        or name[-1].isspace()
    )
    return (f"{item}.bin", True) if bad else (name, False)


def _payload_name_0_1_0(raw: bytes, item: str) -> tuple[str, bool]:
    """The payload name rule of bundles written by custody 0.1.0 before names were
    kept to what every BagIt reader reads back (§2): a verifier accepts it too, so
    a bundle written then still verifies."""
    base = raw.rstrip(b"/").rsplit(b"/", 1)[-1]
    try:
        name = base.decode("utf-8")
    except UnicodeDecodeError:
        return f"{item}.bin", True
    bad = (
        not name
        or name in (".", "..")
        or len(base) > 200
        or any(ord(c) < 0x20 or c in "%\\\x7f" for c in name)
    )
    return (f"{item}.bin", True) if bad else (name, False)


def encode_manifest_path(path: str) -> str:
    """A path as a BagIt manifest line holds it (RFC 8493 §2.1.3): ``%``, CR and LF
    percent-encoded, ``%`` first."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


_PERCENT = re.compile("%(25|0[aAdD])")


def decode_manifest_path(text: str) -> str:
    """The path a manifest line's text names: ``%25``, ``%0A`` and ``%0D`` (either
    case) decoded, in one pass, nothing else (RFC 8493 §2.1.3)."""
    return _PERCENT.sub(lambda m: {"25": "%", "0a": "\n", "0d": "\r"}[m.group(1).lower()], text)


_SCHEMAS = {
    "custody/bundle.json": "bundle",
    "custody/keys.json": "bundle-keys",
}


@functools.cache
def _validator(schema: str) -> Any:
    text = resources.files("custody.schemas").joinpath(f"{schema}.schema.json").read_text()
    import jsonschema  # here, not at the top: 0.1 s that most commands never need

    return jsonschema.Draft202012Validator(json.loads(text))


def _validate(value: Any, schema: str, where: str) -> None:
    """Check a bundle document against its JSON Schema in custody.schemas."""
    errors = sorted(_validator(schema).iter_errors(value), key=str)
    if errors:
        e = errors[0]
        at = "/".join(str(p) for p in e.absolute_path) or "(top)"
        raise HostileBundleError(f"{where} does not match its schema at {at}: {e.message[:200]}")


_LINE_FIELDS = {"seq": int, "hash": str, "prev": str, "signer": str, "signature": str, "body": str}


def _event_line_shape(row: Any, n: int) -> None:
    """schemas/bundle-event-line.schema.json, checked by hand: thousands of lines
    through jsonschema would cost more than hashing the payload."""
    if (
        not isinstance(row, dict)
        or set(row) != set(_LINE_FIELDS)
        or any(type(row[k]) is not t for k, t in _LINE_FIELDS.items())
    ):
        raise HostileBundleError(
            f"custody/events.jsonl line {n} does not match its schema"
            f" (an object of exactly {', '.join(_LINE_FIELDS)})"
        )


_MAX_SAFE_INT = 2**53 - 1  # the schemas' "maximum" for integers
_ITEM_ID = re.compile(r"ITEM-[1-9][0-9]*")
_HEX_BYTES = re.compile(r"(?:[0-9a-f]{2})*")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_PAYLOAD = re.compile(r"data/ITEM-[1-9][0-9]*/[^/\\%\x00-\x1f\x7f]{1,200}")
_OUTCOMES = {
    "captured",
    "collected",
    "unstable",
    "unreadable",
    "vanished",
    "symlink",
    "special",
    "directory",
    "excluded",
}
_ITEM_KEYS = {"id", "path", "path_hex", "outcome", "sha256", "size"}


def _item_shape(item: Any) -> bool:
    """$defs/item of schemas/bundle.schema.json, checked by hand: jsonschema spends
    a third of a millisecond per item, more than hashing its payload.
    Where it says no, jsonschema is asked why; tests hold the two to the same verdicts,
    except where this is deliberately stricter: integers only (no 1.0), and no final
    newline before a pattern's end (ECMA-262 '$', which Python's re.search relaxes)."""
    ok = isinstance(item, dict) and _ITEM_KEYS <= set(item)
    if ok:
        stored = item["sha256"] is not None
        optional = {"payload", "name_mapped"}
        ok = (
            set(item) == (_ITEM_KEYS | optional if stored else _ITEM_KEYS)
            and isinstance(item["id"], str)
            and _ITEM_ID.fullmatch(item["id"]) is not None
            and isinstance(item["path"], str)
            and isinstance(item["path_hex"], str)
            and _HEX_BYTES.fullmatch(item["path_hex"]) is not None
            and isinstance(item["outcome"], str)
            and item["outcome"] in _OUTCOMES
            and (
                not stored
                or (
                    isinstance(item["sha256"], str)
                    and _SHA256_HEX.fullmatch(item["sha256"]) is not None
                )
            )
            and (item["size"] is None or (type(item["size"]) is int and item["size"] >= 0))
            and (
                not stored
                or (
                    isinstance(item["payload"], str)
                    and _PAYLOAD.fullmatch(item["payload"]) is not None
                    and not item["payload"].endswith(("/.", "/.."))
                    and type(item["name_mapped"]) is bool
                )
            )
        )
    return ok


def _json(src: _Source, name: str) -> Any:
    if name not in src.sizes:
        raise HostileBundleError(f"not a custody bundle: {name} is missing")
    try:
        value = parse_strict(src.read(name).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise HostileBundleError(f"{name} is not valid JSON: {e}") from e
    _check_depth(value, name)
    if name == "custody/bundle.json" and isinstance(value, dict):
        v = value.get("schema_version")
        if v != SCHEMA_VERSION:
            raise HostileBundleError(
                f"unknown bundle schema version {v!r}; this custody reads {SCHEMA_VERSION}"
            )
        rules = value.get("rules", 1)
        if rules not in KNOWN_RULES:
            raise HostileBundleError(
                f"bundle made under custody rules {rules!r}; this custody knows rules"
                f" {', '.join(map(str, KNOWN_RULES))}"
            )
    if name == "custody/bundle.json" and isinstance(value, dict):
        items = value.get("items")
        if isinstance(items, list):  # the items by hand, the rest by its schema
            for n, item in enumerate(items):
                if not _item_shape(item):
                    _validate(value, _SCHEMAS[name], name)  # says exactly what is wrong
                    raise HostileBundleError(f"{name} does not match its schema at items/{n}")
            value = {**value, "items": []}
            _validate(value, _SCHEMAS[name], name)
            value["items"] = items
            return value
    if name in _SCHEMAS:
        _validate(value, _SCHEMAS[name], name)
    elif name == "custody/proofs.json":
        _proofs_shape(value)
    return value


def _proofs_shape(doc: Any) -> None:
    """schemas/bundle-proofs.schema.json, checked by hand (one entry per event)."""
    ok = (
        isinstance(doc, dict)
        and set(doc) == {"tree_size", "proofs"}
        and type(doc["tree_size"]) is int
        and 1 <= doc["tree_size"] <= _MAX_SAFE_INT
        and isinstance(doc["proofs"], list)
        and all(
            isinstance(p, dict)
            and set(p) == {"seq", "proof"}
            and type(p["seq"]) is int
            and 0 <= p["seq"] <= _MAX_SAFE_INT
            and isinstance(p["proof"], list)
            and len(p["proof"]) <= 64
            and all(isinstance(h, str) and _SHA256_HEX.fullmatch(h) for h in p["proof"])
            for p in doc["proofs"]
        )
    )
    if not ok:
        raise HostileBundleError(
            "custody/proofs.json does not match its schema"
            " ({tree_size, proofs: [{seq, proof: [64 lowercase hex, ...]}]})"
        )


def _check_depth(value: Any, name: str, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise HostileBundleError(f"{name}: JSON nested deeper than {MAX_JSON_DEPTH}")
    if isinstance(value, dict):
        for v in value.values():
            _check_depth(v, name, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_depth(v, name, depth + 1)


def _lines(text: str) -> list[str]:
    """Lines ended by LF (a CR before it dropped).  Not str.splitlines(): that also
    breaks at U+2028, U+2029, U+0085 and others, which names and reasons may hold."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _manifest(src: _Source, name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        text = src.read(name).decode("utf-8")
    except UnicodeDecodeError as e:
        raise HostileBundleError(f"{name} is not UTF-8: {e}") from e
    for n, line in enumerate(_lines(text), 1):
        if not line.strip():
            continue
        digest, sep, path = line.partition(" ")
        path = decode_manifest_path(path.lstrip(" *"))
        if not sep or not path:
            raise HostileBundleError(f"{name} line {n} is malformed")
        why = path_is_dangerous(path)
        if why:
            raise HostileBundleError(f"{name} names an unsafe path {path!r}: {why}")
        out[path] = digest.lower()
    return out
