"""Trust is by key (docs/bundle-format.md §10.1): ``bundle verify --trust`` and
``report --bundle --trust`` decide who signed the events and the checkpoint by the
public key that verified each signature, never by a name.

Bundles are made through the library from real cases (rules 2: Dana Reyes opens
the case and owns it, attests Lee Okafor's key, hands ITEM-1 to him; he receives
it), then forged the way someone holding only the bundle (and keys of their own)
would: events re-signed, the export event's list and the checkpoint re-made, the
proofs rebuilt, keys.json rewritten and the tag manifest recomputed, so the bag is
consistent and only the keys can tell.  Findings are asserted by kind, subject and
seq, through :func:`custody.bundle.verify_bundle` and through the CLI in-process.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from custody import merkle, note
from custody.bundle import export_bundle, verify_bundle
from custody.bundle.verify import BundleReport
from custody.canonical import canonical_json, content_hash
from custody.checkpoint import note_key_name, origin_of
from custody.collect import collect
from custody.keys import Signer, fingerprint, public_key_pem
from custody.ledger import Ledger
from custody.lifecycle import transfer_id
from custody.writers import lifecycle_event, receive, rotate_key, transfer
from custody_cli.main import cli

CASE_ID = "2026-017"
FILES = {"exhibit-1.log": b"sshd: Accepted password for svc\n" * 20, "payroll.csv": b"id\n7\n"}


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class Person:
    """Someone with a key: the private key (tests hold them all), a name and role."""

    name: str
    role: str
    key: Ed25519PrivateKey

    @property
    def signer(self) -> Signer:
        return Signer(self.key, self.name, self.role)

    @property
    def fp(self) -> str:
        return fingerprint(raw_public(self.key))

    @property
    def who(self) -> str:
        return f"{self.name} ({self.role}) {self.fp}"

    def entry(self, name: str | None = None) -> dict[str, str]:
        """This key as a keys.json entry (under ``name`` if given)."""
        return {
            "fingerprint": self.fp,
            "name": name or self.name,
            "role": self.role,
            "public_key": b64(raw_public(self.key)),
        }

    def pub_file(self, where: Path) -> Path:
        p = where / f"{self.name.split()[0].lower()}-{self.fp[7:15]}.pub"
        p.write_text(public_key_pem(raw_public(self.key)))
        return p


def person(name: str, role: str) -> Person:
    return Person(name, role, Ed25519PrivateKey.generate())


def evidence(root: Path) -> list[bytes]:
    d = root / "evidence"
    d.mkdir()
    for n, data in FILES.items():
        (d / n).write_bytes(data)
    return [os.fsencode(d / n) for n in FILES]


@dataclass
class World:
    root: Path
    dana: Person  # the owner
    lee: Person  # attested by the owner, receives ITEM-1
    bundle: Path  # every item, exported by Dana


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("trust")
    dana, lee = person("Dana Reyes", "collector"), person("Lee Okafor", "counsel")
    with Ledger.create(root / "case", CASE_ID, "Payroll server breach", owner=dana.signer) as led:
        collect(
            led, dana.signer, evidence(root), reason="breach", algorithms=["sha256"], selftest=False
        )
        led.register_identity(dana.signer, lee.signer.identity)
        t = transfer(led, dana.signer, ["ITEM-1"], "Lee Okafor", "for counsel's review")
        receive(led, lee.signer, transfer_id(t.seq))
        export_bundle(led, dana.signer, [], root / "bundle")
    return World(root, dana, lee, root / "bundle")


@pytest.fixture
def bag(world: World, tmp_path: Path) -> Path:
    """A fresh copy of the world's folder bundle."""
    dest = tmp_path / "bag"
    shutil.copytree(world.bundle, dest)
    return dest


# -- reading and forging a folder bundle ----------------------------------------------


def read_rows(bag: Path) -> list[dict[str, Any]]:
    text = (bag / "custody" / "events.jsonl").read_text(encoding="utf-8")
    return sorted((json.loads(line) for line in text.splitlines()), key=lambda r: r["seq"])


def first_seq(bag: Path, signer: str) -> int:
    return min(int(r["seq"]) for r in read_rows(bag) if r["signer"] == signer)


def retag(bag: Path) -> None:
    """Recompute tagmanifest-sha256.txt over every tag file (unsigned: anyone can)."""
    names = sorted(
        p.relative_to(bag).as_posix()
        for p in bag.rglob("*")
        if p.is_file() and not p.relative_to(bag).as_posix().startswith(("data/", "tagmanifest-"))
    )
    (bag / "tagmanifest-sha256.txt").write_text(
        "".join(f"{hashlib.sha256((bag / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    )


def write_keys(bag: Path, entries: list[dict[str, str]]) -> None:
    (bag / "custody" / "keys.json").write_text(json.dumps(entries, indent=2) + "\n")


def reforge(
    bag: Path,
    keyring: dict[str, Ed25519PrivateKey],
    *,
    checkpoint: tuple[str, Ed25519PrivateKey],
    keys: list[dict[str, str]],
    swap: dict[str, str] | None = None,
    add: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
    rules: int | None = None,
) -> None:
    """Re-make the folder bundle ``bag`` around its events, consistently.

    ``swap`` replaces strings (fingerprints, public keys) in every body; ``add``
    gets the bodies (in seq order, the export event left out) and returns bodies to
    append, each without ``seq``/``case``/``v``/``time``/``prev``.  Every body is
    re-hashed (later bodies' references to a re-hashed event follow) and re-signed
    with ``keyring[signer]``; the export event, moved after the added events, lists
    them all (and states ``rules`` if given); proofs are of a tree with a filler
    leaf at every undisclosed seq; the checkpoint is signed by ``checkpoint`` (its
    note key name, its key); keys.json becomes ``keys``; the tag manifest follows."""
    rows = read_rows(bag)
    swap = dict(swap or {})
    export = next(r for r in rows if json.loads(r["body"])["type"] == "export")
    bodies = []
    for r in rows:
        if r is export:
            continue
        text = r["body"]
        for old, new in swap.items():
            text = text.replace(old, new)
        body = json.loads(text)
        bodies.append(body)
        new_hash = content_hash(canonical_json(body))
        swap[r["hash"]] = new_hash  # receipts name their transfer by hash
    prev = content_hash(canonical_json(bodies[-1]))
    seq = max(b["seq"] for b in bodies)
    for extra in add(bodies) if add else []:
        seq += 1
        body = {"case": CASE_ID, "v": 1, "seq": seq, "time": bodies[-1]["time"], "prev": prev}
        body.update(extra)
        bodies.append(body)
        prev = content_hash(canonical_json(body))
    exp = json.loads(export["body"])
    for old, new in swap.items():
        exp = json.loads(json.dumps(exp).replace(old, new))
    exp["seq"], exp["prev"] = seq + 1, prev
    exp["data"]["events"] = [
        {"seq": b["seq"], "hash": content_hash(canonical_json(b))} for b in bodies
    ]
    if rules is not None:
        exp["data"]["rules"] = rules
    bodies.append(exp)
    out = []
    for b in bodies:
        raw = canonical_json(b)
        out.append(
            {
                "seq": b["seq"],
                "hash": content_hash(raw),
                "prev": b["prev"],
                "signer": b["signer"],
                "signature": b64(keyring[b["signer"]].sign(raw)),
                "body": raw.decode("utf-8"),
            }
        )
    (bag / "custody" / "events.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in out),
        encoding="utf-8",
    )
    size = exp["seq"] + 1
    leaves = [merkle.leaf_hash(f"undisclosed {i}".encode()) for i in range(size)]
    for r in out:
        leaves[r["seq"]] = merkle.leaf_hash(r["body"].encode("utf-8"))
    root = merkle.root(leaves)
    proofs = {
        "tree_size": size,
        "proofs": [
            {
                "seq": r["seq"],
                "proof": [h.hex() for h in merkle.inclusion_proof(leaves, r["seq"], size)],
            }
            for r in out
        ],
    }
    (bag / "custody" / "proofs.json").write_text(json.dumps(proofs, indent=2) + "\n")
    name, cp_key = checkpoint
    text = note.format_checkpoint(note.Checkpoint(origin_of(CASE_ID), size, root, []))
    (bag / "custody" / "checkpoint.txt").write_text(
        note.sign_note(text, note_key_name(name), cp_key.sign, raw_public(cp_key))
    )
    meta = json.loads((bag / "custody" / "bundle.json").read_text())
    meta.update(export_event=exp["seq"], checkpoint_event=size, exported_by=exp["signer"])
    if rules is not None:
        meta["rules"] = rules
    (bag / "custody" / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n")
    write_keys(bag, keys)
    retag(bag)


# -- verifying ------------------------------------------------------------------------


def found(report: BundleReport) -> set[tuple[str, str, int | None]]:
    return {(f.kind.kind, f.subject, f.seq) for f in report.findings}


def cli_verify(bag: Path, *flags: str | Path) -> tuple[int, dict[str, Any]]:
    """``custody bundle verify BAG --json FLAGS`` in-process."""
    result = CliRunner().invoke(cli, ["bundle", "verify", str(bag), "--json", *map(str, flags)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.output)


def kinds_subjects(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["kind"], f["subject"]) for f in report["findings"]}


# -- the name-matching forgery ----------------------------------------------------------


def test_new_key_with_the_collectors_name_fails_with_trust(
    world: World, bag: Path, tmp_path: Path
) -> None:
    """The attack: every event and the checkpoint re-signed with new keys, the one
    in Dana's place carrying her name, and Dana's real public key added to
    keys.json.  Matched by name, the checkpoint looked signed by Dana and the bundle
    verified with ``--trust dana.pub``; matched by key, it fails."""
    dana, lee = world.dana, world.lee
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
    pub = dana.pub_file(tmp_path)
    # consistent on its own say-so: no finding without anchors
    assert verify_bundle(bag).ok

    report = verify_bundle(bag, trust=[str(pub)])
    assert found(report) == {
        ("untrusted-key", mallory.fp, 0),
        ("untrusted-key", lee2.fp, first_seq(bag, lee2.fp)),
        ("untrusted-checkpoint", "custody/checkpoint.txt", None),
    }
    # Dana's real key signed nothing here: ignored, reported, never listed as trusted
    assert report.trusted_keys == []
    assert report.unused_keys == [dana.who]
    assert sorted(report.self_asserted_keys) == sorted([mallory.who, lee2.who])

    rc, out = cli_verify(bag, "--trust", pub)
    assert (rc, out["ok"]) == (1, False)
    assert kinds_subjects(out) == {
        ("untrusted-key", mallory.fp),
        ("untrusted-key", lee2.fp),
        ("untrusted-checkpoint", "custody/checkpoint.txt"),
    }
    assert (out["trusted_keys"], out["unused_keys"]) == ([], [dana.who])
    # trusting the fingerprint instead of the file: the same
    rc, out = cli_verify(bag, "--trust", dana.fp)
    assert rc == 1 and len(out["findings"]) == 3

    # report --bundle --trust verifies the same way
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "--bundle",
            str(bag),
            "--trust",
            str(pub),
            "--format",
            "json",
            "--out",
            str(tmp_path / "r.json"),
        ],
    )
    assert result.exit_code == 1, result.output
    model = json.loads((tmp_path / "r.json").read_text())
    assert {(f["kind"], f["subject"]) for f in model["verification"]["findings"]} == {
        ("untrusted-key", mallory.fp),
        ("untrusted-key", lee2.fp),
        ("untrusted-checkpoint", "custody/checkpoint.txt"),
    }


def test_checkpoint_signed_by_a_namesake_of_the_trusted_exporter_fails(
    world: World, bag: Path
) -> None:
    """Only the checkpoint re-signed, by a new key under Dana's note key name (its
    public key added to keys.json): the events are Dana's and Lee's own, but the
    checkpoint everything hangs on is not signed by a key anyone trusts."""
    dana, lee = world.dana, world.lee
    mallory = person("Dana Reyes", "collector")
    reforge(
        bag,
        {dana.fp: dana.key, lee.fp: lee.key},  # the events: untouched in substance
        checkpoint=("Dana Reyes", mallory.key),
        keys=[dana.entry(), lee.entry(), mallory.entry()],
    )
    report = verify_bundle(bag, trust=[dana.fp])
    assert found(report) == {("untrusted-checkpoint", "custody/checkpoint.txt", None)}
    assert sorted(report.trusted_keys) == sorted([dana.who, lee.who])
    assert report.unused_keys == []  # the checkpoint's key is used: it signed the checkpoint
    assert report.self_asserted_keys == [mallory.who]


# -- genuine bundles --------------------------------------------------------------------


def test_genuine_bundle_passes_with_the_owner_as_only_anchor(
    world: World, bag: Path, tmp_path: Path
) -> None:
    """Lee received ITEM-1 and signed the receipt; the owner attested his key in
    the bundle's own signed identity events, so trusting the owner is enough."""
    dana, lee = world.dana, world.lee
    for require in (False, True):
        report = verify_bundle(bag, trust=[str(dana.pub_file(tmp_path))], require_trusted=require)
        assert (report.ok, found(report)) == (True, set())
        assert sorted(report.trusted_keys) == sorted([dana.who, lee.who])
        assert (report.self_asserted_keys, report.unused_keys, report.warnings) == ([], [], [])
    rc, out = cli_verify(bag, "--trust", dana.pub_file(tmp_path))
    assert (rc, out["ok"], out["findings"], out["warnings"]) == (0, True, [], [])
    assert sorted(out["trusted_keys"]) == sorted([dana.who, lee.who])
    assert out["unused_keys"] == []
    # the human form: verified, without a self-asserted warning
    result = CliRunner().invoke(cli, ["bundle", "verify", str(bag), "--trust", dana.fp])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("VERIFIED:")
    assert "Warning" not in result.output


def test_anchor_that_is_not_the_owner_vouches_only_for_itself(world: World, bag: Path) -> None:
    """Trusting Lee alone: Lee is no owner, so Dana (who signed the case's opening,
    the collections and the export) is an untrusted signer, and so is the
    checkpoint she signed."""
    dana, lee = world.dana, world.lee
    report = verify_bundle(bag, trust=[lee.fp])
    assert found(report) == {
        ("untrusted-key", dana.fp, 0),
        ("untrusted-checkpoint", "custody/checkpoint.txt", None),
    }
    assert (report.trusted_keys, report.self_asserted_keys) == ([lee.who], [dana.who])
    rc, out = cli_verify(bag, "--trust", lee.fp)
    assert rc == 1
    assert kinds_subjects(out) == {
        ("untrusted-key", dana.fp),
        ("untrusted-checkpoint", "custody/checkpoint.txt"),
    }


def test_owner_rotated_key_trusted_by_the_old_or_the_new_key(tmp_path: Path) -> None:
    """Dana rotates her key and exports with the new one: trusting her old key (the
    one counsel was given) trusts its rotation, and trusting the new key trusts the
    key it co-signed as its predecessor."""
    dana, dana2 = person("Dana Reyes", "collector"), person("Dana Reyes", "collector")
    with Ledger.create(tmp_path / "case", CASE_ID, "t", owner=dana.signer) as led:
        collect(
            led,
            dana.signer,
            evidence(tmp_path),
            reason="breach",
            algorithms=["sha256"],
            selftest=False,
        )
        rotate_key(led, dana.signer, dana2.signer)
        lifecycle_event(led, dana2.signer, "seal", ["ITEM-1"], "sealed in bag 0042")
        export_bundle(led, dana2.signer, [], tmp_path / "bundle")
    bag = tmp_path / "bundle"
    for anchor in (dana.fp, dana2.fp):
        report = verify_bundle(bag, trust=[anchor], require_trusted=True)
        assert (report.ok, found(report)) == (True, set()), anchor
        assert sorted(report.trusted_keys) == sorted([dana.who, dana2.who])
    # neither key trusted: both are merely self-asserted (and, required, findings)
    report = verify_bundle(bag, require_trusted=True)
    assert found(report) == {
        ("untrusted-key", dana.fp, 0),
        ("untrusted-key", dana2.fp, first_seq(bag, dana2.fp)),
    }


# -- keys.json entries no event uses ------------------------------------------------------


def test_unused_key_in_keys_json_is_ignored_and_reported(
    world: World, bag: Path, tmp_path: Path
) -> None:
    dana, lee = world.dana, world.lee
    eve = person("Eve Marsh", "analyst")
    entries = json.loads((bag / "custody" / "keys.json").read_text())
    write_keys(bag, [*entries, eve.entry()])
    retag(bag)
    warning = f"keys.json lists {eve.who}, a key that signed nothing in this bundle: ignored"
    # trusting the owner: verified, the extra key named in a warning only
    report = verify_bundle(bag, trust=[dana.fp])
    assert (report.ok, report.unused_keys, report.warnings) == (True, [eve.who], [warning])
    assert sorted(report.trusted_keys) == sorted([dana.who, lee.who])
    # trusting the extra key itself lists it nowhere as trusted: it vouches for nothing
    report = verify_bundle(bag, trust=[dana.fp, eve.fp])
    assert (report.ok, report.unused_keys) == (True, [eve.who])
    assert eve.who not in report.trusted_keys + report.self_asserted_keys
    # without anchors: not a self-asserted key either, and --require-trusted ignores it
    report = verify_bundle(bag, require_trusted=True)
    assert eve.fp not in {f.subject for f in report.findings}
    assert eve.who not in report.self_asserted_keys
    rc, out = cli_verify(bag, "--trust", dana.pub_file(tmp_path))
    assert (rc, out["ok"], out["unused_keys"], out["warnings"]) == (0, True, [eve.who], [warning])
    result = CliRunner().invoke(cli, ["bundle", "verify", str(bag), "--trust", dana.fp])
    assert result.exit_code == 0
    assert f"Warning: {warning}\n" in result.output


# -- attestation only counts from a trusted owner ---------------------------------------


def forge_attested_by_a_self_asserted_key(bag: Path, w: World) -> tuple[Person, Person]:
    """Eve registers herself (self-asserted) and "attests" Mallory, who then signs a
    note; everything else, the export and the checkpoint are Dana's own."""
    eve, mallory = person("Eve Marsh", "analyst"), person("Mallory Quinn", "analyst")

    def identity(p: Person, registration: str) -> dict[str, Any]:
        return {
            "algorithm": "ed25519",
            "fingerprint": p.fp,
            "name": p.name,
            "public_key": b64(raw_public(p.key)),
            "registration": registration,
            "role": p.role,
        }

    def add(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        note_ = {"items": ["ITEM-2"], "reason": "looked at it", "location": ""}
        return [
            {"type": "identity", "signer": eve.fp, "data": identity(eve, "self")},
            {"type": "identity", "signer": eve.fp, "data": identity(mallory, "imported")},
            {"type": "note", "signer": mallory.fp, "data": note_},
        ]

    reforge(
        bag,
        {w.dana.fp: w.dana.key, w.lee.fp: w.lee.key, eve.fp: eve.key, mallory.fp: mallory.key},
        checkpoint=("Dana Reyes", w.dana.key),
        keys=[w.dana.entry(), w.lee.entry(), eve.entry(), mallory.entry()],
        add=add,
    )
    return eve, mallory


def test_signer_attested_by_a_self_asserted_key_is_untrusted(world: World, bag: Path) -> None:
    """The replay refuses Eve's attestation, and neither Eve nor Mallory is trusted."""
    dana, lee = world.dana, world.lee
    eve, mallory = forge_attested_by_a_self_asserted_key(bag, world)
    eve_seq, attest_seq, mallory_seq = (
        first_seq(bag, eve.fp),
        first_seq(bag, eve.fp) + 1,
        first_seq(bag, mallory.fp),
    )
    report = verify_bundle(bag, trust=[dana.fp])
    assert found(report) == {
        ("authority", f"event {attest_seq}", attest_seq),
        ("untrusted-key", eve.fp, eve_seq),
        ("untrusted-key", mallory.fp, mallory_seq),
    }
    assert sorted(report.trusted_keys) == sorted([dana.who, lee.who])
    rc, out = cli_verify(bag, "--trust", dana.fp)
    assert rc == 1
    assert ("untrusted-key", mallory.fp) in kinds_subjects(out)


def test_rules_1_bundle_trusts_only_the_anchors(world: World, bag: Path) -> None:
    """The same events, stated (and signed, by Dana) to be under rules 1, where
    there is no owner: an attestation vouches for nothing, so trusting Dana leaves
    Lee an untrusted signer."""
    dana, lee = world.dana, world.lee
    reforge(
        bag,
        {dana.fp: dana.key, lee.fp: lee.key},
        checkpoint=("Dana Reyes", dana.key),
        keys=[dana.entry(), lee.entry()],
        rules=1,
    )
    report = verify_bundle(bag, trust=[dana.fp])
    assert report.rules == 1
    assert found(report) == {("untrusted-key", lee.fp, first_seq(bag, lee.fp))}
    assert (report.trusted_keys, report.self_asserted_keys) == ([dana.who], [lee.who])
