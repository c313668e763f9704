"""Writing a bundle: the bag's files (payload, the disclosed signed events, a fresh
checkpoint and inclusion proofs, the signers' keys, the manifests), as a folder,
a tar (optionally gzip) or a zip."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from custody import __version__
from custody.bundle.archive import CHUNK
from custody.bundle.reexport import section_files, source_sections
from custody.bundle.shapes import (
    EXPORT_EVENT,
    SCHEMA_VERSION,
    TIMESTAMP_FILE,
    _payload_name,
    encode_manifest_path,
    export_time,
)
from custody.canonical import parse_strict
from custody.checkpoint import (
    checkpoint_origin,
    make_checkpoint,
    registered_name,
    timestamp_checkpoint,
)
from custody.errors import CustodyError, IntegrityError, UsageError
from custody.hashing import hash_fd
from custody.ledger import (
    COLLECT_EVENT,
    DESCRIBE_EVENT,
    IDENTITY_EVENT,
    KEY_REVOKE_EVENT,
    KEY_ROTATE_EVENT,
    OPEN_EVENT,
    Event,
    EventDraft,
    Ledger,
    artifact_index_row,
    event_items,
    identity_index_rows,
)
from custody.lifecycle import REASSIGN_EVENT, RECEIVE_EVENT, TRANSFER_EVENT, find_item
from custody.safeio import NotRegularFileError, open_beneath, open_regular
from custody.store import Store
from custody.trust import CONSISTENCY_FILE, consistency_doc

KEY_EVENTS = (OPEN_EVENT, IDENTITY_EVENT, KEY_ROTATE_EVENT, KEY_REVOKE_EVENT)


@dataclass
class ExportResult:
    out: Path
    items: list[str]
    events: int
    bytes: int
    checkpoint_size: int
    warnings: list[str] = field(default_factory=list)  # what the bundle reveals beyond items


def _signed(ledger: Ledger) -> list[tuple[Event, dict[str, Any]]]:
    """Every event of the case with its signed data, parsed from the body: what an
    export discloses, and what it says about items and keys, comes from these and
    never from the derived tables (event_items, artifacts, identities), which
    anyone holding the case file can edit without a key."""
    out = []
    for ev in ledger.events():
        try:
            body = parse_strict(ev.body)
        except ValueError as e:
            raise IntegrityError(
                f"event {ev.seq} is not valid JSON ({e}); run `custody verify`"
            ) from e
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(data, dict):
            raise IntegrityError(f"event {ev.seq} has no signed data; run `custody verify`")
        out.append((ev, {"type": body.get("type"), "signer": body.get("signer"), "data": data}))
    return out


def _disclosed(
    signed: list[tuple[Event, dict[str, Any]]],
    items: list[str],
    exporter: str,
    rules: int,
    imports: dict[int, list[str]] | None = None,
    heads: dict[int, list[str]] | None = None,
    objects: set[str] | None = None,
) -> tuple[list[Event], list[str]]:
    """What a bundle of ``items`` discloses (docs/bundle-format.md §6.1), by the
    events' signed data: the events about ``items`` and, of the key events, event 0
    and those about the keys the disclosed events need (their signers, the receivers
    they name, the exporter, under rules 2 the owner; then, until nothing is added,
    who registered, attested, rotated or revoked such a key).  No other event
    leaves: not another item's, not another key's identity or revocation.

    Also a warning per disclosed event that names other items: a transfer,
    receipt or lifecycle event written for several items at once, or an import
    event that brought in several items (``imports``: import seq -> the case ids
    of the items it brought in), which is signed whole and so disclosed whole.
    An import recorded by item (``heads``: the seq of its bundle-level first
    event -> the case ids of its items) discloses that first event, which names
    no item, with the events of the wanted items only.  Of the ``describe`` events
    typing a store object in ``objects`` (the exported items' sha256), the latest
    of each: it names that object only (ledger-format §6.6)."""
    wanted = set(items)
    about: set[int] = set()
    need = {exporter}
    warnings = []
    latest: dict[str, int] = {}
    for ev, b in signed:
        sha = b["data"].get("sha256") if b["type"] == DESCRIBE_EVENT else None
        if isinstance(sha, str) and sha in (objects or ()):
            latest[sha] = ev.seq
    described = set(latest.values())
    for ev, b in signed:
        data = b["data"]
        if ev.seq in described:
            about.add(ev.seq)
            need.add(str(b["signer"]))
            continue
        if wanted & set((heads or {}).get(ev.seq, [])):  # names none of the items
            about.add(ev.seq)
            need.add(str(b["signer"]))
            continue
        named = event_items(data.get("item"), data) + (imports or {}).get(ev.seq, [])
        # earlier exports name other items: they are not about these items' custody
        if b["type"] in KEY_EVENTS or b["type"] == EXPORT_EVENT or not wanted & set(named):
            continue
        about.add(ev.seq)
        need.add(str(b["signer"]))
        if b["type"] in (TRANSFER_EVENT, REASSIGN_EVENT):
            need.add(str(data.get("to")))
        others = [i for i in named if i not in wanted]
        if others:
            digests = " and their digests" if b["type"] in (TRANSFER_EVENT, RECEIVE_EVENT) else ""
            warnings.append(
                f"event {ev.seq} ({b['type']}) also names {', '.join(others)}{digests}: it was"
                " signed for several items at once, so it is disclosed whole"
            )
    keyed = [(ev, b) for ev, b in signed if b["type"] in KEY_EVENTS]
    if rules >= 2:
        for ev, b in keyed:
            if ev.seq == 0 and b["type"] == OPEN_EVENT:
                owner = b["data"].get("owner")
                if isinstance(owner, dict):
                    need.add(str(owner.get("fingerprint")))
    keys_in: set[int] = {0}
    grown = True
    while grown:
        grown = False
        for ev, b in keyed:
            if ev.seq in keys_in and ev.seq != 0:
                continue
            data = b["data"]
            if b["type"] == KEY_ROTATE_EVENT:
                concerns = {str(data.get("old")), str(data.get("new"))}
            elif b["type"] == OPEN_EVENT:
                concerns = set()
            else:  # identity, key.revoke
                concerns = {str(data.get("fingerprint"))}
            if ev.seq == 0 or concerns & need:
                before = len(need)
                need |= concerns | {str(b["signer"])}
                if ev.seq not in keys_in or len(need) != before:
                    grown = True
                keys_in.add(ev.seq)
    listed = [ev for ev, _ in signed if ev.seq in about or ev.seq in keys_in]
    return listed, warnings


def _artifacts(signed: list[tuple[Event, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each item as its signed collect event records it (artifact_index_row)."""
    return {
        str(b["data"].get("item")): artifact_index_row(ev.seq, b["data"])
        for ev, b in signed
        if b["type"] == COLLECT_EVENT
    }


def _identities(signed: list[tuple[Event, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each key as the first signed event registering it names it."""
    out: dict[str, dict[str, Any]] = {}
    for ev, b in signed:
        for row in identity_index_rows(ev.seq, str(b["type"]), b["data"]):
            out.setdefault(str(row["fingerprint"]), row)
    return out


def _info_value(text: str) -> str:
    """``text`` as one bag-info.txt value that a BagIt reader reads back exactly:
    each control or line-separator character (a title or name recorded before
    custody refused them; bagit.py splits lines where str.splitlines does) becomes a
    space, and white space at either end, which readers strip, is dropped."""
    return re.sub("[\x00-\x1f\x7f-\x9f\u2028\u2029]", " ", text).strip()


def _bag_files(
    ledger: Ledger, signer: Any, items: list[str], organization: str, tsa: str | None
) -> tuple[dict[str, bytes | Path], int, int, int, list[str]]:
    """Every file of the bag (tag bytes or payload path), payload bytes, files, cp
    size, and the warnings about what it discloses beyond the items."""
    store = Store(ledger.store_dir)
    checkpoint_origin(ledger.case.case_id)  # refused before anything is written
    ledger.ensure_registered(signer)
    signed = _signed(ledger)
    artifacts = _artifacts(signed)
    stored = {
        str(b["data"].get("item")): b["data"].get("store")
        for _, b in signed
        if b["type"] == COLLECT_EVENT
    }
    r = ledger.rules().current()
    imported = [i for i in items if i not in artifacts]
    own = [i for i in items if i in artifacts]
    imports: dict[int, list[str]] = {}  # whole-bundle import events
    heads: dict[int, list[str]] = {}  # imports recorded by item
    for i, st in r.items.items():
        if st.source is not None and st.imported_at is not None:
            group = imports if st.import_entry is None else heads
            group.setdefault(st.imported_at, []).append(i)
    objects = {str(artifacts[i]["sha256"]) for i in own if artifacts[i]["sha256"]}
    objects |= {
        str(r.items[i].digests.get("sha256")) for i in imported if r.items[i].stored
    }  # their types (describe events) travel with them
    listed, warnings = _disclosed(
        signed, items, signer.fingerprint, ledger.case.rules, imports, heads, objects
    )
    # each object at the path its signed event records (either layout: names_object)
    objs = {
        i: store.locate(str(artifacts[i]["sha256"]), stored.get(i))
        for i in own
        if artifacts[i]["sha256"]
    }
    for item, obj in objs.items():  # a store object that is no regular file: refused
        _check_object(store, obj, item)
    sections, more = source_sections(ledger, r, imported, _disclosed)
    warnings += more
    # the exporter signs what the bundle discloses, so nothing can be left out later
    export_ev = next(
        e
        for e in ledger.append(
            signer,
            [
                EventDraft(
                    EXPORT_EVENT,
                    {
                        "items": own,
                        "payload": {
                            i: artifacts[i]["sha256"] for i in own if artifacts[i]["sha256"]
                        },
                        "events": [{"seq": e.seq, "hash": e.hash} for e in listed],
                        "rules": ledger.case.rules,
                        **(
                            {"sources": [sec.signed_entry() for sec in sections]}
                            if sections
                            else {}
                        ),
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
    for sec in sections:
        more_files, nb, nf = section_files(sec, lambda rel: store.path_of(rel))
        files.update(more_files)
        payload_bytes += nb
        payload_files += nf
    for item in own:
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
            files[rel] = store.path_of(objs[item])
            entry["payload"] = rel
            entry["name_mapped"] = mapped
            payload_bytes += int(a["size"] or 0)
            payload_files += 1
        meta_items.append(entry)
    idents = _identities(signed)  # the export and checkpoint events register no key
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
        "exported": export_time(export_ev.time),
        "exported_by": signer.fingerprint,
        "items": meta_items,
        "checkpoint_event": cp_event.seq,
        "export_event": export_ev.seq,
        "rules": ledger.case.rules,
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
    earlier = [int(b["data"].get("size", 0)) for _, b in signed if b["type"] == "checkpoint"]
    files[CONSISTENCY_FILE] = (
        json.dumps(consistency_doc(tree, earlier, size), indent=2) + "\n"
    ).encode()  # the importer's pin (custody.trust)
    files["bagit.txt"] = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    info = [
        ("Source-Organization", _info_value(organization)),
        ("Contact-Name", _info_value(registered_name(ledger, signer))),
        ("External-Identifier", _info_value(ledger.case.case_id)),
        ("Bagging-Date", datetime.now(tz=UTC).strftime("%Y-%m-%d")),
        ("Payload-Oxum", f"{payload_bytes}.{payload_files}"),
        ("Custody-Schema-Version", str(SCHEMA_VERSION)),
        ("Custody-Case-Title", _info_value(ledger.case.title)),
        ("Custody-Items", " ".join(items)),
        ("Custody-Checkpoint-Size", str(size)),
    ]
    files["bag-info.txt"] = "".join(f"{k}: {v}\n" for k, v in info).encode()
    return files, payload_bytes, payload_files, size, warnings


def _check_object(store: Store, obj: str, item: str) -> None:
    """A store object an export carries must be a regular file reached through no
    link (else exit 1: ``custody verify`` reports it as object-not-regular)."""
    try:
        fd, _ = open_beneath(store.root, obj)
    except NotRegularFileError as e:
        raise IntegrityError(
            f"store object of {item} ({obj}) is {e.what}, not a regular file; run 'custody verify'"
        ) from None
    except FileNotFoundError:
        return  # reported where it is read, as before
    os.close(fd)


def _open_payload(src: Path) -> BinaryIO:
    """A store object, opened without following a link or blocking on a FIFO."""
    fd, _ = open_regular(src)
    return os.fdopen(fd, "rb")


def _digest(src: bytes | Path, algs: Sequence[str]) -> dict[str, str]:
    if isinstance(src, bytes):
        return {a: hashlib.new(a, src).hexdigest() for a in algs}
    with _open_payload(src) as f:
        return hash_fd(f.fileno(), algs).digests


@dataclass
class BagContents:
    """Every file of a bundle: tag files as bytes, payload files as store paths."""

    files: dict[str, bytes | Path]
    chosen: list[str]
    nbytes: int
    size: int
    warnings: list[str]

    @property
    def events(self) -> int:
        blob = self.files["custody/events.jsonl"]
        return blob.count(b"\n") if isinstance(blob, bytes) else 0


def bag_contents(
    ledger: Ledger,
    signer: Any,
    items: Sequence[str],
    *,
    organization: str = "custody",
    tsa: str | None = None,
) -> BagContents:
    """Sign the export of ``items`` (all items if empty) and return the bundle's
    files without writing them (``vault push`` uploads only the tag files)."""
    known = list(_artifacts(_signed(ledger)))
    r = ledger.rules().current()
    chosen = []
    for raw in items:
        i = raw.strip().upper()
        if i not in known:
            found = find_item(r, raw)
            if found is None or r.items[found].source is None:
                raise UsageError(f"no such item: {i}")
            i = found
        chosen.append(i)
    chosen = chosen or known
    chosen = list(dict.fromkeys(chosen))
    files, nbytes, _, size, warnings = _bag_files(ledger, signer, chosen, organization, tsa)
    payload = {n: s for n, s in files.items() if n.startswith("data/")}
    digests = {n: _digest(s, ("sha256", "sha512")) for n, s in payload.items()}
    for alg in ("sha256", "sha512"):
        files[f"manifest-{alg}.txt"] = "".join(
            f"{digests[n][alg]}  {encode_manifest_path(n)}\n" for n in sorted(payload)
        ).encode()
    tags = sorted(n for n in files if not n.startswith("data/"))
    files["tagmanifest-sha256.txt"] = "".join(
        f"{_digest(files[n], ('sha256',))['sha256']}  {encode_manifest_path(n)}\n" for n in tags
    ).encode()
    return BagContents(files, chosen, nbytes, size, warnings)


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
    _check_out(out)  # before anything is signed
    bag = bag_contents(ledger, signer, items, organization=organization, tsa=tsa)
    _write(bag.files, out)
    return ExportResult(out, bag.chosen, bag.events, bag.nbytes, bag.size, bag.warnings)


#: the archive suffixes ``--out`` may end in (any case: ``.TAR.GZ`` is ``.tar.gz``)
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
#: a suffix that names some file format (1-5 letters and digits, a letter among
#: them): an archive custody does not write (``.7z``, ``.tar.xz``, ``.rar``) must
#: not silently become a folder; ``case-2026.017`` is a folder
_FORMAT_SUFFIX = re.compile(r"\.(?=[0-9]*[A-Za-z])[A-Za-z0-9]{1,5}\Z")


def archive_kind(out: Path) -> str | None:
    """The archive suffix ``out`` ends in (lower case), or None for a folder."""
    name = out.name.lower()
    return next((s for s in ARCHIVE_SUFFIXES if name.endswith(s)), None)


def _check_out(out: Path) -> None:
    """Refuse (exit 2), before anything is signed: an existing ``out`` (even a
    dangling link), a folder that does not exist to hold it, a suffix naming a
    format custody does not write."""
    if os.path.lexists(out):
        raise UsageError(f"{out} already exists; refusing to overwrite")
    parent = out.parent
    if not parent.is_dir():
        raise UsageError(f"cannot write bundle {out}: folder {parent} does not exist")
    if archive_kind(out) is None and _FORMAT_SUFFIX.search(out.name):
        raise UsageError(
            f"{out}: unknown bundle suffix; --out is a new folder (a name without a"
            f" suffix) or a file ending in {', '.join(sorted(ARCHIVE_SUFFIXES))}"
        )


#: modes of everything a bundle export writes: the payload is evidence, the tag
#: files name and describe it; both are for the recipient alone until they share them
FILE_MODE = 0o600
DIR_MODE = 0o700


def _create(path: Path) -> BinaryIO:
    """A new file (never an existing one), mode exactly 0600 whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb")


def _dirs_of(names: Sequence[str]) -> list[str]:
    """Every directory the bundle's files lie in ("data" always), parents first."""
    dirs = {"data"}
    for n in names:
        parts = n.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(dirs, key=lambda d: (d.count("/"), d))


def _write(files: dict[str, bytes | Path], out: Path) -> None:
    """Write the bundle: files 0600 and directories 0700, in a folder as inside a
    tar or zip archive, whose own file is 0600."""
    name = out.name
    top = name.split(".")[0] or "bundle"
    dirs = _dirs_of(list(files))
    kind = archive_kind(out)
    try:
        if kind is not None:  # written aside, then linked to its new name: never partial
            tmp = out.parent / f".{name}.custody-{os.urandom(6).hex()}.tmp"
            try:
                with _create(tmp) as fo:
                    if kind == ".zip":
                        _write_zip(fo, top, dirs, files)
                    else:
                        _write_tar(fo, "w:gz" if kind.endswith("gz") else "w", top, dirs, files)
                    fo.flush()
                    os.fsync(fo.fileno())
                try:
                    os.link(tmp, out, follow_symlinks=False)
                except FileExistsError:
                    raise UsageError(f"{out} already exists; refusing to overwrite") from None
            finally:
                tmp.unlink(missing_ok=True)
        else:
            out.mkdir(DIR_MODE)
            for d in ["", *dirs]:  # BagIt needs data/ even with no payload
                (out / d).mkdir(DIR_MODE, exist_ok=d == "")
                os.chmod(out / d, DIR_MODE)
            for n in sorted(files):
                src = files[n]
                with _create(out / n) as fo:
                    if isinstance(src, bytes):
                        fo.write(src)
                    else:
                        with _open_payload(src) as fi:
                            while chunk := fi.read(CHUNK):
                                fo.write(chunk)
    except OSError as e:
        raise CustodyError(f"cannot write bundle {out}: {e.strerror or e}") from e


def _write_tar(
    fo: BinaryIO, mode: str, top: str, dirs: list[str], files: dict[str, bytes | Path]
) -> None:
    now = int(datetime.now(tz=UTC).timestamp())
    with tarfile.open(fileobj=fo, mode=mode) as tar:  # type: ignore[call-overload]
        for d in ["", *dirs]:
            info = tarfile.TarInfo(f"{top}/{d}".rstrip("/"))
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, DIR_MODE, now
            tar.addfile(info)
        for n in sorted(files):
            _tar_add(tar, f"{top}/{n}", files[n], now)


def _write_zip(fo: BinaryIO, top: str, dirs: list[str], files: dict[str, bytes | Path]) -> None:
    when = datetime.now(tz=UTC).timetuple()[:6]
    with zipfile.ZipFile(fo, "w", zipfile.ZIP_DEFLATED) as z:
        for d in ["", *dirs]:
            info = zipfile.ZipInfo(f"{top}/{d}".rstrip("/") + "/", when)
            info.create_system = 3  # Unix: external_attr holds st_mode
            info.external_attr = (stat.S_IFDIR | DIR_MODE) << 16 | 0x10  # 0x10: MS-DOS directory
            z.writestr(info, b"")
        for n in sorted(files):
            src = files[n]
            if isinstance(src, bytes):
                info = zipfile.ZipInfo(f"{top}/{n}", when)
            else:
                info = zipfile.ZipInfo.from_file(src, f"{top}/{n}")
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | FILE_MODE) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            if isinstance(src, bytes):
                z.writestr(info, src)
            else:
                with _open_payload(src) as fi, z.open(info, "w") as zo:
                    while chunk := fi.read(CHUNK):
                        zo.write(chunk)


def _tar_add(tar: tarfile.TarFile, arcname: str, src: bytes | Path, now: int) -> None:
    if isinstance(src, bytes):
        info = tarfile.TarInfo(arcname)
        info.size = len(src)
        info.mode = FILE_MODE
        info.mtime = now
        tar.addfile(info, io.BytesIO(src))
    else:
        info = tar.gettarinfo(str(src), arcname)
        info.mode = FILE_MODE
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        with _open_payload(src) as f:
            tar.addfile(info, f)
