"""An independent bundle verifier, written from docs/bundle-format.md alone (and
docs/ledger-format.md where it points there).  It imports nothing from custody: only
the standard library, ``cryptography`` (Ed25519) and ``rfc8785`` (canonical JSON).

``verify(path, trust=())`` returns ``(exit_code, findings)``: 2 "not a bundle" (no
findings), 1 with findings ``[(kind, subject)]``, 0 when the bundle verifies.

Implemented (bundle-format.md §10): steps 0-2 for a folder, tar (whatever Python's
tarfile opens) or zip bundle, with the entry rules of §11, strict JSON and the JSON
Schemas of schemas/ (with ``jsonschema``); 3 keys; 4 events; 5 the checkpoint (C2SP
signed note); 6-7 inclusion proofs (RFC 9162); 8 items and payload digests; 11 trust
by key (anchors, their rotation lines and, under rules 2, the keys the trusted owner
attested, simplified: see ``trusted_keys``); 12 signed fields; 13, §12 disclosure
against the export event.  Skipped: step 9 (the custody replay) and step 10 (the
RFC 3161 time-stamp).  Not implemented: §13's source sections of a re-export of
imported items; a bundle with any file under ``custody/sources/`` or
``data/sources/`` is refused as one this verifier cannot judge (exit 2).  Every
rule here is one the page states; where it says which of several lines counts, or
what a finding's subject is, this follows it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import stat
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

CUSTODY_FILES = ("bundle.json", "events.jsonl", "checkpoint.txt", "proofs.json", "keys.json")
MAX_TAG = 64 * 1024 * 1024
SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


class NotABundle(Exception):
    """Exit 2: the input is not a bundle (§10 steps 0-2, §11)."""


class TooDeep(NotABundle):
    """JSON nested deeper than 64 levels (§11): exit 2, in events.jsonl too."""


def sha256_hex(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def fingerprint(raw: bytes) -> str:
    return "sha256:" + sha256_hex(raw)


def ed25519_ok(pub: bytes, sig: bytes, msg: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
    except (InvalidSignature, ValueError):
        return False
    return True


def b64decode(text: Any) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def strict_json(data: bytes, limit: int | None = 64) -> Any:
    """§11 JSON: UTF-8, no duplicate keys, no NaN/Infinity, nesting <= ``limit``
    (None: only what the parser can; §10 step 4 for an event body)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise ValueError(f"duplicate key {k!r}")
            out[k] = v
        return out

    def bad_constant(name: str) -> Any:
        raise ValueError(name)

    try:
        text = data.decode("utf-8")
        doc = json.loads(text, object_pairs_hook=pairs, parse_constant=bad_constant)
    except RecursionError:
        raise TooDeep("JSON nested too deep") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotABundle(f"bad JSON: {exc}") from None

    def depth(o: Any, d: int = 1) -> int:
        if isinstance(o, dict):
            return max([depth(v, d + 1) for v in o.values()] or [d])
        if isinstance(o, list):
            return max([depth(v, d + 1) for v in o] or [d])
        return d

    if limit is not None and depth(doc) > limit:
        raise TooDeep("JSON nested too deep")
    return doc


def unicode_only(o: Any) -> bool:
    """§11: no string, key or value, holds a lone surrogate escape."""
    if isinstance(o, str):
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in o)
    if isinstance(o, dict):
        return all(unicode_only(k) and unicode_only(v) for k, v in o.items())
    if isinstance(o, list):
        return all(unicode_only(v) for v in o)
    return True


def safe_name(name: str) -> bool:
    """§11 entry-name rules (for entries and for paths inside files)."""
    if not name or "\0" in name or "\\" in name or name.startswith("/"):
        return False
    if len(name) > 1 and name[1] == ":":
        return False
    parts = name.split("/")
    if len(parts) > 65 or len(name.encode("utf-8", "surrogateescape")) > 1024:
        return False  # nested deeper than 64 folders, or a name over 1024 bytes
    return all(p not in ("", ".", "..") for p in parts)


# -- reading a bundle safely (§1, §11) ----------------------------------------------


class Entry:
    """One regular file of the bag, read in place (never extracted)."""

    def __init__(self, size: int, reader: Callable[[], bytes]) -> None:
        self.size = size
        self._reader = reader

    def read_bytes(self) -> bytes:
        return self._reader()


def index_folder(root: Path) -> dict[str, Entry]:
    """Every regular file of the folder, by its path relative to the folder."""
    files: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = p.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                raise NotABundle(f"symbolic link {rel}")
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise NotABundle(f"special file {rel}")
            if st.st_nlink > 1:
                raise NotABundle(f"hard link {rel}")
            files[rel] = Entry(st.st_size, p.read_bytes)
    return files


def check_entry_name(name: str, is_dir: bool) -> str:
    """§11 entry names; a directory's name without its trailing /s."""
    if is_dir:
        name = name.rstrip("/")
    if not safe_name(name):
        raise NotABundle(f"unsafe entry name {name!r}")
    return name


def index_archive(path: Path) -> dict[str, Entry]:
    """§1 and §11: every entry checked, the regular files by name (directories skipped)."""
    names: set[str] = set()
    files: dict[str, Entry] = {}

    def put(name: str, entry: Entry | None) -> None:
        if name in names:
            raise NotABundle(f"duplicate entry {name}")
        names.add(name)
        if entry is not None:
            files[name] = entry

    if zipfile.is_zipfile(path):
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise NotABundle(f"not a readable zip: {exc}") from None
        for info in zf.infolist():
            # a name ending in / is a directory entry: its mode is not looked at
            is_dir = info.filename.endswith("/")
            name = check_entry_name(info.filename, is_dir)
            if is_dir:
                put(name, None)
                continue
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind and kind != stat.S_IFREG:
                raise NotABundle(f"zip entry {name} is not a regular file")
            put(name, Entry(info.file_size, lambda i=info: zf.read(i)))
    else:
        try:
            tf = tarfile.open(path, "r:*")
            members = tf.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise NotABundle(f"not a readable archive: {exc}") from None
        for m in members:
            name = check_entry_name(m.name, m.isdir())
            if m.isdir():
                put(name, None)
            elif m.issym() or m.islnk():
                raise NotABundle(f"link {name}")
            elif m.isreg():
                put(name, Entry(m.size, lambda m=m: tf.extractfile(m).read()))  # type: ignore[union-attr]
            else:
                raise NotABundle(f"special entry {name}")
    total = sum(e.size for e in files.values())
    if total > 1 << 40 or (total > 64 << 20 and total > 1000 * path.stat().st_size):
        raise NotABundle("decompression bomb")
    # §1: the bag root, from the regular-file entries only
    if "bagit.txt" in files:
        return files
    tops = {n.split("/")[0] for n in files}
    if len(tops) != 1:
        return files
    (top,) = tops
    return {n[len(top) + 1 :]: e for n, e in files.items() if n.startswith(top + "/")}


def index_bundle(path: Path) -> dict[str, Entry]:
    """The bag's regular files by their path relative to the bag root (§1): a folder
    is itself the root; an archive's root is found by index_archive."""
    if not path.exists():
        raise NotABundle("no such path")
    files = index_folder(path) if path.is_dir() else index_archive(path)
    if "bagit.txt" not in files:
        raise NotABundle("no bagit.txt at the bag root")
    return files


# -- the Merkle tree (§8) and the signed note (§7) -------------------------------------


def leaf_hash(b: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + b).digest()


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def note_key_name(name: str) -> str:
    return re.sub(r"[^\w]+|_", "-", name.strip().lower()).strip("-") or "custody"


def note_key_id(key_name: str, pub: bytes) -> bytes:
    return hashlib.sha256(key_name.encode() + b"\n\x01" + pub).digest()[:4]


def canonical_b64(text: str) -> bytes | None:
    """Standard padded base64 that re-encodes to the same string (§7)."""
    raw = b64decode(text)
    if raw is None or base64.b64encode(raw).decode() != text:
        return None
    return raw


def verify_checkpoint(
    data: bytes, keys: list[tuple[str, bytes]], case_id: Any
) -> tuple[int, bytes, set[str]] | None:
    """(size, root, signer fingerprints) of a valid note, else None (§7)."""
    try:
        note = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        return None
    split = note.rfind("\n\n")  # the text ends at the LF that begins the last blank line
    if split < 0:
        return None
    text, block = note[: split + 1], note[split + 2 :]
    if not block or not block.endswith("\n"):
        return None
    lines = text.split("\n")[:-1]
    if len(lines) != 3:  # §7 step 2: exactly three lines, no extension lines
        return None
    origin, size_s, root_s = lines
    if not re.fullmatch(r"0|[1-9][0-9]*", size_s) or int(size_s) > 2**64 - 1:
        return None
    root = canonical_b64(root_s)
    if root is None or len(root) != 32:
        return None
    verifiers = {}
    for name, pub in keys:
        kn = note_key_name(name)
        verifiers[(kn, note_key_id(kn, pub))] = pub
    sig_lines = block[:-1].split("\n")
    if len(sig_lines) > 100:
        return None
    signers: set[str] = set()
    for line in sig_lines:
        if not line.startswith("\u2014 "):
            return None
        name, sp, blob_s = line[2:].partition(" ")
        if not sp or not name or "+" in name or any(c.isspace() for c in name):
            return None
        blob = canonical_b64(blob_s)
        if blob is None or len(blob) <= 4:
            return None
        pub = verifiers.get((name, blob[:4]))
        if pub is None:
            continue  # a key this bundle does not carry: ignored
        if len(blob) != 68 or not ed25519_ok(pub, blob[4:], text.encode()):
            return None
        signers.add(fingerprint(pub))
    if not signers:
        return None
    if origin != f"custody/{case_id}":  # §7 step 3
        return None
    return int(size_s), root, signers


# -- the verifier (§10) -------------------------------------------------------------------


def verify(
    path: Path | str, trust: tuple[str, ...] = (), require_trusted: bool = False
) -> tuple[int, list[tuple[str, str]]]:
    """``trust``: the anchors' fingerprints (``--trust sha256:...``)."""
    try:
        found = _verify(Path(path), trust, require_trusted)
    except NotABundle:
        return 2, []
    return (1 if found else 0), found


def _verify(path: Path, trust: tuple[str, ...], require_trusted: bool) -> list[tuple[str, str]]:
    files = index_bundle(path)  # step 0
    if any(n.startswith(("custody/sources/", "data/sources/")) for n in files):
        raise NotABundle("a re-export with source sections (§13): not implemented here")
    found: list[tuple[str, str]] = []

    def add(kind: str, subject: str) -> None:
        found.append((kind, subject))

    def read(rel: str) -> bytes:
        p = files.get(rel)
        if p is None:
            raise NotABundle(f"missing {rel}")
        if p.size > MAX_TAG:
            raise NotABundle(f"{rel} too large")
        return p.read_bytes()

    def text_lines(rel: str) -> list[str]:
        """§4 / §6.2: UTF-8, split at LF, one CR at a line's end removed."""
        try:
            text = read(rel).decode("utf-8")
        except UnicodeDecodeError:
            raise NotABundle(f"{rel} is not UTF-8") from None
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        return [line.removesuffix("\r") for line in lines]

    # Step 1: the bag.
    read("bagit.txt")

    def manifest(rel: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in text_lines(rel):
            if not line.strip():
                continue
            digest, sp, rest = line.partition(" ")
            name = re.sub(
                "%(25|0[aAdD])",
                lambda m: {"25": "%", "0a": "\n", "0d": "\r"}[m.group(1).lower()],
                rest.lstrip(" *"),
            )  # §4: %25, %0A, %0D decoded, in one pass
            if not sp or not name:
                raise NotABundle(f"malformed line in {rel}")
            if not safe_name(name):
                raise NotABundle(f"unsafe path in {rel}")
            out[name] = digest.lower()  # a path listed twice: the last line counts
        return out

    manifests = {alg: manifest(f"manifest-{alg}.txt") for alg in ("sha256", "sha512")}
    listed = set().union(*manifests.values())
    for name in sorted(listed):
        if name not in files:
            add("payload-missing", name)
    for name in sorted(files):
        if name.startswith("data/") and name not in listed:
            add("payload-extra", name)
    for name in sorted(listed):
        if name in files:
            for alg, m in manifests.items():
                if name in m and hashlib.new(alg, files[name].read_bytes()).hexdigest() != m[name]:
                    add("payload-digest", name)
    if "tagmanifest-sha256.txt" not in files:
        add("tag-missing", "tagmanifest-sha256.txt")
    else:
        tags = manifest("tagmanifest-sha256.txt")
        for name, digest in sorted(tags.items()):
            if name not in files:
                add("tag-missing", name)
            elif sha256_hex(files[name].read_bytes()) != digest:
                add("tag-digest", name)
        for name in sorted(files):
            if (
                not name.startswith("data/")
                and name != "tagmanifest-sha256.txt"
                and name not in tags
            ):
                add("tag-extra", name)

    # Step 2: metadata, parsed strictly and checked against its schema.
    meta = strict_json(read("custody/bundle.json"))
    keys_doc = strict_json(read("custody/keys.json"))
    proofs_doc = strict_json(read("custody/proofs.json"))
    if not all(unicode_only(d) for d in (meta, keys_doc, proofs_doc)):
        raise NotABundle("a JSON string holds a lone surrogate")  # §11 JSON
    if not isinstance(meta, dict) or type(meta.get("schema_version")) is not int:
        raise NotABundle("schema_version")  # §11: the JSON integer 1, not 1.0 or true
    if meta["schema_version"] != 1:
        raise NotABundle("schema_version")
    if type(meta.get("rules", 1)) is not int or meta.get("rules", 1) not in (1, 2):
        raise NotABundle("rules")
    for doc, schema in ((meta, "bundle"), (keys_doc, "bundle-keys"), (proofs_doc, "bundle-proofs")):
        if not matches_schema(doc, schema):
            raise NotABundle(f"{schema} does not match its schema")
    case = meta["case"]
    case_id = case["id"]
    items = meta["items"]

    # Step 3: keys.  The well-formed ones, by fingerprint (the last entry counts).
    keys: dict[str, tuple[bytes, str, str]] = {}
    for k in keys_doc:
        pub = b64decode(k["public_key"])
        if pub is None or len(pub) != 32 or fingerprint(pub) != k["fingerprint"]:
            add("key", str(k["fingerprint"]))
            continue
        keys[k["fingerprint"]] = (pub, k["name"], k["role"])

    # Step 4: events.
    events: list[dict[str, Any]] = []  # {seq, hash (the line's), body bytes, ev (parsed)}
    if "custody/events.jsonl" not in files:
        raise NotABundle("missing custody/events.jsonl")
    for n, line in enumerate(text_lines("custody/events.jsonl"), 1):
        try:
            row = strict_json(line.encode())  # 4.1
        except TooDeep:
            raise
        except NotABundle:
            add("event", f"events.jsonl line {n}")
            continue
        types = {"seq": int, "hash": str, "prev": str, "signer": str}  # 4.2
        types |= {"signature": str, "body": str}
        if (
            not isinstance(row, dict)
            or set(row) != set(types)
            or any(type(row[k]) is not t for k, t in types.items())
        ):
            raise NotABundle("an event line is not of the event-line shape")
        seq = row["seq"]
        subj = f"event {seq}"
        try:
            b = row["body"].encode("utf-8")
        except UnicodeEncodeError:
            add("event", f"events.jsonl line {n}")
            continue
        if row["hash"] != "sha256:" + sha256_hex(b):  # 4.3
            add("event-hash", subj)
        try:  # 4.4
            parsed = strict_json(b, limit=None)
        except TooDeep:
            raise
        except NotABundle:
            parsed = None
        if not isinstance(parsed, dict):
            add("event-body", subj)
            continue
        try:
            canonical = rfc8785.dumps(parsed) == b
        except Exception:  # e.g. an integer RFC 8785 cannot write
            canonical = False
        if not canonical:
            add("event-noncanonical", subj)
        signer = parsed.get("signer")  # 4.5: the body's signer
        if not isinstance(signer, str) or signer not in keys:
            add("unknown-signer", subj)
        else:
            sig = b64decode(row["signature"])
            if sig is None or len(sig) != 64 or not ed25519_ok(keys[signer][0], sig, b):
                add("signature", subj)
        if parsed.get("seq") != seq or parsed.get("signer") != row["signer"]:  # 4.6
            add("event-mismatch", subj)
        events.append({"seq": seq, "hash": row["hash"], "body": b, "ev": parsed})
    counts: dict[int, int] = {}
    for e in events:
        counts[e["seq"]] = counts.get(e["seq"], 0) + 1
    for seq in sorted(counts):
        if counts[seq] > 1:
            add("event-duplicate", f"event {seq}")
    by_seq = {e["seq"]: e for e in events}  # the last line of a seq

    def signer_of(e: dict[str, Any]) -> Any:
        return e["ev"].get("signer")

    # Step 5: checkpoint.
    cp = verify_checkpoint(
        read("custody/checkpoint.txt"),
        [(name, pub) for pub, name, _ in keys.values()],
        case_id,
    )
    cp_signers: set[str] = set()
    if cp is None:
        add("checkpoint", "custody/checkpoint.txt")
    else:
        size, cp_root, cp_signers = cp
        # Steps 6-7: proofs.
        if proofs_doc["tree_size"] != size:
            add("proof", "custody/proofs.json")
        proof_of = {p["seq"]: p["proof"] for p in proofs_doc["proofs"]}  # the last entry
        for e in events:
            proof = proof_of.get(e["seq"])
            ok = proof is not None and verify_inclusion(
                leaf_hash(e["body"]), e["seq"], size, [bytes.fromhex(h) for h in proof], cp_root
            )
            if not ok:
                add("proof", f"event {e['seq']}")

    # Step 8: items.
    collects: dict[str, dict[str, Any]] = {}
    for e in events:
        ev = e["ev"]
        if ev.get("type") == "collect" and isinstance(ev.get("data"), dict):
            collects[str(ev["data"].get("item"))] = ev["data"]  # the last one
    for it in items:
        iid = it["id"]
        data = collects.get(iid)
        if data is None:
            add("item", iid)
            continue
        payload = it.get("payload")
        if payload is not None:
            if not safe_name(payload) or not payload.startswith("data/"):
                raise NotABundle("unsafe payload path")
            if payload not in files:
                add("payload-missing", payload)
            else:
                signed = data.get("digests") if isinstance(data.get("digests"), dict) else {}
                raw = files[payload].read_bytes()
                for alg in ("sha256", "sha512"):
                    if alg in signed and hashlib.new(alg, raw).hexdigest() != signed[alg]:
                        add("payload-digest", iid)
        # Step 12: the item's fields against its signed collect event (§5).
        path_d = data.get("path") if isinstance(data.get("path"), dict) else {}
        digests = data.get("digests") if isinstance(data.get("digests"), dict) else None
        expect: dict[str, Any] = {
            "path": path_d.get("display"),
            "path_hex": path_d.get("hex"),
            "outcome": data.get("outcome"),
            "sha256": digests.get("sha256") if digests else None,
            "size": data.get("size"),
            "payload": None,
            "name_mapped": None,
        }
        if data.get("store") and digests is not None and isinstance(path_d.get("hex"), str):
            name, mapped = payload_name(iid, path_d["hex"])
            old, old_mapped = payload_name(iid, path_d["hex"], earlier=True)
            if (it.get("payload"), it.get("name_mapped")) == (f"data/{iid}/{old}", old_mapped):
                name, mapped = old, old_mapped  # the earlier rule's name is accepted (§2)
            expect["payload"] = f"data/{iid}/{name}"
            expect["name_mapped"] = mapped
        if any(it.get(f) != v for f, v in expect.items()):
            add("item", iid)

    # Step 12: the header and the case.
    header = case["header"]
    try:
        header_obj = strict_json(header.encode("utf-8"), limit=None)
    except (NotABundle, UnicodeEncodeError):
        header_obj = None
    if not isinstance(header_obj, dict):
        header_obj = {}
        add("disclosure", "custody/bundle.json")
    hh = "sha256:" + sha256_hex(header.encode("utf-8", "surrogatepass"))
    ev0 = by_seq.get(0)
    if (
        case["header_hash"] != hh
        or ev0 is None
        or ev0["ev"].get("prev") != hh
        or case_id != header_obj.get("case_id")
        or case["title"] != header_obj.get("title")
    ):
        add("disclosure", "custody/bundle.json")
    for e in events:
        if e["ev"].get("case") != header_obj.get("case_id"):
            add("disclosure", f"event {e['seq']}")
    if cp is not None and meta["checkpoint_event"] != cp[0]:
        add("disclosure", "custody/bundle.json")

    # Step 13 (§12): disclosure against the signed export event.
    export = next(
        (
            e
            for e in events
            if e["seq"] == meta["export_event"]
            and e["ev"].get("type") == "export"
            and isinstance(e["ev"].get("data"), dict)
        ),
        None,
    )
    rules: Any = 1
    if export is None:
        add("disclosure", "custody/bundle.json")
    else:
        ev = export["ev"]
        d = ev["data"]
        rules = d.get("rules", 1)
        time = ev.get("time") if isinstance(ev.get("time"), str) else ""
        if (
            meta.get("rules", 1) != rules
            or [it["id"] for it in items] != d.get("items")
            or meta["exported_by"] != ev.get("signer")
            or meta["exported"] != time[:19] + "Z"
        ):
            add("disclosure", "custody/bundle.json")
        entries = d.get("events") if isinstance(d.get("events"), list) else []
        listed_events = {
            (x["seq"], x["hash"])
            for x in entries
            if isinstance(x, dict) and type(x.get("seq")) is int and isinstance(x.get("hash"), str)
        }
        present = {(e["seq"], e["hash"]) for e in events if e is not export}
        # listed by seq *and* hash: a line whose body changed is both withheld (the
        # signed one) and extra (the new one), §12
        for seq, _ in sorted(listed_events - present):
            add("event-withheld", f"event {seq}")
        for seq, _ in sorted(present - listed_events):
            add("event-extra", f"event {seq}")
        payloads = d.get("payload") if isinstance(d.get("payload"), dict) else {}
        payload_of = {it["id"]: it.get("payload") for it in items}
        for iid in sorted(payloads):
            p = payload_of.get(iid)
            if p is None or p not in files:
                add("payload-withheld", iid)
        for name in sorted(files):
            if name.startswith("data/") and name not in set(payload_of.values()):
                add("payload-extra", name)

    # Step 12 / §9: keys.json names and roles against the first registering event.
    registered: dict[Any, tuple[Any, Any]] = {}
    for e in sorted(events, key=lambda x: x["seq"]):
        ev = e["ev"]
        d = ev.get("data") if isinstance(ev.get("data"), dict) else {}
        t = ev.get("type")
        regs: list[tuple[Any, Any, Any]] = []
        if t == "identity":
            regs = [(d.get("fingerprint"), d.get("name"), d.get("role"))]
        elif t == "key.rotate":
            regs = [(d.get("new"), d.get("name"), d.get("role"))]
        elif t == "case.open":
            owner = d.get("owner") if isinstance(d.get("owner"), dict) else {}
            if isinstance(d.get("owner"), dict):
                regs.append((owner.get("fingerprint"), owner.get("name"), owner.get("role")))
            if isinstance(d.get("recovery"), dict):
                regs.append(
                    (
                        d["recovery"].get("fingerprint"),
                        f"recovery key of {owner.get('name')}",
                        "recovery",
                    )
                )
        for fp, name, role in regs:
            if isinstance(fp, str):
                registered.setdefault(fp, (name, role))
    signers = {signer_of(e) for e in events}
    for fp, (_, name, role) in keys.items():
        if fp in registered:
            if (name, role) != registered[fp]:
                add("key", fp)
        elif fp in signers:
            add("key", fp)

    # Step 11: trust by key (§10.1), by the signed export event's rules (1 without it).
    first: dict[Any, int] = {}  # event signer -> seq of its first event
    for e in sorted(events, key=lambda x: x["seq"]):
        first.setdefault(signer_of(e), e["seq"])
    if trust:
        trusted = trusted_keys(events, set(trust), rules)
        for s in first:
            if s in keys and s not in trusted:
                add("untrusted-key", s)
        if cp is not None and not cp_signers & trusted:
            add("untrusted-checkpoint", "custody/checkpoint.txt")
    elif require_trusted:
        for fp in keys:  # every used key is self-asserted
            if fp in first or fp in cp_signers:
                add("untrusted-key", fp)
    return found


def matches_schema(doc: Any, name: str) -> bool:
    """§10 step 2: the document against its JSON Schema in schemas/."""
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema).is_valid(doc)


def trusted_keys(events: list[dict[str, Any]], anchors: set[str], rules: Any) -> set[str]:
    """§10.1: the anchors; under rules 2 also their lines of rotations and, when the
    owner is trusted, the keys attested in the bundle's signed events.  Simplified:
    every disclosed rotation and imported identity is taken as the replay would
    accept it (no cosignature check, no replay of revocations)."""
    trusted = set(anchors)
    if rules != 2:
        return trusted
    bodies = [e["ev"] for e in sorted(events, key=lambda x: x["seq"])]

    def data(ev: dict[str, Any]) -> dict[str, Any]:
        return ev.get("data") if isinstance(ev.get("data"), dict) else {}

    owner = recovery = None
    if bodies and bodies[0].get("type") == "case.open" and bodies[0].get("seq") == 0:
        d0 = data(bodies[0])
        owner = (d0.get("owner") or {}).get("fingerprint")
        recovery = (d0.get("recovery") or {}).get("fingerprint")
    rotations = [
        (data(ev).get("old"), data(ev).get("new"))
        for ev in bodies
        if ev.get("type") == "key.rotate"
    ]
    owners = {owner}
    for old, new in rotations:
        if old in owners:
            owners.add(new)
    changed = True
    while changed:
        before = set(trusted)
        for old, new in rotations:
            if old in trusted:
                trusted.add(new)
            if new in anchors:
                trusted.add(old)
        if owners & trusted:
            attested = set(owners) | ({recovery} if recovery else set())
            delegates: set[str] = set()
            for ev in bodies:
                d = data(ev)
                if ev.get("type") == "identity" and d.get("registration") == "imported":
                    if ev.get("signer") in owners or ev.get("signer") in delegates:
                        attested.add(d.get("fingerprint"))
                        if d.get("delegate") is True and ev.get("signer") in owners:
                            delegates.add(d.get("fingerprint"))
                elif ev.get("type") == "key.rotate" and d.get("old") in attested:
                    attested.add(d.get("new"))
            trusted |= attested
        changed = trusted != before
    return trusted


def payload_name(item: str, path_hex: str, earlier: bool = False) -> tuple[str, bool]:
    """§2: the payload file's name and whether it was mapped (``earlier``: by the
    rule of bundles written before issue 14, which a verifier also accepts)."""
    try:
        raw = bytes.fromhex(path_hex)
    except ValueError:
        return f"{item}.bin", True
    base = raw.rstrip(b"/").rsplit(b"/", 1)[-1]
    try:
        name = base.decode("utf-8")
    except UnicodeDecodeError:
        return f"{item}.bin", True
    if earlier:
        bad = any(ord(c) < 0x20 or c in "\x7f%\\" for c in name)
    else:
        bad = any(
            ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029%\\" for c in name
        ) or (name != "" and name[-1].isspace())
    if name in ("", ".", "..") or len(base) > 200 or bad:
        return f"{item}.bin", True
    return name, False


if __name__ == "__main__":
    rc, out = verify(sys.argv[1], tuple(sys.argv[2:]))
    for kind, subject in out:
        print(f"[{kind}] {subject}")
    print({0: "OK", 1: "findings", 2: "not a bundle"}[rc])
    sys.exit(rc)
