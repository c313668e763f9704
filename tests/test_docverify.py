"""Issue 13's "Done when": a verifier written from docs/bundle-format.md alone
(tests/docverify.py) agrees with ``custody bundle verify`` on every tampered bundle.

Bundles: test_bundle.py's case (its module-scoped ``template``: the folder bundle
``all``, its tar, tar.gz and zip), test_bundle_trust.py's rules 2 world, and that
module's rotated-owner case.  Each case applies one tamper the bundle tests apply
(imported where they are module-level: remanifest, retag, write_events,
forge_with_keys, reforge, _forge_header, build_tar/build_zip), plus edge cases of the
format's own rules, and asserts that both reach the same verdict (exit 0, 1 or 2)
and the same (kind, subject) findings, leaving out the kinds of the two steps
docverify skips (step 9, the custody replay; step 10, the time-stamp).  docverify
implements the page as written: where it agrees with custody, it is because the
page says exactly what custody does.  ``test_the_documented_verdict`` pins the
verdict the page gives for the cases it had to decide (issue 13's "Done when").
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docverify
import pytest
from conftest import PASSPHRASE, Run
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tampering import read_events, retag, write_events
from test_bundle import (
    CASE_ID,
    REASON,
    b64,
    forge_with_keys,
    raw_public,
    remanifest,
    seq_of,
    template,  # noqa: F401 -- the module-scoped fixture, reused
    writable,
)
from test_bundle_hostile import TOP, build_tar, build_zip, member
from test_bundle_trust import (  # noqa: F401
    World,
    evidence,
    forge_attested_by_a_self_asserted_key,
    person,
    reforge,
    world,
)
from test_signed_fields import _forge_header

from custody import note
from custody.bundle import export_bundle
from custody.canonical import canonical_json, content_hash
from custody.checkpoint import origin_of
from custody.collect import collect
from custody.keys import fingerprint, load_signer
from custody.ledger import Ledger
from custody.writers import lifecycle_event, rotate_key

# the kinds of the custody replay (step 9) and time-stamp (step 10): docverify skips both
SKIPPED_KINDS = {
    "identity",
    "rotation",
    "revocation",
    "revoked-key",
    "transfer",
    "receipt",
    "receipt-mismatch",
    "lifecycle",
    "authority",
    "name",
    "timestamp",
}

Tamper = Callable[[Path, dict[str, Any]], "tuple[str, ...] | None"]


def _edit_json(bag: Path, name: str, change: Callable[[Any], None]) -> None:
    p = bag / "custody" / name
    doc = json.loads(p.read_text())
    change(doc)
    p.write_text(json.dumps(doc, indent=2) + "\n")


def _edit_row(bag: Path, seq: int, change: Callable[[dict[str, Any]], None]) -> None:
    rows = read_events(bag)
    for r in rows:
        if r["seq"] == seq:
            change(r)
    write_events(bag, rows)


def _dana(bag: Path) -> Any:
    return load_signer(bag.parent.parent / "dana.pem", PASSPHRASE.encode())


# -- the tampers --------------------------------------------------------------------------


def genuine(bag: Path, t: dict[str, Any]) -> None:
    pass


def payload_bit_flipped(bag: Path, t: dict[str, Any]) -> None:
    f = writable(bag / "data" / "ITEM-2" / "payroll.csv")
    data = bytearray(f.read_bytes())
    data[20] ^= 0x01
    f.write_bytes(bytes(data))


def payload_replaced_remanifested(bag: Path, t: dict[str, Any]) -> None:
    writable(bag / "data" / "ITEM-1" / "exhibit-1.log").write_bytes(b"nothing to see here\n")
    remanifest(bag)


def payload_removed(bag: Path, t: dict[str, Any]) -> None:
    (bag / "data" / "ITEM-2" / "payroll.csv").unlink()


def payload_removed_remanifested(bag: Path, t: dict[str, Any]) -> None:
    (bag / "data" / "ITEM-2" / "payroll.csv").unlink()
    remanifest(bag)


def payload_removed_and_unlisted(bag: Path, t: dict[str, Any]) -> None:
    (bag / "data" / "ITEM-2" / "payroll.csv").unlink()

    def change(doc: Any) -> None:
        for it in doc["items"]:
            if it["id"] == "ITEM-2":
                for f in ("payload", "name_mapped"):
                    it.pop(f, None)

    _edit_json(bag, "bundle.json", change)
    remanifest(bag)


def payload_added(bag: Path, t: dict[str, Any]) -> None:
    (bag / "data" / "extra.txt").write_bytes(b"planted\n")


def payload_added_remanifested(bag: Path, t: dict[str, Any]) -> None:
    (bag / "data" / "extra.txt").write_bytes(b"planted\n")
    remanifest(bag)


def tag_file_edited(bag: Path, t: dict[str, Any]) -> None:
    p = bag / "bag-info.txt"
    p.write_text(p.read_text().replace("Acme Forensics", "Evil Corp"))


def tag_file_edited_retagged(bag: Path, t: dict[str, Any]) -> None:
    tag_file_edited(bag, t)
    retag(bag)


def tagmanifest_removed(bag: Path, t: dict[str, Any]) -> None:
    (bag / "tagmanifest-sha256.txt").unlink()


def event_edited(bag: Path, t: dict[str, Any]) -> None:
    def change(r: dict[str, Any]) -> None:
        r["body"] = r["body"].replace(REASON, "routine archiving")

    _edit_row(bag, seq_of(bag, "transfer"), change)


def event_edited_rehashed(bag: Path, t: dict[str, Any]) -> None:
    def change(r: dict[str, Any]) -> None:
        r["body"] = r["body"].replace(REASON, "routine archiving")
        r["hash"] = content_hash(r["body"].encode())

    _edit_row(bag, seq_of(bag, "transfer"), change)
    retag(bag)


def event_resigned_by_real_key(bag: Path, t: dict[str, Any]) -> None:
    dana = _dana(bag)

    def change(r: dict[str, Any]) -> None:
        r["body"] = r["body"].replace(REASON, "routine archiving")
        r["hash"] = content_hash(r["body"].encode())
        r["signature"] = b64(dana.sign(r["body"].encode()))

    _edit_row(bag, seq_of(bag, "transfer"), change)
    retag(bag)


def event_noncanonical(bag: Path, t: dict[str, Any]) -> None:
    def change(r: dict[str, Any]) -> None:
        r["body"] = json.dumps(json.loads(r["body"]), indent=1)
        r["hash"] = content_hash(r["body"].encode())

    _edit_row(bag, seq_of(bag, "collect", "ITEM-3"), change)
    retag(bag)


def signature_replaced(bag: Path, t: dict[str, Any]) -> None:
    rows = read_events(bag)
    a, b = rows[1], rows[2]
    a["signature"] = b["signature"]
    write_events(bag, rows)
    retag(bag)


def event_removed(bag: Path, t: dict[str, Any]) -> None:
    seq = seq_of(bag, "receive")
    write_events(bag, [r for r in read_events(bag) if r["seq"] != seq])


def _remove_retag(type_: str, item: str | None = None) -> Callable[[Path, dict[str, Any]], None]:
    def tamper(bag: Path, t: dict[str, Any]) -> None:
        seq = seq_of(bag, type_, item)
        write_events(bag, [r for r in read_events(bag) if r["seq"] != seq])
        retag(bag)

    tamper.__name__ = f"{type_.replace('.', '_')}_removed_retagged"
    return tamper


def handover_removed_with_proofs(bag: Path, t: dict[str, Any]) -> None:
    gone = {seq_of(bag, "transfer"), seq_of(bag, "receive")}
    write_events(bag, [r for r in read_events(bag) if r["seq"] not in gone])
    _edit_json(
        bag,
        "proofs.json",
        lambda d: d.update(proofs=[p for p in d["proofs"] if p["seq"] not in gone]),
    )
    retag(bag)


def event_duplicated(bag: Path, t: dict[str, Any]) -> None:
    seq = seq_of(bag, "collect", "ITEM-3")
    rows = read_events(bag)
    write_events(bag, rows + [r for r in rows if r["seq"] == seq])
    retag(bag)


def event_line_not_json(bag: Path, t: dict[str, Any]) -> None:
    p = bag / "custody" / "events.jsonl"
    p.write_text(p.read_text() + "not json\n")
    retag(bag)


def item_dropped_from_bundle_json(bag: Path, t: dict[str, Any]) -> None:
    _edit_json(bag, "bundle.json", lambda d: d.update(items=d["items"][:2]))
    shutil.rmtree(bag / "data" / "ITEM-3")
    remanifest(bag)


def checkpoint_edited(bag: Path, t: dict[str, Any]) -> None:
    cp = bag / "custody" / "checkpoint.txt"
    lines = cp.read_text().split("\n")
    lines[1] = str(int(lines[1]) + 1)
    cp.write_text("\n".join(lines))


def checkpoint_edited_retagged(bag: Path, t: dict[str, Any]) -> None:
    checkpoint_edited(bag, t)
    retag(bag)


def checkpoint_resigned_over_another_root(bag: Path, t: dict[str, Any]) -> None:
    dana = _dana(bag)
    size = json.loads((bag / "custody" / "proofs.json").read_text())["tree_size"]
    text = note.format_checkpoint(note.Checkpoint(origin_of(CASE_ID), size, bytes(32), []))
    (bag / "custody" / "checkpoint.txt").write_text(
        note.sign_note(text, "dana-reyes", dana.sign, dana.identity.public_raw)
    )
    retag(bag)


def checkpoint_resigned_by_another_key(bag: Path, t: dict[str, Any]) -> None:
    other = Ed25519PrivateKey.generate()
    cp = bag / "custody" / "checkpoint.txt"
    text = cp.read_text().split("\n\n")[0] + "\n"
    cp.write_text(note.sign_note(text, "dana-reyes", other.sign, raw_public(other)))
    retag(bag)


def proof_edited(bag: Path, t: dict[str, Any]) -> None:
    def change(d: Any) -> None:
        h = d["proofs"][3]["proof"][0]
        d["proofs"][3]["proof"][0] = ("0" if h[0] != "0" else "1") + h[1:]

    _edit_json(bag, "proofs.json", change)
    retag(bag)


def proofs_tree_size_edited(bag: Path, t: dict[str, Any]) -> None:
    _edit_json(bag, "proofs.json", lambda d: d.update(tree_size=d["tree_size"] + 1))
    retag(bag)


def _bundle_json(*keys: str | int, value: Any) -> Callable[[Path, dict[str, Any]], None]:
    def tamper(bag: Path, t: dict[str, Any]) -> None:
        def change(doc: Any) -> None:
            for k in keys[:-1]:
                doc = doc[k]
            doc[keys[-1]] = value

        _edit_json(bag, "bundle.json", change)
        retag(bag)

    tamper.__name__ = "bundle_json_" + "_".join(str(k) for k in keys)
    return tamper


def header_edited(bag: Path, t: dict[str, Any]) -> None:
    def change(doc: Any) -> None:
        h = json.loads(doc["case"]["header"])
        h["title"] = "Another title"
        doc["case"]["header"] = json.dumps(h, sort_keys=True, separators=(",", ":"))

    _edit_json(bag, "bundle.json", change)
    retag(bag)


def schema_version_edited(bag: Path, t: dict[str, Any]) -> None:
    _bundle_json("schema_version", value=2)(bag, t)


def keys_name_edited(bag: Path, t: dict[str, Any]) -> None:
    _edit_json(bag, "keys.json", lambda d: d[0].update(name="Someone Else"))
    retag(bag)


def keys_role_edited(bag: Path, t: dict[str, Any]) -> None:
    _edit_json(bag, "keys.json", lambda d: d[0].update(role="judge"))
    retag(bag)


def public_key_swapped(bag: Path, t: dict[str, Any]) -> None:
    dana = t["keys"]["Dana Reyes"]
    other = Ed25519PrivateKey.generate()

    def change(keys: Any) -> None:
        for k in keys:
            if k["fingerprint"] == dana:
                k["public_key"] = b64(raw_public(other))
                k["fingerprint"] = fingerprint(raw_public(other))

    _edit_json(bag, "keys.json", change)
    retag(bag)


def public_key_garbled(bag: Path, t: dict[str, Any]) -> None:
    _edit_json(bag, "keys.json", lambda d: d[0].update(public_key="!!not base64!!"))
    retag(bag)


def unused_key_added(bag: Path, t: dict[str, Any]) -> None:
    other = raw_public(Ed25519PrivateKey.generate())
    entry = {
        "fingerprint": fingerprint(other),
        "name": "Mallory",
        "role": "collector",
        "public_key": b64(other),
    }
    _edit_json(bag, "keys.json", lambda d: d.append(entry))
    retag(bag)


def forged_with_other_keys(bag: Path, t: dict[str, Any]) -> None:
    keys = json.loads((bag / "custody" / "keys.json").read_text())
    forge_with_keys(bag, {k["fingerprint"]: Ed25519PrivateKey.generate() for k in keys})


def symlink_planted(bag: Path, t: dict[str, Any]) -> None:
    (bag / "data" / "link").symlink_to("/etc/passwd")


def duplicate_json_key(bag: Path, t: dict[str, Any]) -> None:
    p = bag / "custody" / "keys.json"
    text = p.read_text()
    p.write_text(text.replace('"name":', '"name": "x", "name":', 1))
    retag(bag)


def manifest_line_malformed(bag: Path, t: dict[str, Any]) -> None:
    p = bag / "manifest-sha256.txt"
    p.write_text(p.read_text() + "garbage\n")


def payload_path_escapes(bag: Path, t: dict[str, Any]) -> None:
    _bundle_json("items", 0, "payload", value="../etc/passwd")(bag, t)


def checkpoint_by_a_namesake(bag: Path, t: dict[str, Any]) -> None:
    """test_bundle_trust's namesake: a new key called Dana Reyes, added to keys.json,
    signs the checkpoint in place of Dana."""
    mallory = Ed25519PrivateKey.generate()
    entry = {
        "fingerprint": fingerprint(raw_public(mallory)),
        "name": "Dana Reyes",
        "role": "collector",
        "public_key": b64(raw_public(mallory)),
    }
    _edit_json(
        bag, "keys.json", lambda d: (d.append(entry), d.sort(key=lambda k: k["fingerprint"]))
    )
    cp = bag / "custody" / "checkpoint.txt"
    text = cp.read_text().split("\n\n")[0] + "\n"
    cp.write_text(note.sign_note(text, "dana-reyes", mallory.sign, raw_public(mallory)))
    retag(bag)


def forged_header(bag: Path, t: dict[str, Any]) -> None:
    _edit_json(bag, "bundle.json", _forge_header)
    retag(bag)


def lee_name_edited(bag: Path, t: dict[str, Any]) -> None:
    lee = t["keys"]["Lee Okafor"]

    def change(doc: Any) -> None:
        next(k for k in doc if k["fingerprint"] == lee)["name"] = "Mallory Forged"

    _edit_json(bag, "keys.json", change)
    retag(bag)


def hard_link(bag: Path, t: dict[str, Any]) -> None:
    os.link(bag / "bagit.txt", bag / "data" / "hard")


def fifo(bag: Path, t: dict[str, Any]) -> None:
    os.mkfifo(bag / "data" / "pipe")


def json_absurdly_deep(bag: Path, t: dict[str, Any]) -> None:
    _bundle_json("tool", value=json.loads("[" * 70 + "]" * 70))(bag, t)


def events_not_utf8(bag: Path, t: dict[str, Any]) -> None:
    p = bag / "custody" / "events.jsonl"
    p.write_bytes(p.read_bytes() + b"\xff\xfe\n")
    retag(bag)


def manifest_unsafe_path(bag: Path, t: dict[str, Any]) -> None:
    p = bag / "manifest-sha256.txt"
    p.write_text(p.read_text() + "0" * 64 + "  ../outside\n")


def events_file_removed(bag: Path, t: dict[str, Any]) -> None:
    (bag / "custody" / "events.jsonl").unlink()
    retag(bag)


def bagit_removed(bag: Path, t: dict[str, Any]) -> None:
    (bag / "bagit.txt").unlink()


def manifest_uppercase_star_blank(bag: Path, t: dict[str, Any]) -> None:
    """§4 reading rules: digests compared case-insensitively, a leading * dropped,
    blank lines ignored."""
    p = bag / "manifest-sha256.txt"
    lines = p.read_text().splitlines()
    digest, name = lines[0].split("  ", 1)
    lines[0] = f"{digest.upper()} *{name}"
    p.write_text("\n".join(lines) + "\n\n")
    retag(bag)


def bagit_txt_altered_retagged(bag: Path, t: dict[str, Any]) -> None:
    (bag / "bagit.txt").write_text("BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n")
    retag(bag)


def bag_info_removed(bag: Path, t: dict[str, Any]) -> None:
    (bag / "bag-info.txt").unlink()


def sha512_manifest_removed(bag: Path, t: dict[str, Any]) -> None:
    (bag / "manifest-sha512.txt").unlink()
    retag(bag)


def _resign(bag: Path, seq: int, change: Callable[[dict[str, Any]], None]) -> None:
    """Edit event ``seq``'s parsed body and re-sign it canonically with Dana's key."""
    dana = _dana(bag)

    def edit(r: dict[str, Any]) -> None:
        body = json.loads(r["body"])
        change(body)
        r["body"] = canonical_json(body).decode()
        r["hash"] = content_hash(r["body"].encode())
        r["signature"] = b64(dana.sign(r["body"].encode()))
        r["seq"] = body.get("seq", r["seq"])

    _edit_row(bag, seq, edit)
    retag(bag)


def event_of_another_case(bag: Path, t: dict[str, Any]) -> None:
    _resign(bag, seq_of(bag, "collect", "ITEM-3"), lambda b: b.update(case="OTHER-1"))


def event_seq_mismatch(bag: Path, t: dict[str, Any]) -> None:
    def change(r: dict[str, Any]) -> None:
        r["seq"] = r["seq"] + 100

    _edit_row(bag, seq_of(bag, "collect", "ITEM-3"), change)
    retag(bag)


def event_body_not_an_object(bag: Path, t: dict[str, Any]) -> None:
    def change(r: dict[str, Any]) -> None:
        r["body"] = "[1]"
        r["hash"] = content_hash(b"[1]")

    _edit_row(bag, seq_of(bag, "collect", "ITEM-3"), change)
    retag(bag)


def event_body_not_json(bag: Path, t: dict[str, Any]) -> None:
    def change(r: dict[str, Any]) -> None:
        r["body"] = "{not json}"
        r["hash"] = content_hash(b"{not json}")

    _edit_row(bag, seq_of(bag, "collect", "ITEM-3"), change)
    retag(bag)


def event_line_without_hash(bag: Path, t: dict[str, Any]) -> None:
    _edit_row(bag, seq_of(bag, "collect", "ITEM-3"), lambda r: r.pop("hash"))
    retag(bag)


def event_line_with_extra_field(bag: Path, t: dict[str, Any]) -> None:
    _edit_row(bag, seq_of(bag, "collect", "ITEM-3"), lambda r: r.update(note="hi"))
    retag(bag)


def event_line_duplicate_key(bag: Path, t: dict[str, Any]) -> None:
    p = bag / "custody" / "events.jsonl"
    lines = p.read_text().splitlines()
    lines[1] = lines[1].replace('{"body":', '{"body": "x", "body":', 1)
    p.write_text("\n".join(lines) + "\n")
    retag(bag)


def event_line_signature_short(bag: Path, t: dict[str, Any]) -> None:
    _edit_row(bag, seq_of(bag, "collect", "ITEM-3"), lambda r: r.update(signature="AAAA"))
    retag(bag)


def event_line_hash_not_a_hash(bag: Path, t: dict[str, Any]) -> None:
    _edit_row(bag, seq_of(bag, "collect", "ITEM-3"), lambda r: r.update(hash="md5:1"))
    retag(bag)


def event_line_absurdly_deep(bag: Path, t: dict[str, Any]) -> None:
    p = bag / "custody" / "events.jsonl"
    p.write_text(p.read_text() + "[" * 100 + "]" * 100 + "\n")
    retag(bag)


def event_body_absurdly_deep(bag: Path, t: dict[str, Any]) -> None:
    body = '{"a":' + "[" * 100 + "]" * 100 + "}"

    def change(r: dict[str, Any]) -> None:
        r.update(body=body, hash=content_hash(body.encode()))

    _edit_row(bag, seq_of(bag, "collect", "ITEM-3"), change)
    retag(bag)


def event_line_keys_reordered(bag: Path, t: dict[str, Any]) -> None:
    """§6.2: a line's whitespace (and key order) is not significant."""
    p = bag / "custody" / "events.jsonl"
    rows = read_events(bag)
    p.write_text("".join(json.dumps(dict(reversed(r.items())), indent=None) + "\n" for r in rows))
    retag(bag)


def checkpoint_extra_signature_unknown_key(bag: Path, t: dict[str, Any]) -> None:
    other = Ed25519PrivateKey.generate()
    cp = bag / "custody" / "checkpoint.txt"
    text = cp.read_text()
    signed = note.sign_note(text.split("\n\n")[0] + "\n", "stranger", other.sign, raw_public(other))
    cp.write_text(text + signed.split("\n\n", 1)[1])
    retag(bag)


def checkpoint_extension_line(bag: Path, t: dict[str, Any]) -> None:
    """C2SP allows extension lines; a bundle's checkpoint has exactly three (§7 step 2)."""
    dana = _dana(bag)
    cp = bag / "custody" / "checkpoint.txt"
    text = cp.read_text().split("\n\n")[0] + "\nextension line\n"
    cp.write_text(note.sign_note(text, "dana-reyes", dana.sign, dana.identity.public_raw))
    retag(bag)


def proof_with_a_trailing_hash(bag: Path, t: dict[str, Any]) -> None:
    _edit_json(bag, "proofs.json", lambda d: d["proofs"][0]["proof"].append("00" * 32))
    retag(bag)


def proofs_reordered(bag: Path, t: dict[str, Any]) -> None:
    """§8: one entry per line "in the same order"."""
    _edit_json(bag, "proofs.json", lambda d: d["proofs"].reverse())
    retag(bag)


def keys_entry_duplicated(bag: Path, t: dict[str, Any]) -> None:
    _edit_json(bag, "keys.json", lambda d: d.append(dict(d[0])))
    retag(bag)


def bundle_json_rules_edited(bag: Path, t: dict[str, Any]) -> None:
    _bundle_json("rules", value=1)(bag, t)


def export_event_seq_edited(bag: Path, t: dict[str, Any]) -> None:
    _bundle_json("export_event", value=0)(bag, t)


def checkpoint_signature_flipped(bag: Path, t: dict[str, Any]) -> None:
    """The right key name and key id, a bad signature: the note is rejected."""
    cp = bag / "custody" / "checkpoint.txt"
    text, sig = cp.read_text().split("\n\n")
    dash, name, blob = sig.rstrip("\n").split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[10] ^= 1
    cp.write_text(f"{text}\n\n{dash} {name} {b64(bytes(raw))}\n")
    retag(bag)


def checkpoint_with_101_signature_lines(bag: Path, t: dict[str, Any]) -> None:
    cp = bag / "custody" / "checkpoint.txt"
    text = cp.read_text()
    other = Ed25519PrivateKey.generate()
    extra = note.sign_note(text.split("\n\n")[0] + "\n", "x", other.sign, raw_public(other))
    cp.write_text(text + extra.split("\n\n", 1)[1] * 100)
    retag(bag)


def items_reordered(bag: Path, t: dict[str, Any]) -> None:
    _edit_json(bag, "bundle.json", lambda d: d["items"].reverse())
    retag(bag)


def item_listed_twice(bag: Path, t: dict[str, Any]) -> None:
    _edit_json(bag, "bundle.json", lambda d: d["items"].append(d["items"][0]))
    retag(bag)


def bundle_json_extra_field(bag: Path, t: dict[str, Any]) -> None:
    _bundle_json("comment", value="planted")(bag, t)


def bundle_json_export_event_removed(bag: Path, t: dict[str, Any]) -> None:
    _edit_json(bag, "bundle.json", lambda d: d.pop("export_event"))
    retag(bag)


def proofs_json_extra_field(bag: Path, t: dict[str, Any]) -> None:
    _edit_json(bag, "proofs.json", lambda d: d.update(comment="planted"))
    retag(bag)


def proofs_json_without_proofs(bag: Path, t: dict[str, Any]) -> None:
    """The schema makes it exit 2 (§10 step 2), not a `proof` finding."""
    _edit_json(bag, "proofs.json", lambda d: d.pop("proofs"))
    retag(bag)


def keys_json_extra_field(bag: Path, t: dict[str, Any]) -> None:
    _edit_json(bag, "keys.json", lambda d: d[0].update(comment="planted"))
    retag(bag)


def extra_tag_file(bag: Path, t: dict[str, Any]) -> None:
    (bag / "custody" / "notes.txt").write_text("planted\n")


def extra_tag_file_retagged(bag: Path, t: dict[str, Any]) -> None:
    extra_tag_file(bag, t)
    retag(bag)


def tag_manifest_lists_a_payload(bag: Path, t: dict[str, Any]) -> None:
    p = bag / "tagmanifest-sha256.txt"
    f = "data/ITEM-2/payroll.csv"
    digest = hashlib.sha256((bag / f).read_bytes()).hexdigest()
    p.write_text(p.read_text() + f"{digest}  {f}\n")


def event_beyond_the_checkpoint(bag: Path, t: dict[str, Any]) -> None:
    def change(d: Any) -> None:
        for p in d["proofs"]:
            if p["seq"] == 0:
                p["seq"] = 10_000

    rows = read_events(bag)
    rows[0]["seq"] = 10_000
    write_events(bag, rows)
    _edit_json(bag, "proofs.json", change)
    retag(bag)


def checkpoint_size_not_canonical(bag: Path, t: dict[str, Any]) -> None:
    dana = _dana(bag)
    cp = bag / "custody" / "checkpoint.txt"
    lines = cp.read_text().split("\n\n")[0].split("\n")
    lines[1] = "0" + lines[1]
    text = "\n".join(lines) + "\n"
    cp.write_text(note.sign_note(text, "dana-reyes", dana.sign, dana.identity.public_raw))
    retag(bag)


def proofs_uppercase_hex(bag: Path, t: dict[str, Any]) -> None:
    def change(d: Any) -> None:
        d["proofs"][0]["proof"] = [h.upper() for h in d["proofs"][0]["proof"]]

    _edit_json(bag, "proofs.json", change)
    retag(bag)


def signature_unpadded(bag: Path, t: dict[str, Any]) -> None:
    _edit_row(bag, 0, lambda r: r.update(signature=r["signature"].rstrip("=")))
    retag(bag)


def payload_pointed_at_another_item(bag: Path, t: dict[str, Any]) -> None:
    def change(d: Any) -> None:
        d["items"][0]["payload"] = d["items"][1]["payload"]

    _edit_json(bag, "bundle.json", change)
    retag(bag)


def payload_renamed_everywhere(bag: Path, t: dict[str, Any]) -> None:
    src = bag / "data" / "ITEM-1" / "exhibit-1.log"
    src.rename(bag / "data" / "ITEM-1" / "renamed.log")

    def change(d: Any) -> None:
        d["items"][0]["payload"] = "data/ITEM-1/renamed.log"

    _edit_json(bag, "bundle.json", change)
    remanifest(bag)


def manifests_crlf(bag: Path, t: dict[str, Any]) -> None:
    for n in ("manifest-sha256.txt", "manifest-sha512.txt"):
        p = bag / n
        p.write_bytes(p.read_bytes().replace(b"\n", b"\r\n"))
    retag(bag)


def manifest_single_space(bag: Path, t: dict[str, Any]) -> None:
    p = bag / "manifest-sha256.txt"
    p.write_text(p.read_text().replace("  ", " "))
    retag(bag)


def folder_one_level_down(bag: Path, t: dict[str, Any]) -> None:
    """§1's root rule applied to a folder: the bag inside a folder of its own."""
    tmp = bag.parent / "tmp-move"
    bag.rename(tmp)
    bag.mkdir()
    tmp.rename(bag / "inner")


def _export_seq(bag: Path) -> int:
    return seq_of(bag, "export")


def export_payload_not_an_object(bag: Path, t: dict[str, Any]) -> None:
    """Signed data of the wrong type (a key holder can sign anything): it lists no
    payload (§12), never an internal error."""
    _resign(bag, _export_seq(bag), lambda b: b["data"].update(payload=["ITEM-1"]))


def export_events_entry_malformed(bag: Path, t: dict[str, Any]) -> None:
    def change(b: dict[str, Any]) -> None:
        b["data"]["events"][1] = {"seq": [1], "hash": {"x": 1}}

    _resign(bag, _export_seq(bag), change)


def export_data_not_an_object(bag: Path, t: dict[str, Any]) -> None:
    """No signed export event (§12): `disclosure`, and custody rules 1."""
    _resign(bag, _export_seq(bag), lambda b: b.update(data=["ITEM-1"]))


def export_items_and_rules_of_other_types(bag: Path, t: dict[str, Any]) -> None:
    _resign(bag, _export_seq(bag), lambda b: b["data"].update(items="ITEM-1", rules=[2]))


def events_blank_line(bag: Path, t: dict[str, Any]) -> None:
    """§6.2: an empty line is not skipped; it is a line that is not JSON."""
    p = bag / "custody" / "events.jsonl"
    lines = p.read_text().split("\n")
    lines.insert(1, "")
    p.write_text("\n".join(lines))
    retag(bag)


def events_crlf(bag: Path, t: dict[str, Any]) -> None:
    p = bag / "custody" / "events.jsonl"
    p.write_bytes(p.read_bytes().replace(b"\n", b"\r\n"))
    retag(bag)


def event_line_an_array(bag: Path, t: dict[str, Any]) -> None:
    p = bag / "custody" / "events.jsonl"
    p.write_text(p.read_text() + "[1, 2]\n")
    retag(bag)


def manifest_not_utf8(bag: Path, t: dict[str, Any]) -> None:
    p = bag / "manifest-sha256.txt"
    p.write_bytes(p.read_bytes() + b"00  data/caf\xe9.txt\n")
    retag(bag)


def proofs_negative_seq(bag: Path, t: dict[str, Any]) -> None:
    _edit_json(bag, "proofs.json", lambda d: d["proofs"][0].update(seq=-1))
    retag(bag)


TAMPERS: list[Any] = [
    genuine,
    payload_bit_flipped,
    payload_replaced_remanifested,
    payload_removed,
    payload_removed_remanifested,
    payload_removed_and_unlisted,
    payload_added,
    payload_added_remanifested,
    tag_file_edited,
    tag_file_edited_retagged,
    tagmanifest_removed,
    event_edited,
    event_edited_rehashed,
    event_resigned_by_real_key,
    event_noncanonical,
    signature_replaced,
    event_removed,
    _remove_retag("collect", "ITEM-3"),
    _remove_retag("transfer"),
    _remove_retag("receive"),
    _remove_retag("export"),
    _remove_retag("case.open"),
    handover_removed_with_proofs,
    event_duplicated,
    event_line_not_json,
    item_dropped_from_bundle_json,
    checkpoint_edited,
    checkpoint_edited_retagged,
    checkpoint_resigned_over_another_root,
    checkpoint_resigned_by_another_key,
    proof_edited,
    proofs_tree_size_edited,
    _bundle_json("case", "title", value="Another title"),
    _bundle_json("case", "id", value="2026-999"),
    _bundle_json("case", "header_hash", value="sha256:" + "0" * 64),
    header_edited,
    _bundle_json("exported_by", value="sha256:" + "1" * 64),
    _bundle_json("exported", value="2020-01-01T00:00:00Z"),
    _bundle_json("checkpoint_event", value=1),
    _bundle_json("items", 0, "path", value="/tmp/other.log"),
    _bundle_json("items", 0, "path_hex", value="2f746d70"),
    _bundle_json("items", 0, "sha256", value="0" * 64),
    _bundle_json("items", 0, "size", value=1),
    _bundle_json("items", 0, "outcome", value="unstable"),
    _bundle_json("items", 1, "name_mapped", value=True),
    schema_version_edited,
    keys_name_edited,
    keys_role_edited,
    public_key_swapped,
    public_key_garbled,
    unused_key_added,
    forged_with_other_keys,
    symlink_planted,
    duplicate_json_key,
    manifest_line_malformed,
    payload_path_escapes,
    checkpoint_by_a_namesake,
    forged_header,
    lee_name_edited,
    hard_link,
    fifo,
    json_absurdly_deep,
    events_not_utf8,
    manifest_unsafe_path,
    events_file_removed,
    bagit_removed,
    _bundle_json("schema_version", value="1"),
    _bundle_json("schema_version", value=None),
    _bundle_json("items", value={"ITEM-1": {}}),
    manifest_uppercase_star_blank,
    bagit_txt_altered_retagged,
    bag_info_removed,
    sha512_manifest_removed,
    event_of_another_case,
    event_seq_mismatch,
    event_body_not_an_object,
    event_line_keys_reordered,
    event_line_absurdly_deep,
    event_body_absurdly_deep,
    event_line_duplicate_key,
    event_line_signature_short,
    event_line_hash_not_a_hash,
    event_body_not_json,
    event_line_without_hash,
    event_line_with_extra_field,
    checkpoint_extra_signature_unknown_key,
    checkpoint_extension_line,
    proof_with_a_trailing_hash,
    proofs_reordered,
    keys_entry_duplicated,
    bundle_json_rules_edited,
    export_event_seq_edited,
    folder_one_level_down,
    checkpoint_size_not_canonical,
    proofs_uppercase_hex,
    signature_unpadded,
    payload_pointed_at_another_item,
    payload_renamed_everywhere,
    manifests_crlf,
    manifest_single_space,
    checkpoint_signature_flipped,
    checkpoint_with_101_signature_lines,
    items_reordered,
    bundle_json_extra_field,
    bundle_json_export_event_removed,
    proofs_json_extra_field,
    keys_json_extra_field,
    proofs_json_without_proofs,
    item_listed_twice,
    extra_tag_file,
    extra_tag_file_retagged,
    tag_manifest_lists_a_payload,
    event_beyond_the_checkpoint,
    export_payload_not_an_object,
    export_events_entry_malformed,
    export_data_not_an_object,
    export_items_and_rules_of_other_types,
    events_blank_line,
    events_crlf,
    event_line_an_array,
    manifest_not_utf8,
    proofs_negative_seq,
]


def custody_verdict(run: Run, bag: Path, *flags: str) -> tuple[int, set[tuple[str, str]]]:
    """The verdict docverify must reach: custody's exit code and (kind, subject)
    findings, without the kinds of the steps docverify skips.  Where custody fails a
    bundle only on such a kind (a custody replay violation), docverify's expected
    verdict is 0: that is its documented limitation, not an agreement."""
    proc = run("bundle", "verify", bag, "--json", *flags)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1, 2), (proc.returncode, proc.stderr)
    if proc.returncode == 2:
        return 2, set()
    found = json.loads(proc.stdout)["findings"]
    kept = {(f["kind"], f["subject"]) for f in found if f["kind"] not in SKIPPED_KINDS}
    return (1 if kept else 0), kept


@pytest.fixture
def bag(template: dict[str, Any], tmp_path: Path) -> Path:  # noqa: F811
    root: Path = template["root"]
    shutil.copytree(root / "bundles" / "all", tmp_path / "bundles" / "all", symlinks=True)
    shutil.copy2(root / "dana.pem", tmp_path / "dana.pem")
    return tmp_path / "bundles" / "all"


@pytest.mark.parametrize("tamper", TAMPERS, ids=lambda f: f.__name__)
def test_docverify_agrees_with_custody(
    tamper: Any,
    bag: Path,
    run: Run,
    template: dict[str, Any],  # noqa: F811
) -> None:
    tamper(bag, template)
    want_rc, want_kinds = custody_verdict(run, bag)
    got_rc, got = docverify.verify(bag)
    assert (got_rc, set(got)) == (want_rc, want_kinds)


@pytest.mark.parametrize("anchor", ["Dana Reyes", "Lee Okafor"])
@pytest.mark.parametrize("tamper", TAMPERS, ids=lambda f: f.__name__)
def test_docverify_agrees_with_custody_under_trust(
    tamper: Any,
    anchor: str,
    bag: Path,
    run: Run,
    template: dict[str, Any],  # noqa: F811
) -> None:
    """With one key as the trust anchor: Dana, the case's owner (so Lee, whom she
    attested, is trusted too), or Lee, who vouches only for himself."""
    fp = template["keys"][anchor]
    tamper(bag, template)
    want_rc, want_kinds = custody_verdict(run, bag, "--trust", fp)
    got_rc, got = docverify.verify(bag, (fp,))
    assert (got_rc, set(got)) == (want_rc, want_kinds)


CP = ("checkpoint", "custody/checkpoint.txt")
META = ("disclosure", "custody/bundle.json")
# (tamper, exit code, findings as a function of some seqs of the bundle, exactly or among)
DOCUMENTED: list[tuple[Any, int, Callable[[dict[str, int]], set[tuple[str, str]]], bool]] = [
    (items_reordered, 1, lambda s: {META}, True),  # §12: compared as lists
    (checkpoint_extension_line, 1, lambda s: {CP}, True),  # §7 step 2
    (payload_removed_and_unlisted, 2, lambda s: set(), True),  # §5: the schema
    (proofs_json_without_proofs, 2, lambda s: set(), True),  # §10 step 2, not step 6
    (proofs_uppercase_hex, 2, lambda s: set(), True),  # §8: the schema
    (proofs_negative_seq, 2, lambda s: set(), True),
    (manifest_not_utf8, 2, lambda s: set(), True),  # §4
    (event_line_an_array, 2, lambda s: set(), True),  # §10 step 4.2
    (folder_one_level_down, 2, lambda s: set(), True),  # §1: a folder is its own root
    (events_blank_line, 1, lambda s: {("event", "events.jsonl line 2")}, True),  # §6.2
    (event_line_duplicate_key, 1, lambda s: {("event", "events.jsonl line 2")}, False),  # 4.1
    (events_crlf, 0, lambda s: set(), True),  # §6.2
    (manifests_crlf, 0, lambda s: set(), True),  # §4
    (bundle_json_rules_edited, 1, lambda s: {META}, True),  # §12
    # an edited line is both withheld and extra (§12)
    (
        event_edited_rehashed,
        1,
        lambda s: {
            ("event-withheld", f"event {s['transfer']}"),
            ("event-extra", f"event {s['transfer']}"),
        },
        False,
    ),
    # a body that is no object: `event-body` for its seq (§10 step 4.4), not `event`
    (event_body_not_an_object, 1, lambda s: {("event-body", f"event {s['collect3']}")}, False),
    # signed data of the wrong type: findings, never exit 3 (§12)
    (export_payload_not_an_object, 1, lambda s: {("proof", f"event {s['export']}")}, True),
    (
        export_events_entry_malformed,
        1,
        lambda s: {("proof", f"event {s['export']}"), ("event-extra", f"event {s['listed1']}")},
        True,
    ),
    (export_data_not_an_object, 1, lambda s: {META, ("proof", f"event {s['export']}")}, True),
    (
        export_items_and_rules_of_other_types,
        1,
        lambda s: {META, ("proof", f"event {s['export']}")},
        True,
    ),
]


@pytest.mark.parametrize(
    ("tamper", "rc", "want", "exact"), DOCUMENTED, ids=[d[0].__name__ for d in DOCUMENTED]
)
def test_the_documented_verdict(
    tamper: Any,
    rc: int,
    want: Callable[[dict[str, int]], set[tuple[str, str]]],
    exact: bool,
    bag: Path,
    run: Run,
    template: dict[str, Any],  # noqa: F811
) -> None:
    """The verdicts bundle-format.md decides where it used to be silent or to
    contradict itself; custody and docverify both give them."""
    export = seq_of(bag, "export")
    (export_body,) = [json.loads(r["body"]) for r in read_events(bag) if r["seq"] == export]
    seqs = {
        "export": export,
        "collect3": seq_of(bag, "collect", "ITEM-3"),
        "transfer": seq_of(bag, "transfer"),
        "listed1": export_body["data"]["events"][1]["seq"],
    }
    tamper(bag, template)
    for got_rc, got in (custody_verdict(run, bag), docverify.verify(bag)):
        assert got_rc == rc
        if exact:
            assert set(got) == want(seqs)
        else:
            assert want(seqs) <= set(got)


# -- archives: the exported tar, tar.gz and zip, and hand-built hostile ones ----------------


def exported(name: str) -> Callable[[Path, Path, dict[str, Any]], Path]:
    def make(good: Path, d: Path, t: dict[str, Any]) -> Path:
        return Path(shutil.copy2(t["root"] / "bundles" / name, d / name))

    make.__name__ = "exported_" + name.replace(".", "_")
    return make


def tar_payload_flipped(good: Path, d: Path, t: dict[str, Any]) -> Path:
    path = exported("all.tar")(good, d, t)
    raw = bytearray(path.read_bytes())
    at = raw.find(t["files"][0].read_bytes())
    raw[at + 5] ^= 0x20
    path.write_bytes(bytes(raw))
    return path


def tar_with(*extra: Any, mode: str = "w", name: str = "h.tar") -> Any:
    def make(good: Path, d: Path, t: dict[str, Any]) -> Path:
        return build_tar(d / name, good, list(extra), mode=mode)

    return make


def zip_with(*extra: tuple[zipfile.ZipInfo, bytes]) -> Any:
    def make(good: Path, d: Path, t: dict[str, Any]) -> Path:
        return build_zip(d / "h.zip", good, list(extra))

    return make


def zip_entry(name: str, mode: int) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (mode | 0o644) << 16
    return info, b"x"


def tar_at_top_level(good: Path, d: Path, t: dict[str, Any]) -> Path:
    path = d / "flat.tar"
    with tarfile.open(path, "w") as tar:
        for p in sorted(good.rglob("*")):
            if p.is_file():
                data = p.read_bytes()
                info, _ = member(p.relative_to(good).as_posix(), data)
                tar.addfile(info, io.BytesIO(data))
    return path


def tar_with_two_tops(good: Path, d: Path, t: dict[str, Any]) -> Path:
    return tar_with(member("other/readme.txt", b"hi\n"))(good, d, t)


def not_an_archive(good: Path, d: Path, t: dict[str, Any]) -> Path:
    (d / "x.bin").write_bytes(b"just some bytes\n" * 10)
    return d / "x.bin"


ARCHIVES: list[tuple[str, Any]] = [
    ("exported_tar", exported("all.tar")),
    ("exported_tar_gz", exported("all.tar.gz")),
    ("exported_zip", exported("all.zip")),
    ("tar_payload_flipped", tar_payload_flipped),
    ("handbuilt_tar", tar_with()),
    ("handbuilt_tar_bz2", tar_with(mode="w:bz2", name="h.tar.bz2")),
    ("handbuilt_tar_xz", tar_with(mode="w:xz", name="h.tar.xz")),
    ("handbuilt_zip", zip_with()),
    ("tar_at_top_level", tar_at_top_level),
    ("tar_with_two_tops", tar_with_two_tops),
    ("tar_dotdot", tar_with(member(f"{TOP}/data/../../evil.txt", b"owned\n"))),
    ("tar_absolute", tar_with(member("/tmp/evil.txt", b"owned\n"))),
    ("tar_backslash", tar_with(member(f"{TOP}/data\\..\\evil.txt", b"owned\n"))),
    ("tar_empty_component", tar_with(member(f"{TOP}//data/evil.txt", b"owned\n"))),
    ("tar_symlink", tar_with(member(f"{TOP}/data/l", type_=tarfile.SYMTYPE, linkname="/etc"))),
    (
        "tar_hard_link",
        tar_with(member(f"{TOP}/data/h", type_=tarfile.LNKTYPE, linkname=f"{TOP}/bagit.txt")),
    ),
    ("tar_fifo", tar_with(member(f"{TOP}/data/p", type_=tarfile.FIFOTYPE))),
    ("tar_chr", tar_with(member(f"{TOP}/data/c", type_=tarfile.CHRTYPE))),
    ("tar_duplicate", tar_with(member(f"{TOP}/bagit.txt", b"BagIt-Version: 1.0\n"))),
    ("tar_extra_payload", tar_with(member(f"{TOP}/data/planted.txt", b"planted\n"))),
    ("zip_symlink", zip_with(zip_entry(f"{TOP}/data/l", stat.S_IFLNK))),
    ("zip_fifo", zip_with(zip_entry(f"{TOP}/data/p", stat.S_IFIFO))),
    ("zip_dotdot", zip_with(zip_entry(f"{TOP}/../evil.txt", stat.S_IFREG))),
    ("zip_extra_payload", zip_with(zip_entry(f"{TOP}/data/planted.txt", stat.S_IFREG))),
    ("not_an_archive", not_an_archive),
    # §11: an empty or "." last component of a file's name
    ("tar_dot_last", tar_with(member(f"{TOP}/data/ITEM-1/.", b"x\n"))),
    ("tar_slash_last", tar_with(member(f"{TOP}/data/ITEM-1/", b"x\n"))),
    # §11: a zip directory entry's mode is not looked at; a file entry's is
    ("zip_dir_with_link_mode", zip_with(zip_entry(f"{TOP}/data/d/", stat.S_IFLNK))),
    ("zip_dir_entry", zip_with(zip_entry(f"{TOP}/data/d/", stat.S_IFDIR))),
    ("zip_file_no_mode", zip_with(zip_entry(f"{TOP}/data/planted.txt", 0))),
    # §1: only regular files locate the root; a directory elsewhere does not move it
    ("tar_other_empty_dir", tar_with(member("other", type_=tarfile.DIRTYPE))),
    ("tar_extra_dir_inside", tar_with(member(f"{TOP}/data/sub", type_=tarfile.DIRTYPE))),
]


@pytest.mark.parametrize("make", [a[1] for a in ARCHIVES], ids=[a[0] for a in ARCHIVES])
def test_docverify_agrees_with_custody_on_archives(
    make: Any,
    bag: Path,
    run: Run,
    tmp_path: Path,
    template: dict[str, Any],  # noqa: F811
) -> None:
    (tmp_path / "archives").mkdir()
    path = make(bag, tmp_path / "archives", template)
    want_rc, want = custody_verdict(run, path)
    got_rc, got = docverify.verify(path)
    assert (got_rc, set(got)) == (want_rc, want)


# -- trust: test_bundle_trust's world (a rules 2 case made through the library) ----------


def trust_genuine(bag: Path, w: World) -> None:
    pass


def trust_namesake_resigns_everything(bag: Path, w: World) -> None:
    """A new key carrying Dana's name re-signs every event and the checkpoint; Dana's
    real public key is added to keys.json beside it."""
    dana, lee = w.dana, w.lee
    mallory, lee2 = person("Dana Reyes", "collector"), person("Lee Okafor", "counsel")
    reforge(
        bag,
        {mallory.fp: mallory.key, lee2.fp: lee2.key},
        checkpoint=("Dana Reyes", mallory.key),
        keys=[mallory.entry(), lee2.entry(), dana.entry()],
        swap={
            dana.fp: mallory.fp,
            dana.entry()["public_key"]: mallory.entry()["public_key"],
            lee.fp: lee2.fp,
            lee.entry()["public_key"]: lee2.entry()["public_key"],
        },
    )


def trust_namesake_signs_the_checkpoint(bag: Path, w: World) -> None:
    mallory = person("Dana Reyes", "collector")
    reforge(
        bag,
        {w.dana.fp: w.dana.key, w.lee.fp: w.lee.key},
        checkpoint=("Dana Reyes", mallory.key),
        keys=[w.dana.entry(), w.lee.entry(), mallory.entry()],
    )


def trust_unused_key(bag: Path, w: World) -> None:
    eve = person("Eve Marsh", "analyst")
    _edit_json(bag, "keys.json", lambda d: d.append(eve.entry()))
    retag(bag)


def trust_attested_by_a_self_asserted_key(bag: Path, w: World) -> None:
    forge_attested_by_a_self_asserted_key(bag, w)


def trust_rules_1(bag: Path, w: World) -> None:
    reforge(
        bag,
        {w.dana.fp: w.dana.key, w.lee.fp: w.lee.key},
        checkpoint=("Dana Reyes", w.dana.key),
        keys=[w.dana.entry(), w.lee.entry()],
        rules=1,
    )


def trust_export_event_pointed_elsewhere(bag: Path, w: World) -> None:
    """bundle.json's export_event names another event: there is no signed export
    event, so the bundle is judged by rules 1, not by bundle.json's "rules": 2."""
    _edit_json(bag, "bundle.json", lambda d: d.update(export_event=0))
    retag(bag)


TRUST_TAMPERS = [
    trust_genuine,
    trust_namesake_resigns_everything,
    trust_namesake_signs_the_checkpoint,
    trust_unused_key,
    trust_attested_by_a_self_asserted_key,
    trust_rules_1,
    trust_export_event_pointed_elsewhere,
]


@pytest.mark.parametrize("anchor", ["dana", "lee", "none", "required"])
@pytest.mark.parametrize("tamper", TRUST_TAMPERS, ids=lambda f: f.__name__)
def test_docverify_agrees_with_custody_on_trust(
    tamper: Any,
    anchor: str,
    world: World,  # noqa: F811
    run: Run,
    tmp_path: Path,
) -> None:
    bag = Path(shutil.copytree(world.bundle, tmp_path / "bag"))
    tamper(bag, world)
    flags: tuple[str, ...] = ()
    trust: tuple[str, ...] = ()
    if anchor in ("dana", "lee"):
        trust = (getattr(world, anchor).fp,)
        flags = ("--trust", trust[0])
    elif anchor == "required":
        flags = ("--require-trusted",)
    want_rc, want = custody_verdict(run, bag, *flags)
    got_rc, got = docverify.verify(bag, trust, require_trusted=anchor == "required")
    assert (got_rc, set(got)) == (want_rc, want)


def test_no_signed_export_event_means_rules_1(
    world: World,  # noqa: F811
    run: Run,
    tmp_path: Path,
) -> None:
    """§10.1: the rules come from the signed export event, never from bundle.json's
    unsigned "rules".  Without the export event only the anchor itself is trusted,
    so Lee, whom the owner attested under rules 2, is not."""
    bag = Path(shutil.copytree(world.bundle, tmp_path / "bag"))
    assert json.loads((bag / "custody" / "bundle.json").read_text())["rules"] == 2
    trust_export_event_pointed_elsewhere(bag, world)
    want = {("disclosure", "custody/bundle.json"), ("untrusted-key", world.lee.fp)}
    assert custody_verdict(run, bag, "--trust", world.dana.fp) == (1, want)
    assert (lambda r: (r[0], set(r[1])))(docverify.verify(bag, (world.dana.fp,))) == (1, want)


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """test_bundle_trust's rotation case: Dana rotates her key and exports with the
    new one.  The bundle and [old, new] fingerprints."""
    root = tmp_path_factory.mktemp("docverify-rotated")
    dana, dana2 = person("Dana Reyes", "collector"), person("Dana Reyes", "collector")
    with Ledger.create(root / "case", CASE_ID, "t", owner=dana.signer) as led:
        collect(led, dana.signer, evidence(root), reason="b", algorithms=["sha256"], selftest=False)
        rotate_key(led, dana.signer, dana2.signer)
        lifecycle_event(led, dana2.signer, "seal", ["ITEM-1"], "sealed in bag 0042")
        export_bundle(led, dana2.signer, [], root / "bundle")
    return root / "bundle", [dana.fp, dana2.fp]


@pytest.mark.parametrize("anchor", ["old", "new", "none", "required", "stranger"])
def test_docverify_agrees_with_custody_on_a_rotated_owner(
    rotated: tuple[Path, list[str]], anchor: str, run: Run
) -> None:
    bag, (old, new) = rotated
    trust = {"old": (old,), "new": (new,), "stranger": (person("X", "y").fp,)}.get(anchor, ())
    flags = [a for fp in trust for a in ("--trust", fp)]
    if anchor == "required":
        flags.append("--require-trusted")
    want_rc, want = custody_verdict(run, bag, *flags)
    got_rc, got = docverify.verify(bag, trust, require_trusted=anchor == "required")
    assert (got_rc, set(got)) == (want_rc, want)
