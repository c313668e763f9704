"""Evidence bundles for counsel: ``custody bundle export`` and ``custody bundle verify``.

One case is built per module through the real CLI (three files collected, one of
them with a name that is not UTF-8; Lee Okafor's key imported; ITEM-1 and ITEM-2
handed over to Lee in one transfer and received with his key), and exported once in
every format plus a subset of ITEM-1. Each test works on a copy of those bundles and
tampers with it the way someone holding only the bundle could: the files directly,
the unsigned manifests recomputed where that is what an attacker would do.

A tampering that ``bundle verify`` does not catch is a bug: its test asserts the
correct behaviour and is marked ``xfail(strict=True, reason="BUG: ...")``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from conftest import PASSPHRASE, Run, template_case
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jsonschema import Draft202012Validator
from tampering import read_events, retag, write_events

from custody import merkle, note
from custody.canonical import content_hash
from custody.checkpoint import note_key_name, origin_of
from custody.keys import fingerprint, load_signer

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = ROOT / "schemas"
CASE_ID = "2026-017"
REASON = "for counsel's review"
ODD_NAME = os.fsdecode(b"notes-caf\xe9.txt")  # Latin-1 bytes: not UTF-8
FORMATS = ("all", "all.tar", "all.tar.gz", "all.zip")
KEY_EVENTS = ("case.open", "identity", "key.rotate", "key.revoke")
HANDOVERS = ("transfer", "receive")

ANY_DETAIL = ANY  # findings are asserted by kind and subject, not by sentence


# -- the module's case and bundles -----------------------------------------------------


def make_evidence(root: Path) -> list[Path]:
    root.mkdir(parents=True)
    files = [
        (
            root / "exhibit-1.log",
            b"Jan 12 03:14:07 payroll sshd[811]: Accepted password for svc\n" * 20,
        ),
        (root / "payroll.csv", b"id,name,iban\n" + b"7,J. Doe,DE00 0000 0000\n" * 40),
        (root / ODD_NAME, b"notes kept by the administrator\n" * 3),
    ]
    for p, data in files:
        p.write_bytes(data)
    return [p for p, _ in files]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("bundle-template")
    run = template_case(root, counsel=True).run
    case = root / "case"
    files = make_evidence(root / "evidence")
    run("collect", "--reason", "suspected credential theft", *files, cwd=case, check=True)
    run(
        "key",
        "import",
        root / "lee.pub",
        "--name",
        "Lee Okafor",
        "--role",
        "counsel",
        cwd=case,
        check=True,
    )
    proc = run(
        "transfer",
        "ITEM-1",
        "ITEM-2",
        "--to",
        "Lee Okafor",
        "--reason",
        REASON,
        "--location",
        "evidence room 4",
        "--json",
        cwd=case,
        check=True,
    )
    transfer_id = json.loads(proc.stdout)["id"]
    run("receive", transfer_id, "--key", root / "lee.pem", cwd=case, check=True)
    keys = {
        r["name"]: r["fingerprint"]
        for r in json.loads(run("key", "list", "--json", cwd=case, check=True).stdout)
    }
    items = {it["id"]: it for it in json.loads(run("list", "--json", cwd=case, check=True).stdout)}
    assert sorted(items) == ["ITEM-1", "ITEM-2", "ITEM-3"]
    events_before = json.loads(run("log", "--json", cwd=case, check=True).stdout)

    out = root / "bundles"
    out.mkdir()
    summaries = {}
    for name, what in [(f, ["--all"]) for f in FORMATS] + [("item1", ["ITEM-1"])]:
        proc = run(
            "bundle",
            "export",
            *what,
            "--out",
            out / name,
            "--organization",
            "Acme Forensics",
            "--json",
            cwd=case,
            check=True,
        )
        summaries[name] = json.loads(proc.stdout)
    return {
        "root": root,
        "files": files,
        "keys": keys,
        "items": items,
        "transfer": transfer_id,
        "events": events_before,
        "summaries": summaries,
    }


@pytest.fixture
def bundles(template: dict[str, Any], tmp_path: Path) -> Path:
    """A fresh copy of the module's bundles (and Dana's and Lee's key files)."""
    root: Path = template["root"]
    shutil.copytree(root / "bundles", tmp_path / "bundles", symlinks=True)
    for f in ("dana.pem", "dana.pub", "lee.pem", "lee.pub"):
        shutil.copy2(root / f, tmp_path / f)
    return tmp_path / "bundles"


def verify(run: Run, path: Path, *flags: str | Path) -> tuple[int, dict[str, Any]]:
    """``bundle verify --json``, accepting self-asserted signers (exit 0 when intact)."""
    proc = run("bundle", "verify", path, "--json", "--accept-self-asserted", *flags)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr)
    return proc.returncode, json.loads(proc.stdout)


def findings(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["kind"], f["subject"]) for f in report["findings"]}


def assert_failed(rc: int, report: dict[str, Any]) -> None:
    assert rc == 1, report
    assert report["ok"] is False
    assert report["findings"]


# -- tampering helpers (a folder bundle) ------------------------------------------------


def sha(path: Path, alg: str = "sha256") -> str:
    return hashlib.new(alg, path.read_bytes()).hexdigest()


def remanifest(bag: Path) -> None:
    """Recompute both payload manifests from data/, then the tag manifest."""
    payload = sorted(
        p.relative_to(bag).as_posix() for p in (bag / "data").rglob("*") if p.is_file()
    )
    for alg in ("sha256", "sha512"):
        (bag / f"manifest-{alg}.txt").write_text(
            "".join(f"{sha(bag / n, alg)}  {n}\n" for n in payload)
        )
    retag(bag)


def body(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["body"])


def seq_of(bag: Path, type_: str, item: str | None = None) -> int:
    # a hand-over of several items is one transfer (and one receipt) per item: the
    # first of them, ITEM-1's, unless an item is named
    seqs = [
        r["seq"]
        for r in read_events(bag)
        if body(r)["type"] == type_
        and (
            item is None
            or body(r)["data"].get("item") == item
            or item in (body(r)["data"].get("items") or ())
        )
    ]
    return int(min(seqs))


def writable(path: Path) -> Path:
    """Make a payload file writable (whatever mode export gave it)."""
    os.chmod(path, 0o644)
    return path


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def forge_with_keys(bag: Path, swap: dict[str, Ed25519PrivateKey]) -> dict[str, str]:
    """Re-sign the whole folder bundle ``bag`` with other keys, as someone holding
    only the bundle would: ``swap`` maps a fingerprint in keys.json to the private
    key that replaces it.  Every fingerprint, public key and event-hash reference
    in the bodies is rewritten, every event re-hashed and re-signed, a Merkle tree
    of the checkpoint's size is built with the forged bodies at their seqs (filler
    leaves elsewhere: the forger does not know the undisclosed events), proofs and
    a checkpoint (signed by the forged key of the exporter, under the same note key
    name) are written, keys.json updated and the tag manifest recomputed.  Returns
    the map old fingerprint -> forged fingerprint."""
    new_fp = {old: fingerprint(raw_public(k)) for old, k in swap.items()}
    keys = json.loads((bag / "custody" / "keys.json").read_text())
    replace: dict[str, str] = {}
    for k in keys:
        if k["fingerprint"] in swap:
            pub = b64(raw_public(swap[k["fingerprint"]]))
            replace[k["fingerprint"]] = new_fp[k["fingerprint"]]
            replace[k["public_key"]] = pub
            k["fingerprint"], k["public_key"] = new_fp[k["fingerprint"]], pub
    (bag / "custody" / "keys.json").write_text(json.dumps(keys, indent=2) + "\n")

    rows = read_events(bag)
    for row in sorted(rows, key=lambda r: r["seq"]):
        text = row["body"]
        for old, new in replace.items():
            text = text.replace(old, new)
        new_hash = content_hash(text.encode())
        replace[row["hash"]] = new_hash  # later bodies reference this event by hash
        key = swap[row["signer"]]
        row.update(
            body=text,
            hash=new_hash,
            signer=new_fp[row["signer"]],
            signature=b64(key.sign(text.encode())),
        )
    write_events(bag, rows)

    proofs = json.loads((bag / "custody" / "proofs.json").read_text())
    size = proofs["tree_size"]
    leaves = [merkle.leaf_hash(f"filler {i}".encode()) for i in range(size)]
    for row in rows:
        leaves[row["seq"]] = merkle.leaf_hash(row["body"].encode())
    root = merkle.root(leaves)
    proofs["proofs"] = [
        {
            "seq": r["seq"],
            "proof": [h.hex() for h in merkle.inclusion_proof(leaves, r["seq"], size)],
        }
        for r in rows
    ]
    (bag / "custody" / "proofs.json").write_text(json.dumps(proofs, indent=2) + "\n")

    meta = json.loads((bag / "custody" / "bundle.json").read_text())
    exporter = meta["exported_by"]
    (name,) = [k["name"] for k in keys if k["fingerprint"] == new_fp[exporter]]
    text = note.format_checkpoint(note.Checkpoint(origin_of(CASE_ID), size, root, []))
    (bag / "custody" / "checkpoint.txt").write_text(
        note.sign_note(text, note_key_name(name), swap[exporter].sign, raw_public(swap[exporter]))
    )
    meta["exported_by"] = new_fp[exporter]
    (bag / "custody" / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n")
    retag(bag)
    return new_fp


# -- export, verify, formats -------------------------------------------------------------


def test_export_summaries_and_bag_info(template: dict[str, Any], bundles: Path) -> None:
    files: list[Path] = template["files"]
    total = sum(f.stat().st_size for f in files)
    n_events = len(template["events"])
    for i, name in enumerate(FORMATS):
        s = template["summaries"][name]
        assert s["items"] == ["ITEM-1", "ITEM-2", "ITEM-3"]
        assert s["bytes"] == total
        # every export signs an export event, then a fresh checkpoint event over it: the
        # ledger grows by two each time and the checkpoint covers the export event
        assert s["checkpoint_size"] == n_events + 1 + 2 * i
        # 3 collect, 2 identity, a transfer and a receipt for each of ITEM-1 and ITEM-2
        # (a hand-over is one event per item), the describe event typing each item's
        # object, this export (collection.start/end, checkpoints and earlier exports:
        # not about the items' custody, not disclosed)
        assert s["events"] == 13
    sub = template["summaries"]["item1"]
    assert (sub["items"], sub["bytes"]) == (["ITEM-1"], files[0].stat().st_size)

    info = dict(
        line.split(": ", 1) for line in (bundles / "all" / "bag-info.txt").read_text().splitlines()
    )
    assert info["Source-Organization"] == "Acme Forensics"
    assert info["Contact-Name"] == "Dana Reyes"
    assert info["External-Identifier"] == CASE_ID
    assert info["Payload-Oxum"] == f"{total}.3"
    assert info["Custody-Schema-Version"] == "1"
    assert info["Custody-Items"] == "ITEM-1 ITEM-2 ITEM-3"
    assert info["Custody-Checkpoint-Size"] == str(n_events + 1)
    assert len(info["Bagging-Date"]) == 10 and info["Bagging-Date"][4] == "-"
    assert (bundles / "all" / "bagit.txt").read_text() == (
        "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    )


def test_folder_layout_and_payload(template: dict[str, Any], bundles: Path) -> None:
    bag = bundles / "all"
    got = sorted(p.relative_to(bag).as_posix() for p in bag.rglob("*") if p.is_file())
    assert got == [
        "bag-info.txt",
        "bagit.txt",
        "custody/bundle.json",
        "custody/checkpoint.txt",
        "custody/consistency.json",
        "custody/events.jsonl",
        "custody/keys.json",
        "custody/proofs.json",
        "data/ITEM-1/exhibit-1.log",
        "data/ITEM-2/payroll.csv",
        "data/ITEM-3/ITEM-3.bin",
        "manifest-sha256.txt",
        "manifest-sha512.txt",
        "tagmanifest-sha256.txt",
    ]
    files: list[Path] = template["files"]
    for rel, src in zip(
        ["ITEM-1/exhibit-1.log", "ITEM-2/payroll.csv", "ITEM-3/ITEM-3.bin"], files, strict=True
    ):
        assert (bag / "data" / rel).read_bytes() == src.read_bytes()
    meta = json.loads((bag / "custody" / "bundle.json").read_text())
    odd = meta["items"][2]
    # the name that is not UTF-8 is mapped, and its exact bytes kept in path_hex
    assert (odd["id"], odd["payload"], odd["name_mapped"]) == (
        "ITEM-3",
        "data/ITEM-3/ITEM-3.bin",
        True,
    )
    assert bytes.fromhex(odd["path_hex"]) == os.fsencode(files[2])
    assert [i["name_mapped"] for i in meta["items"]] == [False, False, True]
    assert meta["exported_by"] == template["keys"]["Dana Reyes"]
    keys = json.loads((bag / "custody" / "keys.json").read_text())
    assert sorted(k["name"] for k in keys) == ["Dana Reyes", "Lee Okafor"]
    # the exporter's signed export event, last, says what the bundle discloses; the
    # checkpoint signed right after it covers it
    rows = read_events(bag)
    assert meta["export_event"] == rows[-1]["seq"] == meta["checkpoint_event"] - 1
    export = body(rows[-1])
    assert (export["type"], rows[-1]["signer"]) == ("export", template["keys"]["Dana Reyes"])
    assert export["data"] == {
        "items": ["ITEM-1", "ITEM-2", "ITEM-3"],
        "payload": {i: template["items"][i]["sha256"] for i in ("ITEM-1", "ITEM-2", "ITEM-3")},
        "events": [{"seq": r["seq"], "hash": r["hash"]} for r in rows[:-1]],
        "rules": 2,
    }
    assert meta["rules"] == 2


@pytest.mark.parametrize("name", FORMATS)
def test_every_format_verifies(
    template: dict[str, Any], bundles: Path, run: Run, name: str
) -> None:
    # without a key you trust: intact, but never VERIFIED, and exit 1
    proc = run("bundle", "verify", bundles / name)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith(
        f"INTACT, SIGNERS UNCONFIRMED: this bundle of case {CASE_ID} is complete and unaltered"
        " as its own keys say, but no key you trust vouches for its signers"
    )
    assert "VERIFIED" not in proc.stdout.replace("UNCONFIRMED", "")
    dana, lee = template["keys"]["Dana Reyes"], template["keys"]["Lee Okafor"]
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("Warning:")]
    assert sorted(warnings) == sorted(
        f"Warning: key of {who} is self-asserted: it came only with the bundle"
        for who in (f"Dana Reyes (collector) {dana}", f"Lee Okafor (counsel) {lee}")
    )
    # --accept-self-asserted: exit 0, the same words
    accepted = run("bundle", "verify", bundles / name, "--accept-self-asserted")
    assert (accepted.returncode, accepted.stdout) == (0, proc.stdout)
    out = json.loads(run("bundle", "verify", bundles / name, "--json").stdout)
    assert (out["ok"], out["verdict"], out["signers_confirmed"]) == (True, "unconfirmed", False)
    # the case owner's key, obtained out of band: VERIFIED
    proc = run("bundle", "verify", bundles / name, "--trust", bundles.parent / "dana.pub")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"VERIFIED: this bundle of case {CASE_ID} is complete and")
    out = json.loads(
        run(
            "bundle", "verify", bundles / name, "--json", "--trust", bundles.parent / "dana.pub"
        ).stdout
    )
    assert (out["ok"], out["verdict"], out["signers_confirmed"]) == (True, "verified", True)

    rc, report = verify(run, bundles / name)
    assert (rc, report["ok"], report["findings"]) == (0, True, [])
    assert report["case"] == CASE_ID
    assert report["items"] == ["ITEM-1", "ITEM-2", "ITEM-3"]
    # 12 events about the items (3 of them their objects' describe events) and this
    # bundle's own export event (earlier exports, which name other items, are never
    # disclosed)
    assert (report["events"], report["payload_files"]) == (13, 3)
    assert report["trusted_keys"] == []
    assert sorted(report["self_asserted_keys"]) == [
        f"Dana Reyes (collector) {dana}",
        f"Lee Okafor (counsel) {lee}",
    ]
    assert len(report["warnings"]) == 2
    tid = template["transfer"]
    for item in ("ITEM-1", "ITEM-2"):
        (h,) = report["handovers"][item]
        assert (h["transfer"], h["released_by"], h["received_by"], h["reason"]) == (
            tid,
            "Dana Reyes",
            "Lee Okafor",
            REASON,
        )
        assert h["released"] < h["received"]
    assert report["handovers"]["ITEM-3"] == []


def test_trusted_keys_and_require_trusted(
    template: dict[str, Any], bundles: Path, run: Run
) -> None:
    bag = bundles / "all.tar.gz"
    dana, lee = template["keys"]["Dana Reyes"], template["keys"]["Lee Okafor"]
    pub = bundles.parent / "dana.pub"

    # a key file and a fingerprint: both trusted, no warning
    proc = run("bundle", "verify", bag, "--trust", pub, "--trust", lee)
    assert proc.returncode == 0, proc.stdout
    assert "Warning" not in proc.stdout
    rc, report = verify(run, bag, "--trust", pub, "--trust", lee)
    assert (rc, report["ok"], report["warnings"], report["self_asserted_keys"]) == (0, True, [], [])
    assert sorted(report["trusted_keys"]) == [
        f"Dana Reyes (collector) {dana}",
        f"Lee Okafor (counsel) {lee}",
    ]
    rc, report = verify(run, bag, "--trust", pub, "--trust", lee, "--require-trusted")
    assert (rc, report["findings"]) == (0, [])

    # --require-trusted turns every self-asserted key into a failure
    rc, report = verify(run, bag, "--require-trusted")
    assert_failed(rc, report)
    assert findings(report) == {("untrusted-key", dana), ("untrusted-key", lee)}
    # trusting Dana, the case's owner, trusts Lee too: she attested his key
    rc, report = verify(run, bag, "--trust", pub, "--require-trusted")
    assert (rc, report["findings"], report["self_asserted_keys"]) == (0, [], [])
    assert sorted(report["trusted_keys"]) == [
        f"Dana Reyes (collector) {dana}",
        f"Lee Okafor (counsel) {lee}",
    ]

    # trusting only Lee (not the owner): Dana's events and the checkpoint she
    # signed are signed by a key nobody trusts
    rc, report = verify(run, bag, "--trust", lee)
    assert_failed(rc, report)
    assert findings(report) == {
        ("untrusted-key", dana),
        ("untrusted-checkpoint", "custody/checkpoint.txt"),
    }
    assert report["trusted_keys"] == [f"Lee Okafor (counsel) {lee}"]

    # the human form says so too
    proc = run("bundle", "verify", bag, "--require-trusted")
    assert proc.returncode == 1
    assert proc.stdout.startswith("NOT VERIFIED: 2 problem(s)")
    assert f"  [untrusted-key] {lee}: Lee Okafor (counsel) {lee} is only asserted" in proc.stdout


def test_trust_argument_that_is_neither_file_nor_fingerprint(bundles: Path, run: Run) -> None:
    proc = run("bundle", "verify", bundles / "all", "--trust", "nobody.pub")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (
        "custody: error: --trust 'nobody.pub': neither a public key file, a verifier key nor"
        " a fingerprint\n"
    )


def extract(archive: Path, dest: Path) -> Path:
    dest.mkdir()
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            z.extractall(dest)
    else:
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="data")
    (top,) = dest.iterdir()
    return top


@pytest.mark.parametrize("name", FORMATS)
def test_bagit_validator_accepts(bundles: Path, tmp_path: Path, name: str) -> None:
    bag = bundles / name
    if bag.is_file():
        bag = extract(bag, tmp_path / "extracted")
        assert bag.name == "all"
    proc = subprocess.run(
        [sys.executable, "-m", "bagit", "--validate", str(bag)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{bag} is valid" in proc.stderr


def test_bagit_validator_accepts_a_bundle_without_payload(
    template: dict[str, Any], run: Run, tmp_path: Path
) -> None:
    root: Path = template["root"]
    run.env["CUSTODY_KEY"] = str(root / "dana.pem")
    run("init", tmp_path / "c2", "--case-id", "2026-018", "--title", "links", check=True)
    (tmp_path / "link").symlink_to("/etc/passwd")
    run("collect", "--reason", "a symlink", tmp_path / "link", cwd=tmp_path / "c2", check=True)
    run("bundle", "export", "ITEM-1", "--out", tmp_path / "b", cwd=tmp_path / "c2", check=True)
    rc, report = verify(run, tmp_path / "b")
    assert (rc, report["items"], report["payload_files"]) == (0, ["ITEM-1"], 0)
    meta = json.loads((tmp_path / "b" / "custody" / "bundle.json").read_text())
    assert errors(validator("bundle.schema.json"), meta) == []
    assert (tmp_path / "b" / "data").is_dir()
    assert list((tmp_path / "b" / "data").iterdir()) == []
    proc = subprocess.run(
        [sys.executable, "-m", "bagit", "--validate", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_export_refusals(template: dict[str, Any], run: Run, tmp_path: Path) -> None:
    root: Path = template["root"]
    case = tmp_path / "case"
    shutil.copytree(root / "case", case, symlinks=True)
    run.env["CUSTODY_KEY"] = str(root / "dana.pem")
    db = (case / "custody.db").read_bytes()
    (tmp_path / "taken").mkdir()
    for args, message in [
        (
            ["ITEM-1", "--out", tmp_path / "taken"],
            f"custody: error: {tmp_path / 'taken'} already exists; refusing to overwrite\n",
        ),
        (["ITEM-9", "--out", tmp_path / "x"], "custody: error: no such item: ITEM-9\n"),
        (
            ["--out", tmp_path / "x"],
            "custody: error: name the items to export, or give --all (not both)\n",
        ),
        (
            ["ITEM-1", "--all", "--out", tmp_path / "x"],
            "custody: error: name the items to export, or give --all (not both)\n",
        ),
    ]:
        proc = run("bundle", "export", *args, cwd=case)
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", message)
    assert not (tmp_path / "x").exists()
    assert list((tmp_path / "taken").iterdir()) == []
    assert (case / "custody.db").read_bytes() == db  # no checkpoint signed


# -- selective disclosure ------------------------------------------------------------------


def items_of(b: dict[str, Any]) -> set[str]:
    """The items an event body concerns."""
    data = b.get("data") or {}
    out = set()
    if isinstance(data.get("item"), str):
        out.add(data["item"])
    if isinstance(data.get("items"), list | dict):
        out.update(data["items"])
    if isinstance(data.get("digests"), dict):
        out.update(k for k in data["digests"] if k.startswith("ITEM-"))
    return out


def test_subset_export_discloses_only_its_item(
    template: dict[str, Any], bundles: Path, run: Run
) -> None:
    bag = bundles / "item1"
    rc, report = verify(run, bag)
    assert (rc, report["ok"], report["items"]) == (0, True, ["ITEM-1"])
    (h,) = report["handovers"]["ITEM-1"]
    assert (h["released_by"], h["received_by"]) == ("Dana Reyes", "Lee Okafor")

    rows = read_events(bag)
    types = [body(r)["type"] for r in rows]
    # the events about ITEM-1, then this bundle's own export event (earlier exports of
    # other items too would disclose those items)
    types_of = ["case.open", "collect", "describe", "identity", "transfer", "receive", "export"]
    assert types == types_of
    export = body(rows[-1])["data"]
    assert export["items"] == ["ITEM-1"]
    assert export["payload"] == {"ITEM-1": template["items"]["ITEM-1"]["sha256"]}
    assert export["events"] == [{"seq": r["seq"], "hash": r["hash"]} for r in rows[:-1]]
    for r in rows:
        b = body(r)
        about = items_of(b)
        if b["type"] in KEY_EVENTS:
            assert about == set(), b
        elif b["type"] == "describe":  # it names ITEM-1's object only
            assert b["data"]["sha256"] == template["items"]["ITEM-1"]["sha256"]
        elif b["type"] in HANDOVERS:
            assert "ITEM-1" in about, b  # a hand-over of ITEM-1 (with ITEM-2)
        else:
            assert about == {"ITEM-1"}, b
    # every disclosed event has its proof, and there is no proof of anything else
    proofs = json.loads((bag / "custody" / "proofs.json").read_text())
    assert [p["seq"] for p in proofs["proofs"]] == [r["seq"] for r in rows]
    assert proofs["tree_size"] > max(r["seq"] for r in rows)

    # payload: ITEM-1's bytes only
    payload = sorted(
        p.relative_to(bag).as_posix() for p in (bag / "data").rglob("*") if p.is_file()
    )
    assert payload == ["data/ITEM-1/exhibit-1.log"]
    meta = json.loads((bag / "custody" / "bundle.json").read_text())
    assert [i["id"] for i in meta["items"]] == ["ITEM-1"]

    # nothing identifying ITEM-3 (never handed over with ITEM-1) anywhere in the bundle;
    # ITEM-2 only inside the hand-over it shared with ITEM-1
    item2, item3 = template["items"]["ITEM-2"], template["items"]["ITEM-3"]
    for p in bag.rglob("*"):
        if not p.is_file():
            continue
        data = p.read_bytes()
        for secret in ("ITEM-3", item3["sha256"], os.fsencode(ODD_NAME).hex(), "payroll.csv"):
            assert secret.encode() not in data, (p, secret)
        if p.name != "events.jsonl":
            assert b"ITEM-2" not in data and item2["sha256"].encode() not in data, p
    for r in rows:
        if body(r)["type"] not in HANDOVERS:
            assert "ITEM-2" not in r["body"] and item2["sha256"] not in r["body"]


# -- tampering: payload -------------------------------------------------------------------


def test_payload_byte_flipped(bundles: Path, run: Run, template: dict[str, Any]) -> None:
    bag = bundles / "all"
    f = writable(bag / "data" / "ITEM-2" / "payroll.csv")
    data = bytearray(f.read_bytes())
    data[20] ^= 0x01
    f.write_bytes(bytes(data))
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    # the bag manifests (sha256 and sha512) and the signed collect event's digests
    # (its SHA-256: the collect event of this case records md5, sha1 and sha256)
    assert findings(report) == {
        ("payload-digest", "data/ITEM-2/payroll.csv"),
        ("payload-digest", "ITEM-2"),
    }
    kinds = [(f["subject"], f["detail"].split(":")[0]) for f in report["findings"]]
    assert sorted(kinds) == [
        ("ITEM-2", "sha256"),
        ("data/ITEM-2/payroll.csv", "sha256"),
        ("data/ITEM-2/payroll.csv", "sha512"),
    ]
    want = template["items"]["ITEM-2"]["sha256"]
    assert {
        "kind": "payload-digest",
        "subject": "ITEM-2",
        "detail": f"sha256: collected as {want}, bundle holds {sha(f)}",
    } in report["findings"]


def test_payload_byte_flipped_inside_a_tar(
    bundles: Path, run: Run, template: dict[str, Any]
) -> None:
    bag = bundles / "all.tar"
    raw = bytearray(bag.read_bytes())
    original = template["files"][0].read_bytes()
    at = raw.find(original)
    assert at > 0 and raw.find(original, at + 1) == -1
    raw[at + 5] ^= 0x20
    bag.write_bytes(bytes(raw))
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    assert findings(report) == {
        ("payload-digest", "data/ITEM-1/exhibit-1.log"),
        ("payload-digest", "ITEM-1"),
    }


def test_payload_replaced(bundles: Path, run: Run, template: dict[str, Any]) -> None:
    bag = bundles / "all"
    f = writable(bag / "data" / "ITEM-1" / "exhibit-1.log")
    f.write_bytes(b"nothing to see here\n")
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    assert findings(report) == {
        ("payload-digest", "data/ITEM-1/exhibit-1.log"),
        ("payload-digest", "ITEM-1"),
    }
    want = template["items"]["ITEM-1"]["sha256"]
    found = hashlib.sha256(b"nothing to see here\n").hexdigest()
    assert {
        "kind": "payload-digest",
        "subject": "ITEM-1",
        "detail": f"sha256: collected as {want}, bundle holds {found}",
    } in report["findings"]


def test_payload_replaced_with_manifests_recomputed(bundles: Path, run: Run) -> None:
    """The manifests are not signed; the collect event's digests are."""
    bag = bundles / "all"
    writable(bag / "data" / "ITEM-1" / "exhibit-1.log").write_bytes(b"nothing to see here\n")
    remanifest(bag)
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    assert findings(report) == {("payload-digest", "ITEM-1")}


def test_payload_removed(bundles: Path, run: Run) -> None:
    bag = bundles / "all"
    (bag / "data" / "ITEM-2" / "payroll.csv").unlink()
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    assert findings(report) == {
        ("payload-missing", "data/ITEM-2/payroll.csv"),
        ("payload-withheld", "ITEM-2"),
    }
    details = sorted(f["detail"] for f in report["findings"] if f["kind"] == "payload-missing")
    assert details == [
        "listed in the manifest but absent from the bundle",
        "payload of ITEM-2 is absent",
    ]


def test_payload_removed_with_manifests_recomputed(
    bundles: Path, run: Run, template: dict[str, Any]
) -> None:
    bag = bundles / "all"
    sha2 = template["items"]["ITEM-2"]["sha256"]
    (bag / "data" / "ITEM-2" / "payroll.csv").unlink()
    remanifest(bag)
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    withheld = {
        "kind": "payload-withheld",
        "subject": "ITEM-2",
        "detail": f"the export event lists its bytes (sha256 {sha2}) but the bundle"
        " does not carry them",
    }
    assert report["findings"] == [
        {
            "kind": "payload-missing",
            "subject": "data/ITEM-2/payroll.csv",
            "detail": "payload of ITEM-2 is absent",
        },
        withheld,
    ]


def test_payload_removed_and_unlisted_in_bundle_json(
    bundles: Path, run: Run, template: dict[str, Any]
) -> None:
    bag = bundles / "all"
    (bag / "data" / "ITEM-2" / "payroll.csv").unlink()
    meta = json.loads((bag / "custody" / "bundle.json").read_text())
    del meta["items"][1]["payload"], meta["items"][1]["name_mapped"]
    (bag / "custody" / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n")
    remanifest(bag)
    # an item with stored bytes but no payload does not match the schema: refused
    proc = run("bundle", "verify", bag, "--json")
    assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr
    assert proc.stderr == (
        "custody: error: custody/bundle.json does not match its schema at"
        " items/1: 'name_mapped' is a required property\n"
    )
    # made to look like an item collected without bytes (a symlink): schema-valid
    meta["items"][1] |= {"outcome": "symlink", "sha256": None, "size": None}
    (bag / "custody" / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n")
    remanifest(bag)
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    # the signed export event lists ITEM-2's bytes
    sha2 = template["items"]["ITEM-2"]["sha256"]
    assert report["findings"][0] == {
        "kind": "payload-withheld",
        "subject": "ITEM-2",
        "detail": f"the export event lists its bytes (sha256 {sha2}) but the bundle does not"
        " carry them",
    }
    # and bundle.json's item is not its signed collect event's (issue 13)
    assert [
        (f["kind"], f["subject"], f["detail"].split(" ")[0]) for f in report["findings"][1:]
    ] == [("item", "ITEM-2", k) for k in ("outcome", "sha256", "size", "payload", "name_mapped")]


def test_extra_payload_file(bundles: Path, run: Run) -> None:
    bag = bundles / "all"
    (bag / "data" / "ITEM-2" / "planted.txt").write_bytes(b"planted evidence\n")
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    assert report["findings"] == [
        {
            "kind": "payload-extra",
            "subject": "data/ITEM-2/planted.txt",
            "detail": "present in the bundle but in no manifest",
        },
        {
            "kind": "payload-extra",
            "subject": "data/ITEM-2/planted.txt",
            "detail": "a payload file that belongs to no exported item",
        },
    ]


def test_extra_payload_file_listed_in_recomputed_manifests(bundles: Path, run: Run) -> None:
    bag = bundles / "all"
    (bag / "data" / "ITEM-2" / "planted.txt").write_bytes(b"planted evidence\n")
    remanifest(bag)
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    assert report["findings"] == [
        {
            "kind": "payload-extra",
            "subject": "data/ITEM-2/planted.txt",
            "detail": "a payload file that belongs to no exported item",
        }
    ]


# -- tampering: events ---------------------------------------------------------------------


def test_event_line_edited(bundles: Path, run: Run) -> None:
    bag = bundles / "all"
    rows = read_events(bag)
    seq = seq_of(bag, "transfer")
    (row,) = [r for r in rows if r["seq"] == seq]
    assert row["body"].count(REASON) == 1
    row["body"] = row["body"].replace(REASON, "routine archiving")
    write_events(bag, rows)
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    ev = f"event {seq}"
    # the tag manifest covers custody/; the line's hash, its signature and its
    # inclusion proof all disagree with the edited body
    # and ITEM-2's transfer of the same hand-over no longer agrees with it
    assert findings(report) == {
        ("tag-digest", "custody/events.jsonl"),
        ("event-hash", ev),
        ("signature", ev),
        ("proof", ev),
        ("transfer", f"TRANSFER-{seq_of(bag, 'transfer', 'ITEM-2')}"),
    }


def test_event_line_edited_with_hash_and_tag_manifest_recomputed(bundles: Path, run: Run) -> None:
    """What an attacker without the key can recompute, recomputed: the signature
    catches it (so do the inclusion proof against the signed checkpoint, and the
    receipt, which names the transfer it accepted by hash)."""
    bag = bundles / "all"
    rows = read_events(bag)
    seq = seq_of(bag, "transfer")
    (row,) = [r for r in rows if r["seq"] == seq]
    row["body"] = row["body"].replace(REASON, "routine archiving")
    row["hash"] = content_hash(row["body"].encode())
    write_events(bag, rows)
    retag(bag)
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    ev = f"event {seq}"
    # and the signed export event lists the event under its original hash
    assert findings(report) == {
        ("signature", ev),
        ("proof", ev),
        ("receipt", f"event {seq_of(bag, 'receive')}"),
        ("transfer", f"TRANSFER-{seq_of(bag, 'transfer', 'ITEM-2')}"),
        ("event-withheld", ev),
        ("event-extra", ev),
    }
    assert {
        "kind": "signature",
        "subject": ev,
        "detail": ANY_DETAIL,
    } in report["findings"]


def test_event_line_removed(bundles: Path, run: Run) -> None:
    bag = bundles / "all"
    seq = seq_of(bag, "receive")
    write_events(bag, [r for r in read_events(bag) if r["seq"] != seq])
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    assert findings(report) == {
        ("tag-digest", "custody/events.jsonl"),
        ("event-withheld", f"event {seq}"),
    }


def test_collect_event_removed_with_tag_manifest_recomputed(bundles: Path, run: Run) -> None:
    bag = bundles / "all"
    seq = seq_of(bag, "collect", "ITEM-3")
    (gone,) = [r["hash"] for r in read_events(bag) if r["seq"] == seq]
    write_events(bag, [r for r in read_events(bag) if r["seq"] != seq])
    retag(bag)
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    assert report["findings"] == [
        {
            "kind": "item",
            "subject": "ITEM-3",
            "detail": "no signed collect event for this item in the bundle",
        },
        {
            "kind": "event-withheld",
            "subject": f"event {seq}",
            "detail": f"listed by the export event ({gone}) but missing from the bundle",
        },
    ]


def test_transfer_event_removed_with_tag_manifest_recomputed(bundles: Path, run: Run) -> None:
    bag = bundles / "all"
    seq = seq_of(bag, "transfer")
    write_events(bag, [r for r in read_events(bag) if r["seq"] != seq])
    retag(bag)
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    assert findings(report) == {
        ("receipt", f"event {seq_of(bag, 'receive')}"),
        ("event-withheld", f"event {seq}"),
    }


def test_receive_event_removed_with_tag_manifest_recomputed(bundles: Path, run: Run) -> None:
    bag = bundles / "all"
    seq = seq_of(bag, "receive")
    write_events(bag, [r for r in read_events(bag) if r["seq"] != seq])
    retag(bag)
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    assert findings(report) == {("event-withheld", f"event {seq}")}


def test_handover_removed_with_its_proofs(bundles: Path, run: Run) -> None:
    bag = bundles / "all"
    gone = {seq_of(bag, "transfer"), seq_of(bag, "receive")}
    write_events(bag, [r for r in read_events(bag) if r["seq"] not in gone])
    proofs = json.loads((bag / "custody" / "proofs.json").read_text())
    proofs["proofs"] = [p for p in proofs["proofs"] if p["seq"] not in gone]
    (bag / "custody" / "proofs.json").write_text(json.dumps(proofs, indent=2) + "\n")
    retag(bag)
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    # the signed export event lists both
    assert findings(report) == {("event-withheld", f"event {s}") for s in gone}


def test_event_line_duplicated(bundles: Path, run: Run) -> None:
    bag = bundles / "all"
    seq = seq_of(bag, "collect", "ITEM-3")
    rows = read_events(bag)
    write_events(bag, rows + [r for r in rows if r["seq"] == seq])
    retag(bag)
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    assert report["findings"] == [
        {
            "kind": "event-duplicate",
            "subject": f"event {seq}",
            "detail": "the bundle carries this event twice",
        }
    ]


def test_export_event_removed_with_tag_manifest_recomputed(bundles: Path, run: Run) -> None:
    bag = bundles / "all"
    seq = seq_of(bag, "export")
    write_events(bag, [r for r in read_events(bag) if r["seq"] != seq])
    retag(bag)
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    assert report["findings"] == [
        {
            "kind": "disclosure",
            "subject": "custody/bundle.json",
            "detail": f"the signed export event {seq} is not in the bundle",
        }
    ]


def test_item_dropped_from_bundle_json(bundles: Path, run: Run, template: dict[str, Any]) -> None:
    """bundle.json is unsigned; the export event's list of items is signed."""
    bag = bundles / "all"
    meta = json.loads((bag / "custody" / "bundle.json").read_text())
    meta["items"] = meta["items"][:2]
    (bag / "custody" / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(bag / "data" / "ITEM-3")
    remanifest(bag)
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    sha3 = template["items"]["ITEM-3"]["sha256"]
    assert report["findings"] == [
        {
            "kind": "disclosure",
            "subject": "custody/bundle.json",
            "detail": "items ['ITEM-1', 'ITEM-2'] differ from the export event's"
            " ['ITEM-1', 'ITEM-2', 'ITEM-3']",
        },
        {
            "kind": "payload-withheld",
            "subject": "ITEM-3",
            "detail": f"the export event lists its bytes (sha256 {sha3}) but the bundle does not"
            " carry them",
        },
    ]


def test_events_line_that_is_not_json(bundles: Path, run: Run) -> None:
    bag = bundles / "all"
    with open(bag / "custody" / "events.jsonl", "a") as f:
        f.write('{"seq": 99, "body": \n')
    retag(bag)
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    assert findings(report) == {("event", "events.jsonl line 14")}  # after the 13 events


# -- tampering: checkpoint -----------------------------------------------------------------


def test_checkpoint_edited(bundles: Path, run: Run) -> None:
    bag = bundles / "all"
    cp = bag / "custody" / "checkpoint.txt"
    lines = cp.read_text().split("\n")
    lines[1] = str(int(lines[1]) + 1)  # claim one event more
    cp.write_text("\n".join(lines))
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    assert findings(report) == {
        ("tag-digest", "custody/checkpoint.txt"),
        ("checkpoint", "custody/checkpoint.txt"),
    }
    retag(bag)
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    (f,) = report["findings"]
    assert (f["kind"], f["subject"]) == ("checkpoint", "custody/checkpoint.txt")
    assert "not signed by any key this case knows" in f["detail"]


def test_checkpoint_resigned_over_another_root_by_the_real_key(bundles: Path, run: Run) -> None:
    """Even the key holder cannot re-sign the checkpoint over another tree: every
    inclusion proof then fails."""
    bag = bundles / "all"
    dana = load_signer(bundles.parent / "dana.pem", PASSPHRASE.encode())
    size = json.loads((bag / "custody" / "proofs.json").read_text())["tree_size"]
    text = note.format_checkpoint(note.Checkpoint(origin_of(CASE_ID), size, bytes(32), []))
    (bag / "custody" / "checkpoint.txt").write_text(
        note.sign_note(text, "dana-reyes", dana.sign, dana.identity.public_raw)
    )
    retag(bag)
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    seqs = [r["seq"] for r in read_events(bag)]
    assert findings(report) == {("proof", f"event {s}") for s in seqs}


# -- tampering: keys -----------------------------------------------------------------------


def test_public_key_swapped_without_resigning(
    template: dict[str, Any], bundles: Path, run: Run
) -> None:
    bag = bundles / "all"
    dana = template["keys"]["Dana Reyes"]
    other = Ed25519PrivateKey.generate()
    keys = json.loads((bag / "custody" / "keys.json").read_text())
    for k in keys:
        if k["fingerprint"] == dana:
            k["public_key"] = b64(raw_public(other))
            k["fingerprint"] = fingerprint(raw_public(other))
    (bag / "custody" / "keys.json").write_text(json.dumps(keys, indent=2) + "\n")
    retag(bag)
    rc, report = verify(run, bag)
    assert_failed(rc, report)
    dana_events = [r["seq"] for r in read_events(bag) if r["signer"] == dana]
    # her identity, 3 collects, their 3 describes, 2 transfers, the export
    assert len(dana_events) == 11
    assert findings(report) == {("unknown-signer", f"event {s}") for s in dana_events} | {
        ("checkpoint", "custody/checkpoint.txt")
    }


@pytest.fixture
def forged(template: dict[str, Any], bundles: Path) -> tuple[Path, dict[str, str]]:
    bag = bundles / "all"
    keys = template["keys"]
    new_fp = forge_with_keys(
        bag,
        {
            keys["Dana Reyes"]: Ed25519PrivateKey.generate(),
            keys["Lee Okafor"]: Ed25519PrivateKey.generate(),
        },
    )
    return bag, {name: new_fp[fp] for name, fp in keys.items()}


def test_key_swapped_and_events_resigned_passes_only_as_self_asserted(
    template: dict[str, Any], forged: tuple[Path, dict[str, str]], run: Run
) -> None:
    bag, fake = forged
    # internally consistent: it verifies, but only on the bundle's own say-so
    rc, report = verify(run, bag)
    assert (rc, report["ok"], report["trusted_keys"]) == (0, True, [])
    assert sorted(report["self_asserted_keys"]) == [
        f"Dana Reyes (collector) {fake['Dana Reyes']}",
        f"Lee Okafor (counsel) {fake['Lee Okafor']}",
    ]
    assert len(report["warnings"]) == 2
    # nothing in it is signed by the real keys
    real = set(template["keys"].values())
    assert not real & {r["signer"] for r in read_events(bag)}

    # with the real keys trusted, the checkpoint and every event are signed by keys
    # nobody vouches for
    pub = bag.parent.parent / "dana.pub"
    lee = template["keys"]["Lee Okafor"]
    want = {("untrusted-key", fake["Dana Reyes"]), ("untrusted-key", fake["Lee Okafor"])}
    untrusted_cp = {("untrusted-checkpoint", "custody/checkpoint.txt")}
    for flags, expected in (
        (["--require-trusted"], want),
        (["--trust", pub, "--require-trusted"], want | untrusted_cp),
        (["--trust", pub, "--trust", lee, "--require-trusted"], want | untrusted_cp),
    ):
        rc, report = verify(run, bag, *flags)
        assert_failed(rc, report)
        assert findings(report) == expected, flags
        assert report["trusted_keys"] == []


def test_key_swapped_and_events_resigned_fails_with_trust(
    forged: tuple[Path, dict[str, str]], run: Run
) -> None:
    bag, fake = forged
    rc, report = verify(run, bag, "--trust", bag.parent.parent / "dana.pub")
    assert_failed(rc, report)
    assert findings(report) == {
        ("untrusted-key", fake["Dana Reyes"]),
        ("untrusted-key", fake["Lee Okafor"]),
        ("untrusted-checkpoint", "custody/checkpoint.txt"),
    }
    assert {
        "kind": "untrusted-checkpoint",
        "subject": "custody/checkpoint.txt",
        "detail": "the checkpoint is not signed by any key you trust: everything in the bundle"
        " hangs on it",
    } in report["findings"]
    assert report["trusted_keys"] == []


# -- a second implementation, from docs/bundle-format.md alone ------------------------------


def doc_inclusion_verifier() -> Any:
    """The ``verify_inclusion`` of the format doc's section 8, executed as printed."""
    doc = (ROOT / "docs" / "bundle-format.md").read_text(encoding="utf-8")
    section = doc.split("## 8. ", 1)[1].split("\n## 9. ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {"sha256": lambda b: hashlib.sha256(b).digest()}
    exec(code, scope)
    return scope["verify_inclusion"]


def doc_verify(bag: Path) -> set[tuple[str, str]]:
    """An independent verifier of a folder bundle written from docs/bundle-format.md
    (sections 4 and 6 to 10) with hashlib, base64, json, re, rfc8785 and an Ed25519
    primitive only: no custody code.  Returns the findings (kind, subject)."""
    import re

    import rfc8785
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    def read(name: str) -> bytes:
        return (bag / name).read_bytes()

    def ed25519_ok(pub: bytes, sig: bytes, msg: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
            return True
        except InvalidSignature:
            return False

    out: set[tuple[str, str]] = set()
    # section 4: manifests
    listed = set()
    for alg in ("sha256", "sha512"):
        for line in read(f"manifest-{alg}.txt").decode().splitlines():
            digest, path = line.split(" ", 1)
            path = path.lstrip(" *")
            listed.add(path)
            if not (bag / path).is_file():
                out.add(("payload-missing", path))
            elif hashlib.new(alg, read(path)).hexdigest() != digest:
                out.add(("payload-digest", path))
    present = {p.relative_to(bag).as_posix() for p in (bag / "data").rglob("*") if p.is_file()}
    out |= {("payload-extra", p) for p in present - listed}
    for line in read("tagmanifest-sha256.txt").decode().splitlines():
        digest, path = line.split("  ", 1)
        if hashlib.sha256(read(path)).hexdigest() != digest:
            out.add(("tag-digest", path))
    # section 9: keys
    keys = {}
    for k in json.loads(read("custody/keys.json")):
        pub = base64.b64decode(k["public_key"], validate=True)
        if len(pub) != 32 or "sha256:" + hashlib.sha256(pub).hexdigest() != k["fingerprint"]:
            out.add(("key", k["fingerprint"]))
            continue
        keys[k["fingerprint"]] = (pub, k["name"])
    # section 6: events
    events = []
    for line in read("custody/events.jsonl").decode().splitlines():
        row = json.loads(line)
        b, subject = row["body"].encode(), f"event {row['seq']}"
        parsed = json.loads(b)
        if "sha256:" + hashlib.sha256(b).hexdigest() != row["hash"]:
            out.add(("event-hash", subject))
        if rfc8785.dumps(parsed) != b or (parsed["seq"], parsed["signer"]) != (
            row["seq"],
            row["signer"],
        ):
            out.add(("event-body", subject))
        if row["signer"] not in keys:
            out.add(("unknown-signer", subject))
        elif not ed25519_ok(keys[row["signer"]][0], base64.b64decode(row["signature"]), b):
            out.add(("signature", subject))
        events.append((row["seq"], b, parsed))
    # section 7: the checkpoint, a signed note
    meta = json.loads(read("custody/bundle.json"))
    note_text = read("custody/checkpoint.txt").decode()
    cut = note_text.rfind("\n\n")
    text, sig_lines = note_text[: cut + 1], note_text[cut + 2 :].splitlines()
    verified = False
    for sig_line in sig_lines:
        assert sig_line.startswith("\u2014 ")
        name, b64sig = sig_line[2:].split(" ")
        raw = base64.b64decode(b64sig)
        for pub, holder in keys.values():
            slug = re.sub(r"[^\w]+|_", "-", holder.strip().lower()).strip("-") or "custody"
            kid = hashlib.sha256(slug.encode() + b"\n\x01" + pub).digest()[:4]
            if (slug, kid) == (name, raw[:4]):
                verified = ed25519_ok(pub, raw[4:], text.encode())
    origin, size_s, root_b64 = text.splitlines()
    if not verified or origin != "custody/" + meta["case"]["id"]:
        out.add(("checkpoint", "custody/checkpoint.txt"))
        return out
    size, root = int(size_s), base64.b64decode(root_b64)
    # section 8: inclusion proofs
    verify_inclusion = doc_inclusion_verifier()
    proofs = json.loads(read("custody/proofs.json"))
    if proofs["tree_size"] != size:
        out.add(("proof", "custody/proofs.json"))
    by_seq = {p["seq"]: [bytes.fromhex(h) for h in p["proof"]] for p in proofs["proofs"]}
    for seq, b, _ in events:
        leaf = hashlib.sha256(b"\x00" + b).digest()
        if seq not in by_seq or not verify_inclusion(leaf, seq, size, by_seq[seq], root):
            out.add(("proof", f"event {seq}"))
    # section 10 step 8: payload against the signed collect digests
    collected = {
        p["data"]["item"]: p["data"]["digests"] for _, _, p in events if p["type"] == "collect"
    }
    for it in meta["items"]:
        if it["id"] not in collected:
            out.add(("item", it["id"]))
        elif "payload" in it:
            data = read(it["payload"])
            for alg in ("sha256", "sha512"):
                want = collected[it["id"]].get(alg)
                if want and hashlib.new(alg, data).hexdigest() != want:
                    out.add(("payload-digest", it["id"]))
    return out


def test_second_implementation_from_this_doc(bundles: Path) -> None:
    assert doc_verify(bundles / "all") == set()
    assert doc_verify(bundles / "item1") == set()

    bag = bundles / "all"
    writable(bag / "data" / "ITEM-1" / "exhibit-1.log").write_bytes(b"nothing to see here\n")
    rows = read_events(bag)
    seq = seq_of(bag, "transfer")
    (row,) = [r for r in rows if r["seq"] == seq]
    row["body"] = row["body"].replace(REASON, "routine archiving")
    row["hash"] = content_hash(row["body"].encode())
    write_events(bag, rows)
    remanifest(bag)
    assert doc_verify(bag) == {
        ("payload-digest", "ITEM-1"),
        ("signature", f"event {seq}"),
        ("proof", f"event {seq}"),
    }


def test_doc_inclusion_verifier_matches_custody() -> None:
    verify_inclusion = doc_inclusion_verifier()
    for size in range(1, 20):
        leaves = [merkle.leaf_hash(bytes([i])) for i in range(size)]
        root = merkle.root(leaves)
        for i in range(size):
            proof = merkle.inclusion_proof(leaves, i, size)
            assert verify_inclusion(leaves[i], i, size, proof, root)
            assert not verify_inclusion(leaves[(i + 1) % size], i, size, proof, root) or size == 1
            assert not verify_inclusion(leaves[i], i, size, [*proof, root], root)
            if proof:
                assert not verify_inclusion(leaves[i], i, size, proof[:-1], root)


# -- schemas ------------------------------------------------------------------------------


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def errors(v: Draft202012Validator, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in v.iter_errors(instance)
    ]


@pytest.mark.parametrize("name", ["all", "item1"])
def test_bundle_files_match_their_schemas(bundles: Path, name: str) -> None:
    bag = bundles / name
    meta = json.loads((bag / "custody" / "bundle.json").read_text())
    keys = json.loads((bag / "custody" / "keys.json").read_text())
    proofs = json.loads((bag / "custody" / "proofs.json").read_text())
    lines = read_events(bag)
    assert errors(validator("bundle.schema.json"), meta) == []
    assert errors(validator("bundle-keys.schema.json"), keys) == []
    assert errors(validator("bundle-proofs.schema.json"), proofs) == []
    line_v = validator("bundle-event-line.schema.json")
    body_v = validator("event-body.schema.json")
    for row in lines:
        assert errors(line_v, row) == [], row["seq"]
        assert errors(body_v, json.loads(row["body"])) == [], row["seq"]


def test_schemas_reject_what_verify_refuses(bundles: Path) -> None:
    bag = bundles / "all"
    meta = json.loads((bag / "custody" / "bundle.json").read_text())
    keys = json.loads((bag / "custody" / "keys.json").read_text())
    proofs = json.loads((bag / "custody" / "proofs.json").read_text())
    row = read_events(bag)[0]
    bv, kv = validator("bundle.schema.json"), validator("bundle-keys.schema.json")
    pv, lv = validator("bundle-proofs.schema.json"), validator("bundle-event-line.schema.json")
    # an item without stored bytes has no payload
    bare = {k: v for k, v in meta["items"][0].items() if k not in ("payload", "name_mapped")}
    bare |= {"outcome": "symlink", "sha256": None, "size": None}
    assert errors(bv, {**meta, "items": [bare]}) == []
    assert errors(bv, {**meta, "items": [{**bare, "payload": "data/ITEM-1/x"}]})
    assert errors(bv, {**meta, "items": [{**meta["items"][0], "sha256": None, "size": None}]})
    # an item named twice is left to the verifier ("disclosure": items differ from the
    # signed export event): uniqueItems over objects is quadratic in jsonschema
    assert errors(bv, {**meta, "schema_version": 2})
    assert errors(bv, {**meta, "items": [{**meta["items"][0], "payload": "data/../x"}]})
    assert errors(bv, {**meta, "items": [{**meta["items"][0], "payload": "/etc/passwd"}]})
    assert errors(kv, [{**keys[0], "fingerprint": "sha256:XYZ"}])
    assert errors(kv, [{**keys[0], "extra": 1}])
    assert errors(pv, {**proofs, "proofs": [{"seq": 0, "proof": ["00"]}]})
    assert errors(pv, {"proofs": proofs["proofs"]})
    assert errors(lv, {k: v for k, v in row.items() if k != "signature"})
    assert errors(lv, {**row, "body": {"type": "identity"}})
    assert errors(lv, {**row, "hash": "sha256:" + "A" * 64})
