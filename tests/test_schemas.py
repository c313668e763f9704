"""The JSON Schemas in schemas/ describe what custody really prints, and ship with it.

A demo case is made once (``custody demo``, isolated config dir) and
``custody log --json`` / ``custody verify --json`` output is validated against
``schemas/log-event.schema.json``, ``schemas/event-body.schema.json`` (each parsed
body) and ``schemas/verify-report.schema.json``.
"""

from __future__ import annotations

import base64
import configparser
import copy
import fnmatch
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = ROOT / "schemas"
SCHEMA_NAMES = (
    "event-body.schema.json",
    "log-event.schema.json",
    "verify-report.schema.json",
)


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def _errors(validator: Draft202012Validator, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


class Custody:
    """The custody CLI (in-process: conftest.invoke), with an isolated config dir and case."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
        self.env["CUSTODY_CONFIG_DIR"] = str(root / "cfg")

    def __call__(self, *args: str, case: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if case is not None:
            env["CUSTODY_CASE"] = str(case)
        return invoke(args, env=env, cwd=self.root)

    def json(self, *args: str, case: Path, expect: int = 0) -> Any:
        proc = self(*args, case=case)
        assert proc.returncode == expect, (args, proc.returncode, proc.stdout, proc.stderr)
        return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Custody, Path]:
    root = tmp_path_factory.mktemp("schemas")
    custody = Custody(root)
    proc = custody("demo", str(root / "demo"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    case = root / "demo" / "case-DEMO-001"
    assert (case / "custody.db").is_file()
    return custody, case


@pytest.fixture(scope="module")
def log(demo: tuple[Custody, Path]) -> list[dict[str, Any]]:
    custody, case = demo
    events = custody.json("log", "--json", case=case)
    assert isinstance(events, list) and events
    return events


# -- the schema files themselves ------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_schemas_are_package_data() -> None:
    """importlib.resources finds every schema in the package custody.schemas."""
    shipped = {p.name for p in files("custody.schemas").iterdir() if p.name.endswith(".json")}
    assert set(SCHEMA_NAMES) <= shipped
    for name in SCHEMA_NAMES:
        text = files("custody.schemas").joinpath(name).read_text(encoding="utf-8")
        assert json.loads(text) == json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


def test_setup_cfg_ships_the_schemas() -> None:
    """schemas/ is the package custody.schemas and its *.json files are package data,
    so a wheel (not only an editable install) carries them."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    packages = cfg["options"]["packages"].split()
    assert "custody.schemas" in packages
    mapping = dict(
        (part.strip() for part in line.split("=", 1))
        for line in cfg["options"]["package_dir"].strip().splitlines()
    )
    assert mapping.get("custody.schemas") == "schemas"
    globs = cfg["options.package_data"]["custody.schemas"].split()
    for name in SCHEMA_NAMES:
        assert any(fnmatch.fnmatch(name, g) for g in globs), (name, globs)


# -- custody log --json ---------------------------------------------------------------


def test_log_events_match_log_event_schema(log: list[dict[str, Any]]) -> None:
    v = _validator("log-event.schema.json")
    problems = {ev["seq"]: _errors(v, ev) for ev in log}
    assert not any(problems.values()), problems


def test_event_bodies_match_event_body_schema(log: list[dict[str, Any]]) -> None:
    v = _validator("event-body.schema.json")
    problems = {ev["seq"]: _errors(v, json.loads(ev["body"])) for ev in log}
    assert not any(problems.values()), problems


def test_demo_exercises_every_documented_event_type(log: list[dict[str, Any]]) -> None:
    types = {ev["type"] for ev in log}
    assert {"case.open", "identity", "collection.start", "collect", "collection.end"} <= types
    outcomes = {json.loads(ev["body"])["data"]["outcome"] for ev in log if ev["type"] == "collect"}
    assert {"collected", "directory", "symlink"} <= outcomes


def test_log_fields_agree_with_the_signed_body(log: list[dict[str, Any]]) -> None:
    """What docs/ledger-format.md promises: hash = sha256 of the body bytes, prev
    chains, the convenience fields repeat the body, and each signature verifies
    (pure Ed25519 over the same bytes) with the key of the signer's identity event
    (the owner's: of the case's opening event)."""
    keys: dict[str, bytes] = {}
    prev = None
    for i, ev in enumerate(log):
        raw = ev["body"].encode("utf-8")
        body = json.loads(raw)
        assert ev["hash"] == "sha256:" + hashlib.sha256(raw).hexdigest()
        assert body["seq"] == ev["seq"] == i
        for k in ("prev", "time", "type", "signer"):
            assert body[k] == ev[k], k
        assert body["data"].get("item") == ev["item"]
        if prev is not None:
            assert ev["prev"] == prev
        prev = ev["hash"]
        if body["type"] in ("identity", "case.open"):
            key = body["data"] if body["type"] == "identity" else body["data"]["owner"]
            pub = base64.b64decode(key["public_key"], validate=True)
            assert key["fingerprint"] == "sha256:" + hashlib.sha256(pub).hexdigest()
            if body["type"] == "case.open" or key["registration"] == "self":
                assert body["signer"] == key["fingerprint"]
            keys[key["fingerprint"]] = pub
        Ed25519PublicKey.from_public_bytes(keys[ev["signer"]]).verify(
            base64.b64decode(ev["signature"], validate=True), raw
        )
        assert base64.b64decode(ev["signer_public_key"]) == keys[ev["signer"]]
        # the demo's owner (the collector) attests itself and counsel's key
        owner = log[0]["signer"]
        if ev["signer"] == owner:
            assert (ev["signer_standing"], ev["signer_attested_by"]) == ("owner", owner)
        else:
            assert (ev["signer_standing"], ev["signer_attested_by"]) == ("attested", owner)
        assert ev["signer_attested_by_name"] == "Demo Collector"
        if body["type"] == "collect" and "store" in body["data"]:
            sha = body["data"]["digests"]["sha256"]
            assert body["data"]["store"] == f"sha256/{sha[:2]}/{sha}"


def test_first_event_links_to_the_case_header(
    demo: tuple[Custody, Path], log: list[dict[str, Any]]
) -> None:
    _, case = demo
    conn = sqlite3.connect(f"file:{case / 'custody.db'}?mode=ro", uri=True)
    try:
        header, stored = conn.execute("SELECT header, hash FROM case_info").fetchone()
    finally:
        conn.close()
    assert stored == "sha256:" + hashlib.sha256(header.encode("utf-8")).hexdigest()
    assert log[0]["prev"] == stored
    assert set(json.loads(header)) == {"v", "case_id", "title", "created", "uuid", "tool", "rules"}
    assert json.loads(header)["rules"] == 2


def test_body_schema_rejects_what_the_format_forbids(log: list[dict[str, Any]]) -> None:
    """The schema is not vacuous: mutations a second implementation might get wrong fail."""
    v = _validator("event-body.schema.json")
    collect = next(
        json.loads(ev["body"])
        for ev in log
        if ev["type"] == "collect" and json.loads(ev["body"])["data"]["outcome"] == "collected"
    )
    assert not _errors(v, collect)

    def broken(mutate: Any) -> list[str]:
        body = copy.deepcopy(collect)
        mutate(body)
        return _errors(v, body)

    assert broken(lambda b: b.update(time=b["time"][:-4] + "Z"))  # 6 fractional digits
    assert broken(lambda b: b.update(time=b["time"].replace("Z", "+00:00")))
    assert broken(lambda b: b.update(seq=str(b["seq"])))
    assert broken(lambda b: b.update(extra=1))
    assert broken(lambda b: b.update(signer=b["signer"].removeprefix("sha256:")))
    for big in ("mtime_ns", "inode", "device"):  # decimal strings, never JSON numbers
        assert broken(lambda b, k=big: b["data"]["source"].update({k: int(b["data"]["source"][k])}))
    assert broken(lambda b: b["data"].update(size=2**53))
    assert broken(lambda b: b["data"].update(size=1.5))
    assert broken(lambda b: b["data"]["digests"].pop("sha256"))
    assert broken(lambda b: b["data"].pop("store"))
    assert broken(lambda b: b["data"].update(outcome="skipped"))
    assert broken(lambda b: b["data"].update(outcome="directory"))  # has digests
    assert broken(lambda b: b["data"]["path"].update(hex="2F"))


def test_log_event_schema_rejects_bad_signature_encoding(log: list[dict[str, Any]]) -> None:
    v = _validator("log-event.schema.json")
    ev = dict(log[0])
    sig = base64.b64decode(ev["signature"])
    for bad in (
        base64.urlsafe_b64encode(b"\xfb" * 64).decode(),  # URL-safe alphabet
        ev["signature"].rstrip("="),  # no padding
        base64.b64encode(sig[:63]).decode(),  # 63 bytes
    ):
        assert _errors(v, {**ev, "signature": bad}), bad


# -- custody verify --json ------------------------------------------------------------


def test_verify_report_ok_matches_schema(demo: tuple[Custody, Path]) -> None:
    custody, case = demo
    v = _validator("verify-report.schema.json")
    for args in (("verify", "--json"), ("verify", "--json", "--quick")):
        report = custody.json(*args, case=case)
        assert report["ok"] is True and report["findings"] == []
        assert not _errors(v, report), _errors(v, report)


def test_verify_report_with_findings_matches_schema(
    demo: tuple[Custody, Path], tmp_path: Path
) -> None:
    custody, case = demo
    bad = tmp_path / "tampered"
    shutil.copytree(case, bad)
    obj = next(p for p in sorted((bad / "store" / "sha256").rglob("*")) if p.is_file())
    obj.chmod(stat.S_IRUSR | stat.S_IWUSR)
    with obj.open("ab") as f:
        f.write(b"tampered")
    report = custody.json("verify", "--json", case=bad, expect=1)
    assert report["ok"] is False
    kinds = {f["kind"] for f in report["findings"]}
    assert {"object-size", "object-digest", "object-writable"} <= kinds, report
    v = _validator("verify-report.schema.json")
    assert not _errors(v, report), _errors(v, report)
    # and the schema ties ok to findings
    assert _errors(v, {**report, "ok": True})
    assert _errors(v, {**report, "findings": [], "ok": False})


def test_every_finding_kind_is_in_the_schema() -> None:
    """Every custody.findings.Kind is allowed by the schema, so a new check cannot
    produce reports that fail their own schema (kinds are defined in one module)."""
    from custody.findings import Kind

    schema = json.loads((SCHEMA_DIR / "verify-report.schema.json").read_text(encoding="utf-8"))
    allowed = set(schema["$defs"]["finding"]["properties"]["kind"]["enum"])
    kinds = {k.kind for k in Kind}
    assert kinds == allowed, f"verify-report.schema.json differs: {sorted(kinds ^ allowed)}"
