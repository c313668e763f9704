"""Evidence bundles for counsel: a BagIt bag (RFC 8493) carrying the payload, the
signed events about the exported items, a signed checkpoint and inclusion proofs.

Layout (see docs/bundle-format.md)::

    bagit.txt  bag-info.txt  manifest-sha256.txt  manifest-sha512.txt
    tagmanifest-sha256.txt
    data/ITEM-N/<original file name>         payload (mapped name if not representable)
    custody/bundle.json     schema version, case, items and where their bytes are
    custody/events.jsonl    the disclosed events, one JSON object a line
    custody/checkpoint.txt  a C2SP signed checkpoint of the whole ledger
    custody/proofs.json     an RFC 9162 inclusion proof of every disclosed event
    custody/keys.json       the public keys of everyone who signed

Verification never extracts anything: it reads a folder, a tar (optionally gzip)
or a zip in place, refusing hostile entries before reading any content.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import io
import json
import multiprocessing
import os
import re
import stat
import tarfile
import tempfile
import zipfile
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import IO, Any

from custody import __version__, merkle
from custody.canonical import content_hash, parse_canonical, parse_strict
from custody.checkpoint import (
    make_checkpoint,
    note_key_name,
    open_checkpoint_text,
    origin_of,
    timestamp_checkpoint,
    verifiers,
)
from custody.errors import CustodyError, IntegrityError, UsageError
from custody.hashing import hash_file
from custody.keys import fingerprint, load_public_key, verify_signature
from custody.ledger import (
    COLLECT_EVENT,
    IDENTITY_EVENT,
    KEY_REVOKE_EVENT,
    KEY_ROTATE_EVENT,
    Event,
    EventDraft,
    Ledger,
)
from custody.lifecycle import replay
from custody.store import Store, WritersLock
from custody.timestamp import TimestampError, verify_token

SCHEMA_VERSION = 1
MAX_TAG_FILE = 64 << 20  # bytes of any one custody/ or bag tag file
MAX_JSON_DEPTH = 64
TIMESTAMP_FILE = "custody/checkpoint.tsr"  # optional RFC 3161 TimeStampResp over checkpoint.txt
MAX_TOTAL = 1 << 40  # 1 TiB of declared content
MAX_RATIO = 1000  # declared size / archive size: beyond this, a decompression bomb
CHUNK = 1 << 20
KEY_EVENTS = (IDENTITY_EVENT, KEY_ROTATE_EVENT, KEY_REVOKE_EVENT)
EXPORT_EVENT = "export"


class HostileBundleError(UsageError):
    """Not a bundle custody will read: unsafe entries, bombs, malformed metadata."""


# -- export ---------------------------------------------------------------------


def _payload_name(raw: bytes, item: str) -> tuple[str, bool]:
    """The payload file name for an item: its original base name when that is
    plain UTF-8 without separators or control characters, else a mapped name."""
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


@dataclass
class ExportResult:
    out: Path
    items: list[str]
    events: int
    bytes: int
    checkpoint_size: int


def _disclosed(ledger: Ledger, items: list[str]) -> list[Event]:
    wanted = set(items)
    rows = ledger.conn.execute(
        "SELECT DISTINCT seq FROM event_items WHERE item IN (%s)" % ",".join("?" * len(wanted)),  # noqa: S608, UP031
        tuple(wanted),
    )
    seqs = {int(r[0]) for r in rows}
    # earlier exports name other items: they are not about these items' custody
    return [
        ev
        for ev in ledger.events()
        if (ev.seq in seqs and ev.type != EXPORT_EVENT) or ev.type in KEY_EVENTS
    ]


def _bag_files(
    ledger: Ledger, signer: Any, items: list[str], organization: str, tsa: str | None
) -> tuple[dict[str, bytes | Path], int, int, int]:
    """Every file of the bag (tag bytes or payload path), payload bytes, files, cp size."""
    artifacts = {a["id"]: a for a in ledger.artifacts()}
    store = Store(ledger.store_dir)
    ledger.ensure_registered(signer)
    listed = _disclosed(ledger, items)
    # the exporter signs what the bundle discloses, so nothing can be left out later
    export_ev = next(
        e
        for e in ledger.append(
            signer,
            [
                EventDraft(
                    EXPORT_EVENT,
                    {
                        "items": items,
                        "payload": {
                            i: artifacts[i]["sha256"] for i in items if artifacts[i]["sha256"]
                        },
                        "events": [{"seq": e.seq, "hash": e.hash} for e in listed],
                    },
                )
            ],
        )
        if e.type == EXPORT_EVENT
    )
    _, cp_event = make_checkpoint(ledger, signer)
    cp_text = str(cp_event.data["note"])
    stamp = timestamp_checkpoint(ledger, signer, cp_event, cp_text, tsa) if tsa else None
    size = int(cp_event.data["size"])
    events = [*listed, export_ev]
    tree = ledger.tree()
    files: dict[str, bytes | Path] = {}
    meta_items = []
    payload_bytes = payload_files = 0
    for item in items:
        a = artifacts[item]
        entry: dict[str, Any] = {
            "id": item,
            "path": a["display_path"],
            "path_hex": a["path_hex"],
            "outcome": a["outcome"],
            "sha256": a["sha256"],
            "size": a["size"],
        }
        if a["sha256"]:
            name, mapped = _payload_name(bytes.fromhex(a["path_hex"]), item)
            rel = f"data/{item}/{name}"
            files[rel] = store.path_of(f"sha256/{a['sha256'][:2]}/{a['sha256'][2:4]}/{a['sha256']}")
            entry["payload"] = rel
            entry["name_mapped"] = mapped
            payload_bytes += int(a["size"] or 0)
            payload_files += 1
        meta_items.append(entry)
    idents = ledger.identities()
    signers = {ev.signer for ev in events}
    keys = [
        {"fingerprint": fp, "name": r["name"], "role": r["role"], "public_key": r["public_key"]}
        for fp, r in sorted(idents.items())
        if fp in signers or fp == signer.fingerprint
    ]
    lines = [
        json.dumps(
            {
                "seq": ev.seq,
                "hash": ev.hash,
                "prev": ev.prev,
                "signer": ev.signer,
                "signature": ev.signature,
                "body": ev.body,
            },
            ensure_ascii=False,
            sort_keys=True,
        )
        for ev in events
    ]
    proofs = {
        "tree_size": size,
        "proofs": [
            {"seq": ev.seq, "proof": [h.hex() for h in tree.inclusion_proof(ev.seq, size)]}
            for ev in events
        ],
    }
    bundle = {
        "schema_version": SCHEMA_VERSION,
        "tool": f"custody {__version__}",
        "case": {
            "id": ledger.case.case_id,
            "title": ledger.case.title,
            "header": ledger.case.header,
            "header_hash": ledger.case.hash,
        },
        "exported": datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "exported_by": signer.fingerprint,
        "items": meta_items,
        "checkpoint_event": cp_event.seq,
        "export_event": export_ev.seq,
    }
    if stamp is not None:
        bundle["checkpoint_timestamp"] = {
            "file": TIMESTAMP_FILE,
            "tsa": tsa,
            "event": stamp.seq,
        }
        files[TIMESTAMP_FILE] = base64.b64decode(str(stamp.data["token"]))
    files["custody/bundle.json"] = (
        json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
    ).encode()
    files["custody/events.jsonl"] = ("".join(line + "\n" for line in lines)).encode()
    files["custody/checkpoint.txt"] = cp_text.encode()
    files["custody/proofs.json"] = (json.dumps(proofs, indent=2) + "\n").encode()
    files["custody/keys.json"] = (json.dumps(keys, indent=2, ensure_ascii=False) + "\n").encode()
    files["bagit.txt"] = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    info = [
        ("Source-Organization", organization),
        ("Contact-Name", signer.identity.name),
        ("External-Identifier", ledger.case.case_id),
        ("Bagging-Date", datetime.now(tz=UTC).strftime("%Y-%m-%d")),
        ("Payload-Oxum", f"{payload_bytes}.{payload_files}"),
        ("Custody-Schema-Version", str(SCHEMA_VERSION)),
        ("Custody-Case-Title", ledger.case.title.replace("\n", " ")),
        ("Custody-Items", " ".join(items)),
        ("Custody-Checkpoint-Size", str(size)),
    ]
    files["bag-info.txt"] = "".join(f"{k}: {v}\n" for k, v in info).encode()
    return files, payload_bytes, payload_files, size


def _digest(src: bytes | Path, algs: Sequence[str]) -> dict[str, str]:
    if isinstance(src, bytes):
        return {a: hashlib.new(a, src).hexdigest() for a in algs}
    return hash_file(src, algs).digests


def export_bundle(
    ledger: Ledger,
    signer: Any,
    items: Sequence[str],
    out: Path,
    *,
    organization: str = "custody",
    tsa: str | None = None,
) -> ExportResult:
    """Write a bundle of ``items`` (all items if empty) to ``out``: a folder, or
    one file ending in .tar, .tar.gz/.tgz or .zip.  With ``tsa`` (a URL), the
    export's checkpoint gets an RFC 3161 time-stamp, recorded in the ledger and
    carried in the bundle as custody/checkpoint.tsr."""
    known = [a["id"] for a in ledger.artifacts()]
    chosen = [i.strip().upper() for i in items] or known
    for i in chosen:
        if i not in known:
            raise UsageError(f"no such item: {i}")
    chosen = list(dict.fromkeys(chosen))
    if out.exists():
        raise UsageError(f"{out} already exists; refusing to overwrite")
    files, nbytes, _, size = _bag_files(ledger, signer, chosen, organization, tsa)
    payload = {n: s for n, s in files.items() if n.startswith("data/")}
    digests = {n: _digest(s, ("sha256", "sha512")) for n, s in payload.items()}
    for alg in ("sha256", "sha512"):
        files[f"manifest-{alg}.txt"] = "".join(
            f"{digests[n][alg]}  {n}\n" for n in sorted(payload)
        ).encode()
    tags = sorted(n for n in files if not n.startswith("data/"))
    files["tagmanifest-sha256.txt"] = "".join(
        f"{_digest(files[n], ('sha256',))['sha256']}  {n}\n" for n in tags
    ).encode()
    _write(files, out)
    events_blob = files["custody/events.jsonl"]
    events = events_blob.count(b"\n") if isinstance(events_blob, bytes) else 0
    return ExportResult(out, chosen, events, nbytes, size)


def _write(files: dict[str, bytes | Path], out: Path) -> None:
    name = out.name
    top = name.split(".")[0] or "bundle"
    try:
        if name.endswith((".tar", ".tar.gz", ".tgz")):
            mode = "w:gz" if name.endswith(("gz",)) else "w"
            with tarfile.open(out, mode) as tar:  # type: ignore[call-overload]
                data_dir = tarfile.TarInfo(f"{top}/data")
                data_dir.type, data_dir.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(data_dir)
                for n in sorted(files):
                    _tar_add(tar, f"{top}/{n}", files[n])
        elif name.endswith(".zip"):
            with zipfile.ZipFile(out, "x", zipfile.ZIP_DEFLATED) as z:
                z.writestr(f"{top}/data/", b"")
                for n in sorted(files):
                    src = files[n]
                    if isinstance(src, bytes):
                        z.writestr(f"{top}/{n}", src)
                    else:
                        z.write(src, f"{top}/{n}")
        else:
            out.mkdir(parents=True)
            (out / "data").mkdir()  # BagIt needs it even with no payload
            for n in sorted(files):
                dest = out / n
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = files[n]
                if isinstance(src, bytes):
                    dest.write_bytes(src)
                else:
                    with open(src, "rb") as fi, open(dest, "wb") as fo:
                        while chunk := fi.read(CHUNK):
                            fo.write(chunk)
    except OSError as e:
        raise CustodyError(f"cannot write bundle {out}: {e.strerror or e}") from e


def _tar_add(tar: tarfile.TarFile, arcname: str, src: bytes | Path) -> None:
    if isinstance(src, bytes):
        info = tarfile.TarInfo(arcname)
        info.size = len(src)
        info.mode = 0o644
        info.mtime = int(datetime.now(tz=UTC).timestamp())
        tar.addfile(info, io.BytesIO(src))
    else:
        info = tar.gettarinfo(str(src), arcname)
        info.mode = 0o444
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        with open(src, "rb") as f:
            tar.addfile(info, f)


# -- reading, safely ----------------------------------------------------------------


def path_is_dangerous(name: str) -> str | None:
    """Why an entry name may not be used, or None (bagit-python's idea, stricter)."""
    if not name or "\x00" in name:
        return "empty or NUL in name"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if "\\" in name:
        return "backslash in name"
    parts = name.split("/")
    if any(p == ".." for p in parts):
        return "'..' in path"
    if any(p in ("", ".") for p in parts[:-1]):
        return "empty or '.' path component"
    return None


class _Source(ABC):
    """Regular files of a bundle by relative name, read without extracting."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes
        self.digests: dict[str, dict[str, str]] = {}  # payload digests computed once
        self.on_close: list[Callable[[], None]] = []
        self.pool: ProcessPoolExecutor | None = None  # workers, for a large folder bag

    @abstractmethod
    def open(self, name: str) -> IO[bytes]:
        """A readable stream of entry ``name``."""

    def read(self, name: str, cap: int = MAX_TAG_FILE) -> bytes:
        if self.sizes[name] > cap:
            raise HostileBundleError(f"{name} is {self.sizes[name]} bytes; larger than allowed")
        with self.open(name) as f:
            data = f.read(cap + 1)
        if len(data) > cap:
            raise HostileBundleError(f"{name} is larger than allowed")
        return data

    def close(self) -> None:
        """Stop work still reading the bundle, then release the archive, if any."""
        for hook in self.on_close:
            hook()
        self._release()

    def _release(self) -> None:  # noqa: B027 - only archive readers hold something open
        """Release the archive, if any."""


def _strip_top(names: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Archives hold the bag under one top folder; find it."""
    if "bagit.txt" in names:
        return "", names
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1:
        top = tops.pop() + "/"
        return top, {n[len(top) :]: v for n, v in names.items() if n.startswith(top)}
    return "", names


def _check_name(name: str, seen: set[str]) -> None:
    why = path_is_dangerous(name)
    if why:
        raise HostileBundleError(f"unsafe entry {name!r}: {why}")
    if name in seen:
        raise HostileBundleError(f"duplicate entry {name!r}")
    seen.add(name)


class _DirSource(_Source):
    def __init__(self, root: Path) -> None:
        self.root = root
        sizes: dict[str, int] = {}
        todo = [("", os.fspath(root))]
        while todo:
            prefix, folder = todo.pop()
            with os.scandir(folder) as entries:
                for e in entries:
                    rel = prefix + e.name
                    st = e.stat(follow_symlinks=False)
                    if stat.S_ISLNK(st.st_mode):
                        raise HostileBundleError(f"unsafe entry {rel!r}: symbolic link")
                    if stat.S_ISDIR(st.st_mode):
                        todo.append((rel + "/", e.path))
                    elif not stat.S_ISREG(st.st_mode):
                        raise HostileBundleError(f"unsafe entry {rel!r}: not a regular file")
                    elif st.st_nlink > 1:
                        raise HostileBundleError(f"unsafe entry {rel!r}: hard link")
                    else:
                        sizes[rel] = st.st_size
        super().__init__(sizes)

    def open(self, name: str) -> IO[bytes]:
        return open(self.root / name, "rb")


class _TarSource(_Source):
    def __init__(self, path: Path) -> None:
        try:
            self.tar = tarfile.open(path, "r:*")
        except (tarfile.TarError, OSError, EOFError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise HostileBundleError(f"{path} is not a bundle (folder, tar or zip): {first}") from e
        archive = max(path.stat().st_size, 1)
        members: dict[str, tarfile.TarInfo] = {}
        seen: set[str] = set()
        total = 0
        try:
            for m in self.tar:
                name = m.name.rstrip("/") if m.isdir() else m.name
                _check_name(name, seen)
                if m.isdir():
                    continue
                if m.issym() or m.islnk():
                    raise HostileBundleError(f"unsafe entry {m.name!r}: link")
                if not m.isfile():
                    raise HostileBundleError(f"unsafe entry {m.name!r}: device or special file")
                total += m.size
                if total > MAX_TOTAL or (total > (64 << 20) and total / archive > MAX_RATIO):
                    raise HostileBundleError(
                        f"{path}: declared content ({total} bytes) is far larger than the archive"
                        f" ({archive} bytes): refusing a decompression bomb"
                    )
                members[name] = m
        except (tarfile.TarError, EOFError, OSError) as e:
            raise HostileBundleError(f"{path} is a damaged tar archive: {e}") from e
        self.top, self.members = _strip_top(members)
        super().__init__({n: m.size for n, m in self.members.items()})

    def open(self, name: str) -> IO[bytes]:
        f = self.tar.extractfile(self.members[name])
        if f is None:
            raise HostileBundleError(f"cannot read {name}")
        return f

    def _release(self) -> None:
        self.tar.close()


class _ZipSource(_Source):
    def __init__(self, path: Path) -> None:
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise HostileBundleError(f"{path} is not a readable zip archive: {e}") from e
        infos: dict[str, zipfile.ZipInfo] = {}
        seen: set[str] = set()
        total = 0
        archive = max(path.stat().st_size, 1)
        for i in self.zip.infolist():
            name = i.filename.rstrip("/") if i.is_dir() else i.filename
            _check_name(name, seen)
            if i.is_dir():
                continue
            kind = stat.S_IFMT(i.external_attr >> 16)
            if kind and kind != stat.S_IFREG:
                raise HostileBundleError(f"unsafe entry {i.filename!r}: link or special file")
            total += i.file_size
            if total > MAX_TOTAL or (total > (64 << 20) and total / archive > MAX_RATIO):
                raise HostileBundleError(
                    f"{path}: declared content ({total} bytes) is far larger than the archive:"
                    " refusing a decompression bomb"
                )
            infos[name] = i
        self.top, self.infos = _strip_top(infos)
        super().__init__({n: i.file_size for n, i in self.infos.items()})

    def open(self, name: str) -> IO[bytes]:
        return self.zip.open(self.infos[name])

    def _release(self) -> None:
        self.zip.close()


def open_source(path: Path) -> _Source:
    if not path.exists():
        raise UsageError(f"no such bundle: {path}")
    if path.is_dir():
        return _DirSource(path)
    if zipfile.is_zipfile(path):
        return _ZipSource(path)
    return _TarSource(path)


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


_ITEM_ID = re.compile(r"ITEM-[1-9][0-9]*")
_HEX_BYTES = re.compile(r"(?:[0-9a-f]{2})*")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_PAYLOAD = re.compile(r"data/ITEM-[1-9][0-9]*/[^/\\%\x00-\x1f\x7f]{1,200}")
_OUTCOMES = {"collected", "unstable", "unreadable", "vanished", "symlink", "special", "directory"}
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
        and isinstance(doc["proofs"], list)
        and all(
            isinstance(p, dict)
            and set(p) == {"seq", "proof"}
            and type(p["seq"]) is int
            and isinstance(p["proof"], list)
            and all(isinstance(h, str) and len(h) == 64 for h in p["proof"])
            for p in doc["proofs"]
        )
    )
    if not ok:
        raise HostileBundleError(
            "custody/proofs.json does not match its schema"
            " ({tree_size, proofs: [{seq, proof: [64-hex, ...]}]})"
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


# -- verification ---------------------------------------------------------------------


@dataclass
class BundleFinding:
    kind: str
    subject: str
    detail: str


@dataclass
class BundleReport:
    case_id: str = ""
    items: list[str] = field(default_factory=list)
    events: int = 0
    payload_files: int = 0
    findings: list[BundleFinding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timestamp: dict[str, str] | None = None  # the checkpoint's verified RFC 3161 time
    item_digests: dict[str, dict[str, str]] = field(default_factory=dict)  # as re-hashed
    # what was read, for callers that go on from a verification (reports); not output
    meta: dict[str, Any] = field(default_factory=dict)  # custody/bundle.json
    bodies: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)  # seq, hash
    checkpoint_text: str = ""
    checkpoint: tuple[int, bytes] | None = None  # (size, root) once its signature verified
    handovers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    trusted_keys: list[str] = field(default_factory=list)
    self_asserted_keys: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, kind: str, subject: str, detail: str) -> None:
        self.findings.append(BundleFinding(kind, subject, detail))

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "case": self.case_id,
            "items": self.items,
            "events": self.events,
            "payload_files": self.payload_files,
            "trusted_keys": self.trusted_keys,
            "self_asserted_keys": self.self_asserted_keys,
            "warnings": self.warnings,
            "timestamp": self.timestamp,
            "handovers": self.handovers,
            "findings": [f.__dict__ for f in self.findings],
        }


def _lines(text: str) -> list[str]:
    """Lines ended by LF (a CR before it dropped).  Not str.splitlines(): that also
    breaks at U+2028, U+2029, U+0085 and others, which names and reasons may hold."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _manifest(src: _Source, name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, line in enumerate(_lines(src.read(name).decode("utf-8", "replace")), 1):
        if not line.strip():
            continue
        digest, sep, path = line.partition(" ")
        path = path.lstrip(" *")
        if not sep or not path:
            raise HostileBundleError(f"{name} line {n} is malformed")
        why = path_is_dangerous(path)
        if why:
            raise HostileBundleError(f"{name} names an unsafe path {path!r}: {why}")
        out[path] = digest.lower()
    return out


def _check_bag(src: _Source, report: BundleReport) -> Callable[[], None]:
    """Check the bag's manifests and start hashing its payload; the returned
    function waits for the digests and reports every mismatch.  A folder's files
    are hashed by worker processes while the caller checks signatures (threads
    would fight the signature checks for the GIL); tar and zip readers are read one
    file at a time when the caller waits."""
    if "bagit.txt" not in src.sizes:
        raise HostileBundleError("not a BagIt bag: bagit.txt is missing")
    manifests = {}
    for alg in ("sha256", "sha512"):
        name = f"manifest-{alg}.txt"
        if name not in src.sizes:
            raise HostileBundleError(f"not a custody bundle: {name} is missing")
        manifests[alg] = _manifest(src, name)
    payload = {n for n in src.sizes if n.startswith("data/")}
    listed = set(manifests["sha256"]) | set(manifests["sha512"])
    for n in sorted(listed - payload):
        report.add("payload-missing", n, "listed in the manifest but absent from the bundle")
    for n in sorted(payload - listed):
        report.add("payload-extra", n, "present in the bundle but in no manifest")
    names = sorted(listed & payload)
    at = len(report.findings)  # payload findings go here, before the later steps' ones
    _check_tags(src, report)

    jobs = [(n, [a for a in manifests if n in manifests[a]]) for n in names]
    futures = _hash_in_processes(src, jobs)

    def finish() -> None:
        if futures is None:
            results = [_stream_digest(src, n, algs) for n, algs in jobs]
        else:
            results = [d for f in futures for d in f.result()]
        found = BundleReport()
        for n, got in zip(names, results, strict=True):
            src.digests[n] = got
            for a in manifests:
                if n in manifests[a] and got[a] != manifests[a][n]:
                    found.add(
                        "payload-digest", n, f"{a}: manifest says {manifests[a][n]}, found {got[a]}"
                    )
            report.payload_files += 1
        report.findings[at:at] = found.findings

    return finish


PARALLEL_MIN_BYTES = 64 << 20  # below this, starting worker processes costs more than it saves
_JOB_FILES = 64


def _hash_in_processes(
    src: _Source, jobs: list[tuple[str, list[str]]]
) -> list[Future[list[dict[str, str]]]] | None:
    """Start hashing a folder bag's payload in forked worker processes, or None when
    it is not a folder or too small to be worth it.  Forking happens before any
    thread of ours exists; the workers only read files."""
    if not isinstance(src, _DirSource) or (os.cpu_count() or 1) < 2:
        return None
    if sum(src.sizes[n] for n, _ in jobs) < PARALLEL_MIN_BYTES:
        return None
    pool = src.pool = ProcessPoolExecutor(
        max_workers=os.cpu_count(), mp_context=multiprocessing.get_context("fork")
    )
    src.on_close.append(lambda: pool.shutdown(cancel_futures=True))
    return [
        pool.submit(_hash_job, src.root, jobs[i : i + _JOB_FILES])
        for i in range(0, len(jobs), _JOB_FILES)
    ]


def _hash_job(root: Path, jobs: list[tuple[str, list[str]]]) -> list[dict[str, str]]:
    return [hash_file(root / n, algs).digests if algs else {} for n, algs in jobs]


_SIG_BATCH = 512


def _signatures_valid(src: _Source, checks: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """Ed25519 verdicts of (public key, signature, message) triples; on the bag's
    worker processes when it has them (a signature check holds the GIL)."""
    if src.pool is None or len(checks) < 2 * _SIG_BATCH:
        return _verify_batch(checks)
    pool = src.pool
    batches = [
        pool.submit(_verify_batch, checks[i : i + _SIG_BATCH])
        for i in range(0, len(checks), _SIG_BATCH)
    ]
    return [ok for f in batches for ok in f.result()]


def _verify_batch(checks: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
    return [verify_signature(k, sig, msg) for k, sig, msg in checks]


def _check_tags(src: _Source, report: BundleReport) -> None:
    if "tagmanifest-sha256.txt" not in src.sizes:
        report.add("tag-missing", "tagmanifest-sha256.txt", "the tag manifest is missing")
        return
    tags = _manifest(src, "tagmanifest-sha256.txt")
    for n, want in sorted(tags.items()):
        if n not in src.sizes:
            report.add("tag-missing", n, "listed in tagmanifest-sha256.txt but absent")
            continue
        found = hashlib.sha256(src.read(n)).hexdigest()
        if found != want:
            report.add("tag-digest", n, f"sha256: tag manifest says {want}, found {found}")
    for n in sorted(src.sizes):
        if not n.startswith("data/") and n != "tagmanifest-sha256.txt" and n not in tags:
            report.add("tag-extra", n, "a tag file no tag manifest covers")


def _stream_digest(src: _Source, name: str, algs: Sequence[str]) -> dict[str, str]:
    if not algs:
        return {}
    if isinstance(src, _DirSource):  # a real file: the threaded hasher of custody.hashing
        return hash_file(src.root / name, algs).digests
    hs = {a: hashlib.new(a) for a in algs}
    with src.open(name) as f:
        while chunk := f.read(CHUNK):
            for h in hs.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hs.items()}


def _trust_set(trust: Sequence[str]) -> set[str]:
    out = set()
    for t in trust:
        p = Path(t)
        if p.exists():
            out.add(fingerprint(load_public_key(p)))
        else:
            hexpart = t.strip().lower().removeprefix("sha256:")
            if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
                raise UsageError(f"--trust {t!r}: neither a public key file nor a fingerprint")
            out.add("sha256:" + hexpart)
    return out


def verify_bundle(
    path: Path,
    *,
    trust: Sequence[str] = (),
    require_trusted: bool = False,
    tsa_roots: Sequence[bytes] = (),
) -> BundleReport:
    """Verify a bundle offline; every problem is reported.  Raises
    HostileBundleError (exit 2) for what is not a bundle custody will read.
    ``tsa_roots`` (PEM) are the RFC 3161 authorities trusted for the checkpoint's
    time-stamp; without them a time-stamp present is reported as not checked."""
    trusted = _trust_set(trust)
    src = open_source(path)
    report = BundleReport()
    try:
        payload_checked = _check_bag(src, report)
        meta = _json(src, "custody/bundle.json")  # version and schema checked there
        keys_doc = _json(src, "custody/keys.json")
        proofs_doc = _json(src, "custody/proofs.json")
        case = meta.get("case") if isinstance(meta.get("case"), dict) else {}
        assert isinstance(case, dict)
        report.case_id = str(case.get("id", ""))
        items = meta.get("items") if isinstance(meta.get("items"), list) else []
        assert isinstance(items, list)
        report.items = [str(i.get("id")) for i in items if isinstance(i, dict)]
        report.meta = meta
        keys = _keys(keys_doc, report, trusted, require_trusted)
        events = _events(src, report, keys)
        report.bodies = [
            (e["seq"], str(e["hash"]), e["body"]) for e in events if isinstance(e["seq"], int)
        ]
        _check_checkpoint_and_proofs(src, proofs_doc, events, keys, report, trusted)
        payload_checked()
        _check_timestamp(src, meta, report, tsa_roots)
        _check_items(src, items, events, report)
        _check_disclosure(src, meta, items, events, report)
        _check_custody(events, report, str(case.get("id", "")))
    finally:
        src.close()
    return report


def _check_timestamp(
    src: _Source, meta: dict[str, Any], report: BundleReport, roots: Sequence[bytes]
) -> None:
    """The RFC 3161 token, if any, must cover custody/checkpoint.txt's exact bytes
    and chain to a trusted authority."""
    stated = meta.get("checkpoint_timestamp")
    present = TIMESTAMP_FILE in src.sizes
    if stated is None and not present:
        return
    if stated is None or not present:
        report.add(
            "timestamp",
            TIMESTAMP_FILE,
            "bundle.json and the bundle's files disagree on whether there is a time-stamp",
        )
        return
    if not roots:
        report.warnings.append(
            f"the checkpoint carries an RFC 3161 time-stamp from {stated.get('tsa')}, not"
            " checked: give --tsa-cert with the authority's root certificate"
        )
        return
    try:
        info = verify_token(src.read(TIMESTAMP_FILE), src.read("custody/checkpoint.txt"), roots)
    except TimestampError as e:
        report.add("timestamp", TIMESTAMP_FILE, e.message)
        return
    report.timestamp = {
        "time": info.gen_time.isoformat().replace("+00:00", "Z"),
        "tsa": info.tsa_name,
        "serial": str(info.serial),
    }


def _keys(
    doc: Any, report: BundleReport, trusted: set[str], require: bool
) -> dict[str, tuple[bytes, str, str]]:
    keys: dict[str, tuple[bytes, str, str]] = {}
    if not isinstance(doc, list):
        raise HostileBundleError("custody/keys.json is not a list of keys")
    for k in doc:
        if not isinstance(k, dict):
            raise HostileBundleError("custody/keys.json holds a non-object entry")
        try:
            pub = base64.b64decode(str(k.get("public_key", "")), validate=True)
        except (binascii.Error, ValueError):
            report.add("key", str(k.get("fingerprint")), "public key is not base64")
            continue
        fp = fingerprint(pub)
        if fp != k.get("fingerprint") or len(pub) != 32:
            report.add(
                "key", str(k.get("fingerprint")), f"fingerprint does not match its key ({fp})"
            )
            continue
        keys[fp] = (pub, str(k.get("name")), str(k.get("role")))
        who = f"{k.get('name')} ({k.get('role')}) {fp}"
        if fp in trusted:
            report.trusted_keys.append(who)
        else:
            report.self_asserted_keys.append(who)
            if require:
                report.add("untrusted-key", fp, f"{who} is only asserted by the bundle itself")
            else:
                report.warnings.append(
                    f"key of {who} is self-asserted: it came only with the bundle"
                )
    return keys


def _events(
    src: _Source, report: BundleReport, keys: dict[str, tuple[bytes, str, str]]
) -> list[dict[str, Any]]:
    if "custody/events.jsonl" not in src.sizes:
        raise HostileBundleError("not a custody bundle: custody/events.jsonl is missing")
    out = []
    checks: list[tuple[bytes, bytes, bytes]] = []  # signatures, checked together at the end
    signed: list[tuple[int, str]] = []
    try:
        text = src.read("custody/events.jsonl").decode("utf-8")
    except UnicodeDecodeError as e:
        raise HostileBundleError(f"custody/events.jsonl is not UTF-8: {e}") from e
    for n, line in enumerate(_lines(text), 1):
        try:
            row = parse_strict(line)
            _check_depth(row, "custody/events.jsonl")
            _event_line_shape(row, n)
            raw = row["body"].encode("utf-8")
            try:
                body, canonical = parse_canonical(raw), True
            except ValueError:  # say what is wrong with it, if it parses at all
                body, canonical = parse_strict(raw), False
        except RecursionError as e:
            raise HostileBundleError(f"custody/events.jsonl line {n} is nested too deep") from e
        except (ValueError, KeyError, TypeError, UnicodeEncodeError) as e:
            report.add("event", f"events.jsonl line {n}", f"not a valid event line: {e}")
            continue
        if not isinstance(body, dict) or not isinstance(row, dict):
            report.add("event", f"events.jsonl line {n}", "not a JSON object")
            continue
        subject = f"event {row.get('seq')}"
        if content_hash(raw) != row.get("hash"):
            report.add(
                "event-hash",
                subject,
                f"body hashes to {content_hash(raw)}, line says {row.get('hash')}",
            )
        if not canonical:
            report.add("event-body", subject, "body is not canonical JSON")
        if body.get("seq") != row.get("seq") or body.get("signer") != row.get("signer"):
            report.add("event-body", subject, "line's seq/signer differ from the signed body")
        key = keys.get(str(body.get("signer")))
        if key is None:
            report.add(
                "unknown-signer",
                subject,
                f"signed by {body.get('signer')}, a key the bundle does not carry",
            )
        else:
            try:
                sig = base64.b64decode(str(row.get("signature", "")), validate=True)
            except (binascii.Error, ValueError):
                sig = b""
            signed.append((len(report.findings), subject))  # where its finding belongs
            checks.append((key[0], sig, raw))
        out.append({"seq": row.get("seq"), "hash": row.get("hash"), "body": body, "raw": raw})
    verdicts = _signatures_valid(src, checks)
    bad = [place for place, ok in zip(signed, verdicts, strict=True) if not ok]
    for at, subject in reversed(bad):  # each in its event's place among the findings
        report.findings.insert(
            at, BundleFinding("signature", subject, "Ed25519 signature does not verify")
        )
    report.events = len(out)
    return out


def _check_checkpoint_and_proofs(
    src: _Source,
    doc: Any,
    events: list[dict[str, Any]],
    keys: dict[str, tuple[bytes, str, str]],
    report: BundleReport,
    trusted: set[str],
) -> None:
    if "custody/checkpoint.txt" not in src.sizes:
        raise HostileBundleError("not a custody bundle: custody/checkpoint.txt is missing")
    names = {fp: (n, r) for fp, (_, n, r) in keys.items()}
    vs = verifiers({fp: k[0] for fp, k in keys.items()}, names)
    try:
        report.checkpoint_text = src.read("custody/checkpoint.txt").decode("utf-8")
        cp = open_checkpoint_text(
            report.checkpoint_text, origin_of(report.case_id), vs, source="checkpoint"
        )
    except (CustodyError, UnicodeDecodeError) as e:
        report.add("checkpoint", "custody/checkpoint.txt", str(e))
        return
    report.checkpoint = (cp.size, cp.root)
    signers = {fp for fp, (_, n, _r) in keys.items() if note_key_name(n) in cp.signed_by}
    if trusted and not signers & trusted:
        report.add(
            "untrusted-checkpoint",
            "custody/checkpoint.txt",
            "the checkpoint is not signed by any key you trust: everything in the bundle"
            " hangs on it",
        )
    if not isinstance(doc, dict) or not isinstance(doc.get("proofs"), list):
        report.add("proof", "custody/proofs.json", "no list of proofs")
        return
    if doc.get("tree_size") != cp.size:
        report.add(
            "proof",
            "custody/proofs.json",
            f"proofs are for size {doc.get('tree_size')}, the checkpoint for {cp.size}",
        )
    by_seq = {p.get("seq"): p for p in doc["proofs"] if isinstance(p, dict)}
    for ev in events:
        subject = f"event {ev['seq']}"
        p = by_seq.get(ev["seq"])
        if p is None or not isinstance(ev["seq"], int):
            report.add("proof", subject, "no inclusion proof for this event")
            continue
        try:
            proof = [bytes.fromhex(h) for h in p.get("proof", [])]
            merkle.verify_inclusion(merkle.leaf_hash(ev["raw"]), ev["seq"], cp.size, proof, cp.root)
        except (ValueError, TypeError) as e:
            report.add("proof", subject, f"not in the checkpointed ledger: {e}")


def _check_disclosure(
    src: _Source,
    meta: dict[str, Any],
    items: list[Any],
    events: list[dict[str, Any]],
    report: BundleReport,
) -> None:
    """The exporter's signed export event says what the bundle discloses: every
    event it lists must be here (and nothing else), every item's bytes too."""
    counts = Counter(e["seq"] for e in events)
    for seq in sorted((s for s, n in counts.items() if n > 1), key=str):
        report.add("event-duplicate", f"event {seq}", "the bundle carries this event twice")
    export = next(
        (
            e
            for e in events
            if e["seq"] == meta.get("export_event") and e["body"].get("type") == EXPORT_EVENT
        ),
        None,
    )
    if export is None:
        report.add(
            "disclosure",
            "custody/bundle.json",
            f"the signed export event {meta.get('export_event')} is not in the bundle",
        )
        return
    data = export["body"].get("data", {})
    listed = {(d.get("seq"), d.get("hash")) for d in data.get("events", []) if isinstance(d, dict)}
    present = {(e["seq"], e["hash"]) for e in events if e is not export}
    for seq, h in sorted(listed - present, key=str):
        report.add(
            "event-withheld",
            f"event {seq}",
            f"listed by the export event ({h}) but missing from the bundle",
        )
    for seq, h in sorted(present - listed, key=str):
        report.add(
            "event-extra", f"event {seq}", f"in the bundle but not listed by the export event ({h})"
        )
    ids = [str(i.get("id")) for i in items if isinstance(i, dict)]
    if sorted(ids) != sorted(str(i) for i in data.get("items", [])):
        report.add(
            "disclosure",
            "custody/bundle.json",
            f"items {ids} differ from the export event's {data.get('items')}",
        )
    payload_of = {str(i.get("id")): i.get("payload") for i in items if isinstance(i, dict)}
    for item, sha in sorted((data.get("payload") or {}).items()):
        rel = payload_of.get(item)
        if not rel or rel not in src.sizes:
            report.add(
                "payload-withheld",
                item,
                f"the export event lists its bytes (sha256 {sha})"
                " but the bundle does not carry them",
            )
    expected = {p for p in payload_of.values() if p}
    for n in sorted(n for n in src.sizes if n.startswith("data/") and n not in expected):
        report.add("payload-extra", n, "a payload file that belongs to no exported item")


def _check_items(
    src: _Source, items: list[Any], events: list[dict[str, Any]], report: BundleReport
) -> None:
    collected = {
        str(ev["body"].get("data", {}).get("item")): ev["body"]["data"]
        for ev in events
        if ev["body"].get("type") == COLLECT_EVENT and isinstance(ev["body"].get("data"), dict)
    }
    for it in items:
        if not isinstance(it, dict):
            continue
        item = str(it.get("id"))
        data = collected.get(item)
        if data is None:
            report.add("item", item, "no signed collect event for this item in the bundle")
            continue
        rel = it.get("payload")
        if rel is None:
            continue
        if not isinstance(rel, str) or path_is_dangerous(rel) or not rel.startswith("data/"):
            raise HostileBundleError(f"bundle.json names an unsafe payload path {rel!r}")
        if rel not in src.sizes:
            report.add("payload-missing", rel, f"payload of {item} is absent")
            continue
        signed = data.get("digests") if isinstance(data.get("digests"), dict) else {}
        assert isinstance(signed, dict)
        # SHA-256 (and SHA-512 where recorded) bind the bytes to the signed event;
        # they were computed once for the manifests and are compared here
        want = {a: v for a, v in signed.items() if a in ("sha256", "sha512")}
        got = dict(src.digests.get(rel, {}))
        missing = sorted(set(want) - set(got))
        if missing:
            got.update(_stream_digest(src, rel, missing))
        report.item_digests[item] = {a: got[a] for a in sorted(want)}
        for a in sorted(want):
            if got[a] != want[a]:
                report.add(
                    "payload-digest", item, f"{a}: collected as {want[a]}, bundle holds {got[a]}"
                )


def _check_custody(events: list[dict[str, Any]], report: BundleReport, case_id: str) -> None:
    rows = [
        (
            int(e["seq"]),
            str(e["hash"]),
            str(e["body"].get("type")),
            str(e["body"].get("signer")),
            e["body"],
        )
        for e in events
        if isinstance(e["seq"], int)
    ]
    r = replay(sorted(rows), case_id)
    for kind, subject, detail in r.violations:
        if "not an item of this case" in detail:
            continue  # a hand-over that also moved items not disclosed here
        report.add(kind, subject, detail)
    for item in report.items:
        chain = []
        for t in sorted(r.transfers.values(), key=lambda t: t.seq):
            if item in t.items:
                chain.append(
                    {
                        "transfer": t.id,
                        "released_by": r.names.get(t.releaser, (t.releaser, ""))[0],
                        "received_by": r.names.get(t.receiver, (t.receiver, ""))[0]
                        if t.receipt is not None
                        else None,
                        "released": t.time,
                        "received": t.receipt_time,
                        "reason": t.reason,
                    }
                )
        report.handovers[item] = chain


# -- import ---------------------------------------------------------------------------

IMPORT_EVENT = "import"


@dataclass
class ImportResult:
    bundle: str
    already: bool
    items: list[dict[str, Any]]
    events: int
    event_seq: int | None


def import_bundle(ledger: Ledger, signer: Any, path: Path) -> ImportResult:
    """Verify, then merge a bundle: payload into the store (deduplicated), the
    collector's events byte for byte with their checkpoint and proofs, and an
    ``import`` event signed by the importer.  A bundle that fails verification is
    refused with nothing written; importing the same bundle again changes nothing."""
    report = verify_bundle(path)
    if not report.ok:
        first = report.findings[0]
        raise IntegrityError(
            f"bundle {path} failed verification ({len(report.findings)} problem(s), first:"
            f" [{first.kind}] {first.subject}: {first.detail}); nothing was imported"
        )
    ledger.require_writable()
    writers = WritersLock(ledger.store_dir)  # objects land before the event names them
    writers.acquire()
    writers.share()
    try:
        return _import_verified(ledger, signer, path)
    finally:
        writers.release()


def _import_verified(ledger: Ledger, signer: Any, path: Path) -> ImportResult:
    src = open_source(path)
    try:
        tagmanifest = src.read("tagmanifest-sha256.txt")
        bundle_id = content_hash(tagmanifest)
        if ledger.conn.execute(
            "SELECT 1 FROM imported_bundles WHERE bundle = ?", (bundle_id,)
        ).fetchone():
            return ImportResult(bundle_id, True, [], 0, None)
        meta = _json(src, "custody/bundle.json")
        keys = _json(src, "custody/keys.json")
        proofs = {p["seq"]: p["proof"] for p in _json(src, "custody/proofs.json")["proofs"]}
        checkpoint = src.read("custody/checkpoint.txt").decode("utf-8")
        lines = [parse_strict(x) for x in _lines(src.read("custody/events.jsonl").decode())]
        store = Store(ledger.store_dir, deferred_sync=True)
        items = []
        for it in meta["items"]:
            entry = {"source_item": it["id"], "path": it["path"], "sha256": it.get("sha256")}
            if it.get("payload"):
                with src.open(it["payload"]) as f:
                    stored = _ingest_stream(store, f)
                if stored.result.digests["sha256"] != it.get("sha256"):
                    raise IntegrityError(f"{it['payload']} changed while it was imported")
                entry["store"] = stored.relpath
            items.append(entry)
        store.sync()
    finally:
        src.close()

    def drafts() -> list[EventDraft]:
        return [
            EventDraft(
                IMPORT_EVENT,
                {
                    "bundle": bundle_id,
                    "source_case": meta["case"]["id"],
                    "checkpoint": checkpoint,
                    "events": len(lines),
                    "keys": sorted(k["fingerprint"] for k in keys),
                    "items": items,
                },
            )
        ]

    def record(ev: Event) -> None:
        ledger.conn.execute(
            "INSERT INTO imported_bundles (bundle, source_case, checkpoint, keys, items,"
            " import_seq) VALUES (?, ?, ?, ?, ?, ?)",
            (
                bundle_id,
                meta["case"]["id"],
                checkpoint,
                json.dumps(keys),
                json.dumps(items),
                ev.seq,
            ),
        )
        ledger.conn.executemany(
            "INSERT INTO imported_events (bundle, seq, hash, signer, body, signature, proof)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    bundle_id,
                    ln["seq"],
                    ln["hash"],
                    ln["signer"],
                    ln["body"],
                    ln["signature"],
                    json.dumps(proofs.get(ln["seq"], [])),
                )
                for ln in lines
            ],
        )

    events = ledger.append(signer, drafts, after=record)
    ev = next(e for e in events if e.type == IMPORT_EVENT)
    return ImportResult(bundle_id, False, items, len(lines), ev.seq)


def _ingest_stream(store: Store, f: IO[bytes]) -> Any:
    """Store a stream's bytes (a pipe-less copy through a temp file descriptor)."""
    with tempfile.TemporaryFile() as tmp:
        while chunk := f.read(CHUNK):
            tmp.write(chunk)
        tmp.flush()
        tmp.seek(0)
        return store.ingest(tmp.fileno(), ["md5", "sha1", "sha256"])
