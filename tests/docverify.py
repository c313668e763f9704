"""An independent bundle verifier, written from docs/bundle-format.md alone (and
docs/ledger-format.md where it points there).  It imports nothing from custody: only
the standard library, ``cryptography`` (Ed25519) and ``rfc8785`` (canonical JSON).

``verify(path, trust=())`` returns ``(exit_code, findings)``: 2 "not a bundle" (no
findings), 1 with findings ``[(kind, subject)]``, 0 when the bundle verifies.

Implemented (bundle-format.md §10): steps 0-2 for a folder, tar (whatever Python's
tarfile opens) or zip bundle, with the entry rules of §11 and strict JSON; 3 keys;
4 events; 5 the checkpoint (C2SP signed note); 6-7 inclusion proofs (RFC 9162); 8
items and payload digests; 11 trust by key (anchors, their rotation lines and, under
rules 2, the keys the trusted owner attested, simplified: see ``trusted_keys``); 12
signed fields; §12 disclosure against the export event.  Skipped: step 9 (the
custody replay), step 10 (the RFC 3161 time-stamp), and of §12's JSON Schema
validation only a few rules are checked (``schema_subset``).
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

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

CUSTODY_FILES = ("bundle.json", "events.jsonl", "checkpoint.txt", "proofs.json", "keys.json")
MAX_TAG = 64 * 1024 * 1024


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


def strict_json(data: bytes) -> Any:
    """§11 JSON: UTF-8, no duplicate keys, no NaN/Infinity, nesting <= 64."""

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

    if depth(doc) > 64:
        raise TooDeep("JSON nested too deep")
    return doc


def safe_name(name: str) -> bool:
    """§11 entry-name rules (for paths inside files)."""
    if not name or "\0" in name or "\\" in name or name.startswith("/"):
        return False
    if re.match(r"^[A-Za-z]:", name):
        return False
    parts = name.split("/")
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
    """§11 entry names; the name without a directory's trailing /."""
    if is_dir and name.endswith("/"):
        name = name[:-1]
    if not safe_name(name):
        raise NotABundle(f"unsafe entry name {name!r}")
    return name


def index_archive(path: Path) -> dict[str, Entry]:
    entries: dict[str, Entry | None] = {}  # None: a directory

    def put(name: str, entry: Entry | None) -> None:
        if name in entries:
            raise NotABundle(f"duplicate entry {name}")
        entries[name] = entry

    if zipfile.is_zipfile(path):
        zf = zipfile.ZipFile(path)
        for info in zf.infolist():
            mode = info.external_attr >> 16
            is_dir = info.is_dir()
            name = check_entry_name(info.filename, is_dir)
            if mode and stat.S_IFMT(mode):
                kind = stat.S_IFMT(mode)
                if kind == stat.S_IFLNK or (kind != stat.S_IFREG and not is_dir):
                    raise NotABundle(f"zip entry {name} is not a regular file")
                if is_dir and kind != stat.S_IFDIR:
                    raise NotABundle(f"zip entry {name} is not a directory")
            put(
                name,
                None if is_dir else Entry(info.file_size, lambda i=info: zf.read(i)),
            )
    else:
        try:
            tf = tarfile.open(path, "r:*")
            members = tf.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise NotABundle(f"not a readable archive: {exc}") from None
        for m in members:
            name = check_entry_name(m.name, m.isdir())
            if m.issym() or m.islnk():
                raise NotABundle(f"link {name}")
            if m.isdir():
                put(name, None)
            elif m.isreg():
                put(name, Entry(m.size, lambda m=m: tf.extractfile(m).read()))  # type: ignore[union-attr]
            else:
                raise NotABundle(f"special entry {name}")
    total = sum(e.size for e in entries.values() if e is not None)
    if total > 1 << 40 or (total > 64 << 20 and total > 1000 * path.stat().st_size):
        raise NotABundle("decompression bomb")
    files = {n: e for n, e in entries.items() if e is not None}
    if "bagit.txt" in files:
        return files
    tops = {n.split("/")[0] for n in entries}
    if len(tops) != 1:
        raise NotABundle("no bagit.txt")
    (top,) = tops
    return {n[len(top) + 1 :]: e for n, e in files.items() if n.startswith(top + "/")}


def index_bundle(path: Path) -> dict[str, Entry]:
    """The bag's regular files by their path relative to the bag root."""
    if not path.exists():
        raise NotABundle("no such path")
    if not path.is_dir():
        files = index_archive(path)
    else:
        # custody applies §1's "one top folder" rule to archives only: a folder's
        # bag root is the folder itself
        files = index_folder(path)
    if "bagit.txt" not in files:
        raise NotABundle("no bagit.txt")
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


def verify_checkpoint(
    data: bytes, keys: list[tuple[str, bytes]], case_id: Any
) -> tuple[int, bytes, set[str]] | None:
    """(size, root, signer fingerprints) of a valid note, else None (§7)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    body, sep, sigs = text.partition("\n\n")
    if not sep:
        return None
    body += "\n"
    lines = body.split("\n")[:-1]
    if len(lines) < 3:
        return None
    origin, size_s, root_s = lines[0], lines[1], lines[2]
    # §7 step 2 says "exactly three lines" but also that C2SP allows extension
    # lines; custody accepts them, and so does this verifier
    if not re.fullmatch(r"0|[1-9][0-9]*", size_s):
        return None
    root = b64decode(root_s)
    if root is None or len(root) != 32 or base64.b64encode(root).decode() != root_s:
        return None
    if origin != f"custody/{case_id}":
        return None
    verifiers = {}
    for name, pub in keys:
        kn = note_key_name(name)
        verifiers[(kn, note_key_id(kn, pub))] = pub
    if not sigs.endswith("\n"):
        return None
    sig_lines = sigs[:-1].split("\n")
    if len(sig_lines) > 100:
        return None
    signers: set[str] = set()
    for line in sig_lines:
        if not line.startswith("\u2014 "):
            return None
        parts = line[2:].split(" ")
        if len(parts) != 2:
            return None
        blob = b64decode(parts[1])
        if blob is None or len(blob) < 5:
            return None
        pub = verifiers.get((parts[0], blob[:4]))
        if pub is None:
            continue
        if len(blob) != 68 or not ed25519_ok(pub, blob[4:], body.encode()):
            return None
        signers.add(fingerprint(pub))
    if not signers:
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
    files = index_bundle(path)
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

    # Step 1: the bag.
    read("bagit.txt")

    def manifest(rel: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in read(rel).decode("utf-8").split("\n"):
            # custody (and BagIt, RFC 8493 §2.1.3) also accepts CRLF line ends;
            # §4's reading rules do not mention them
            line = line.removesuffix("\r")
            if not line.strip():
                continue
            digest, sp, rest = line.partition(" ")
            name = rest.lstrip(" *")
            if not sp or not name:
                raise NotABundle(f"malformed line in {rel}")
            if not safe_name(name):
                raise NotABundle(f"unsafe path in {rel}")
            out[name] = digest.lower()
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

    # Step 2: metadata.
    meta = strict_json(read("custody/bundle.json"))
    keys_doc = strict_json(read("custody/keys.json"))
    proofs_doc = strict_json(read("custody/proofs.json"))
    if not isinstance(meta, dict) or meta.get("schema_version") != 1:
        raise NotABundle("schema_version")
    if not isinstance(keys_doc, list) or not all(isinstance(k, dict) for k in keys_doc):
        raise NotABundle("keys.json")
    schema_subset(meta, keys_doc, proofs_doc)
    case = meta.get("case") if isinstance(meta.get("case"), dict) else {}
    case_id = case.get("id")

    # Step 3: keys.
    keys: dict[str, bytes] = {}
    key_entries: dict[str, dict[str, Any]] = {}
    for k in keys_doc:
        pub = b64decode(k.get("public_key"))
        fp = k.get("fingerprint")
        if pub is None or len(pub) != 32 or fingerprint(pub) != fp:
            add("key", str(fp))
            continue
        keys.setdefault(fp, pub)
        key_entries.setdefault(fp, k)

    # Step 4: events.
    events: list[dict[str, Any]] = []  # usable lines: {seq, hash, body bytes, parsed}
    try:
        text = read("custody/events.jsonl").decode("utf-8")
    except UnicodeDecodeError:
        raise NotABundle("events.jsonl is not UTF-8") from None
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            # a line that is not strict JSON (§11: duplicate keys, NaN...) is a
            # finding, as custody does; §11 does not say whether its JSON rules,
            # which refuse the bundle, cover the lines of events.jsonl
            row = strict_json(line.encode())
        except TooDeep:
            raise
        except NotABundle:
            row = None
        if isinstance(row, dict):
            # schemas/bundle-event-line.schema.json (§12): exactly these fields
            types = {"seq": int, "hash": str, "prev": str, "signer": str}
            types |= {"signature": str, "body": str}
            if set(row) != set(types) or any(type(row[k]) is not t for k, t in types.items()):
                raise NotABundle("an event line does not match its schema")
        parsed: Any = None
        ok_body = False
        if isinstance(row, dict) and isinstance(row.get("body"), str):
            try:
                parsed = json.loads(row["body"])
                ok_body = True
            except ValueError:
                parsed = None
        if not isinstance(row, dict) or not isinstance(row.get("seq"), int):
            add("event", f"events.jsonl line {n}")
            continue
        if not ok_body or not isinstance(parsed, dict):
            # §10 step 4 says both `event` (line n) and `event-body`; custody gives
            # `event-body` (event <seq>) for a line with a seq whose body is no object
            add("event-body", f"event {row['seq']}")
            continue
        seq = row["seq"]
        subj = f"event {seq}"
        b = row["body"].encode("utf-8")
        if row.get("hash") != "sha256:" + sha256_hex(b):
            add("event-hash", subj)
        if rfc8785.dumps(parsed) != b:
            add("event-noncanonical", subj)
        if parsed.get("seq") != seq or parsed.get("signer") != row.get("signer"):
            add("event-mismatch", subj)
        # the key is looked up by the *body's* signer, as custody does (§10 step 4
        # says only "a signer"; the line's may differ: event-mismatch)
        signer = parsed.get("signer")
        if not isinstance(signer, str) or signer not in keys:
            add("unknown-signer", subj)
        else:
            sig = b64decode(row.get("signature"))
            if sig is None or len(sig) != 64 or not ed25519_ok(keys[signer], sig, b):
                add("signature", subj)
        events.append({"seq": seq, "row": row, "body": b, "ev": parsed})

    # Step 5: checkpoint.
    cp = verify_checkpoint(
        read("custody/checkpoint.txt"),
        [(str(key_entries[fp].get("name", "")), pub) for fp, pub in keys.items()],
        case_id,
    )
    cp_signers: set[str] = set()
    if cp is None:
        add("checkpoint", "custody/checkpoint.txt")
    else:
        size, cp_root, cp_signers = cp
        # Steps 6-7: proofs.
        plist = proofs_doc.get("proofs") if isinstance(proofs_doc, dict) else None
        if not isinstance(plist, list) or proofs_doc.get("tree_size") != size:
            add("proof", "custody/proofs.json")
            plist = plist if isinstance(plist, list) else []
        by_seq: dict[Any, Any] = {}
        for entry in plist:
            if isinstance(entry, dict):
                by_seq.setdefault(entry.get("seq"), entry.get("proof"))
        for e in events:
            proof = by_seq.get(e["seq"])
            ok = False
            if isinstance(proof, list) and all(isinstance(h, str) for h in proof):
                try:
                    hashes = [bytes.fromhex(h) for h in proof]
                    ok = verify_inclusion(leaf_hash(e["body"]), e["seq"], size, hashes, cp_root)
                except ValueError:
                    ok = False
            if not ok:
                add("proof", f"event {e['seq']}")

    # Step 8: items.
    collects: dict[str, dict[str, Any]] = {}
    for e in events:
        ev = e["ev"]
        data = ev.get("data") if isinstance(ev.get("data"), dict) else {}
        if ev.get("type") == "collect" and isinstance(data.get("item"), str):
            collects.setdefault(data["item"], data)
    items = meta.get("items") if isinstance(meta.get("items"), list) else []
    for it in items:
        if not isinstance(it, dict):
            continue
        iid = str(it.get("id"))
        payload = it.get("payload")
        if payload is not None and (
            not isinstance(payload, str)
            or not safe_name(payload)
            or not payload.startswith("data/")
        ):
            raise NotABundle("unsafe payload path")
        data = collects.get(iid)
        if data is None:
            add("item", iid)
        if payload is not None:
            if payload not in files:
                add("payload-missing", payload)
            elif data is not None:
                signed = data.get("digests") if isinstance(data.get("digests"), dict) else {}
                raw = files[payload].read_bytes()
                for alg in ("sha256", "sha512"):
                    if alg in signed and hashlib.new(alg, raw).hexdigest() != signed[alg]:
                        add("payload-digest", iid)
        # Step 12: the item's fields against its signed collect event (§5).
        if data is not None:
            path = data.get("path") if isinstance(data.get("path"), dict) else {}
            digests = data.get("digests") if isinstance(data.get("digests"), dict) else None
            has_bytes = bool(data.get("store")) and digests is not None
            expect: dict[str, Any] = {
                "path": path.get("display"),
                "path_hex": path.get("hex"),
                "outcome": data.get("outcome"),
                "sha256": digests.get("sha256") if digests else None,
                "size": data.get("size"),
            }
            if has_bytes:
                name, mapped = payload_name(iid, str(path.get("hex", "")))
                expect["payload"] = f"data/{iid}/{name}"
                expect["name_mapped"] = mapped
            fields = ("path", "path_hex", "outcome", "sha256", "size", "payload", "name_mapped")
            got = {f: it[f] for f in fields if f in it}
            if got != expect:
                add("item", iid)

    # Step 12: the header, the case, the export event.
    header = case.get("header")
    header_obj: dict[str, Any] = {}
    if isinstance(header, str):
        try:
            header_obj = json.loads(header)
        except ValueError:
            header_obj = {}
    hh = "sha256:" + sha256_hex(header.encode()) if isinstance(header, str) else None
    ev0 = [e for e in events if e["seq"] == 0]
    if (
        hh is None
        or case.get("header_hash") != hh
        or not ev0
        or ev0[0]["ev"].get("prev") != hh
        or not isinstance(header_obj, dict)
        or case_id != header_obj.get("case_id")
        or case.get("title") != header_obj.get("title")
    ):
        add("disclosure", "custody/bundle.json")
    for e in events:
        if e["ev"].get("case") != header_obj.get("case_id"):
            add("disclosure", f"event {e['seq']}")

    # §12: disclosure against the signed export event.
    exports = [e for e in events if e["ev"].get("type") == "export"]
    export = exports[0] if exports else None
    if export is None:
        add("disclosure", "custody/bundle.json")
    else:
        ev = export["ev"]
        d = ev.get("data") if isinstance(ev.get("data"), dict) else {}
        time = ev.get("time") if isinstance(ev.get("time"), str) else ""
        item_ids = [it.get("id") for it in items if isinstance(it, dict)]
        if (
            # compared regardless of order, as custody does (§12 "exactly those of
            # bundle.json" does not say whether the order counts)
            not isinstance(d.get("items"), list)
            or sorted(map(str, d["items"])) != sorted(map(str, item_ids))
            or meta.get("exported_by") != ev.get("signer")
            or meta.get("exported") != time[:19] + "Z"
            or (cp is not None and meta.get("checkpoint_event") != cp[0])
            or meta.get("export_event") != export["seq"]
            or meta.get("rules", 1) != d.get("rules", 1)
        ):
            add("disclosure", "custody/bundle.json")
        listed_events = {
            (x.get("seq"), x.get("hash")) for x in d.get("events", []) if isinstance(x, dict)
        }
        present: dict[int, int] = {}
        lines = set()
        for e in events:
            present[e["seq"]] = present.get(e["seq"], 0) + 1
            lines.add((e["seq"], e["row"].get("hash")))
        for seq in sorted(present):
            if present[seq] > 1:
                add("event-duplicate", f"event {seq}")
        # an event is listed by its seq *and* hash: a line whose body changed is
        # both withheld (the signed one) and extra (the new one)
        for seq, _ in sorted(x for x in listed_events if x not in lines):
            add("event-withheld", f"event {seq}")
        for seq, _ in sorted(x for x in lines if x not in listed_events):
            if seq != export["seq"]:
                add("event-extra", f"event {seq}")
        payloads = d.get("payload") if isinstance(d.get("payload"), dict) else {}
        by_id = {it.get("id"): it for it in items if isinstance(it, dict)}
        for iid in sorted(payloads):
            p = by_id.get(iid, {}).get("payload")
            if p is None or p not in files:
                add("payload-withheld", iid)
        payload_paths = {it.get("payload") for it in by_id.values()}
        for name in sorted(files):
            if name.startswith("data/") and name not in payload_paths:
                add("payload-extra", name)

    # Step 12 / §9: keys.json names and roles against the first registering event.
    registered: dict[str, tuple[Any, Any]] = {}
    for e in sorted(events, key=lambda x: x["seq"]):
        ev = e["ev"]
        d = ev.get("data") if isinstance(ev.get("data"), dict) else {}
        t = ev.get("type")
        reg = None
        if t == "identity":
            reg = d
        elif t == "case.open" and isinstance(d.get("owner"), dict):
            reg = d["owner"]
        elif t == "key.rotate":
            reg = {"fingerprint": d.get("new"), "name": d.get("name"), "role": d.get("role")}
        if reg is not None and isinstance(reg.get("fingerprint"), str):
            registered.setdefault(reg["fingerprint"], (reg.get("name"), reg.get("role")))
    signers = {e["row"].get("signer") for e in events}
    for fp, k in key_entries.items():
        if fp in registered:
            if (k.get("name"), k.get("role")) != registered[fp]:
                add("key", fp)
        elif fp in signers:
            add("key", fp)

    # Step 11: trust by key (§10.1).
    if trust:
        # without a signed export event (already a finding) custody falls back to
        # bundle.json's unsigned "rules"; the docs say nothing of that case
        rules = meta.get("rules", 1)
        if export is not None:
            d = export["ev"].get("data") if isinstance(export["ev"].get("data"), dict) else {}
            rules = d.get("rules", 1)
        trusted = trusted_keys(events, set(trust), rules)
        seen: set[str] = set()
        for e in sorted(events, key=lambda x: x["seq"]):
            s = e["row"].get("signer")
            if s in keys and s not in trusted and s not in seen:
                seen.add(s)
                add("untrusted-key", s)
        if cp is not None and not cp_signers & trusted:
            add("untrusted-checkpoint", "custody/checkpoint.txt")
    elif require_trusted:
        # every used key is self-asserted: one finding per key, in order of first use
        used = [e["row"].get("signer") for e in sorted(events, key=lambda x: x["seq"])]
        for fp in dict.fromkeys([*used, *sorted(cp_signers)]):
            if fp in keys:
                add("untrusted-key", fp)
    return found


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


def schema_subset(meta: dict[str, Any], keys_doc: list[dict[str, Any]], proofs_doc: Any) -> None:
    """A few rules of schemas/ (§12, last paragraph: a schema mismatch is exit 2),
    only those a tamper of the tests reaches; not a JSON Schema validator."""
    top = {"schema_version", "tool", "case", "exported", "exported_by", "items"}
    top |= {"checkpoint_event", "export_event"}
    if not top <= set(meta) or set(meta) - top - {"rules", "checkpoint_timestamp"}:
        raise NotABundle("bundle.json fields")
    if not isinstance(meta["case"], dict) or set(meta["case"]) != {
        "id",
        "title",
        "header",
        "header_hash",
    }:
        raise NotABundle("bundle.json case")
    if not isinstance(proofs_doc, dict) or set(proofs_doc) != {"tree_size", "proofs"}:
        raise NotABundle("proofs.json fields")
    if not isinstance(proofs_doc["proofs"], list) or any(
        not isinstance(e, dict) or set(e) != {"seq", "proof"} for e in proofs_doc["proofs"]
    ):
        raise NotABundle("proofs.json entries")
    for k in keys_doc:
        if set(k) != {"fingerprint", "name", "role", "public_key"}:
            raise NotABundle("keys.json fields")
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", str(k.get("fingerprint"))):
            raise NotABundle("keys.json fingerprint")
        if not re.fullmatch(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=", str(k.get("public_key"))):
            raise NotABundle("keys.json public_key")
    if not isinstance(meta.get("items"), list):
        raise NotABundle("bundle.json items")
    for it in meta["items"]:
        if isinstance(it, dict):
            with_bytes = isinstance(it.get("sha256"), str)
            if with_bytes != ("payload" in it) or with_bytes != ("name_mapped" in it):
                raise NotABundle("bundle.json item payload")


def payload_name(item: str, path_hex: str) -> tuple[str, bool]:
    """§2: the payload file's name and whether it was mapped."""
    try:
        raw = bytes.fromhex(path_hex)
    except ValueError:
        return f"{item}.bin", True
    base = raw.rstrip(b"/").rsplit(b"/", 1)[-1]
    try:
        name = base.decode("utf-8")
    except UnicodeDecodeError:
        return f"{item}.bin", True
    if (
        name in ("", ".", "..")
        or len(base) > 200
        or any(ord(c) < 0x20 or c in "\x7f%\\" for c in name)
    ):
        return f"{item}.bin", True
    return name, False


if __name__ == "__main__":
    rc, out = verify(sys.argv[1], tuple(sys.argv[2:]))
    for kind, subject in out:
        print(f"[{kind}] {subject}")
    print({0: "OK", 1: "findings", 2: "not a bundle"}[rc])
    sys.exit(rc)
