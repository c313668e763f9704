"""Issue 13: every field that ``bundle verify``, ``report --bundle`` and ``bundle
import`` use is checked against signed data, and the derived tables an export or a
case's verify relies on are checked against (or replaced by) the signed events.

Each attack edits an unsigned file or table the way anyone holding it can (a
bundle's tag manifest recomputed; SQL with the append-only triggers put back) and
must now be a finding, not a pass."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Run, template_case
from tampering import bypass, q, read_events, retag, sqlite_ok

from custody.canonical import content_hash

CASE_ID = "2026-017"
FORGED_FP = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A case with two items, ITEM-1 handed over to Lee and received; its bundle
    of every item (a folder); and a lab case that imported that bundle."""
    root = tmp_path_factory.mktemp("signed-fields")
    run = template_case(root, counsel=True).run
    case = root / "case"
    (root / "a.log").write_bytes(b"log line\n" * 30)
    (root / "b.csv").write_bytes(b"id,name\n" + b"7,J. Doe\n" * 12)
    run("collect", "--reason", "r", root / "a.log", root / "b.csv", cwd=case, check=True)
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
    out = run(
        "transfer",
        "ITEM-1",
        "--to",
        "Lee Okafor",
        "--reason",
        "review",
        "--json",
        cwd=case,
        check=True,
    )
    run("receive", json.loads(out.stdout)["id"], "--key", root / "lee.pem", cwd=case, check=True)
    run("bundle", "export", "--all", "--out", root / "all", cwd=case, check=True)
    lab = root / "lab"
    run("init", lab, "--case-id", "LAB-1", "--title", "lab", check=True)
    run("bundle", "import", root / "all", "--case", lab, "--trust", root / "dana.pub", check=True)
    keys = {
        k["name"]: k["fingerprint"]
        for k in json.loads((root / "all/custody/keys.json").read_text())
    }
    return {"root": root, "run": run, "keys": keys}


@pytest.fixture
def world(template: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Fresh copies of the template's case, bundle and lab case."""
    root: Path = template["root"]
    for name in ("case", "all", "lab"):
        shutil.copytree(root / name, tmp_path / name, symlinks=True)
    base: Run = template["run"]
    run = Run(env=dict(base.env), cwd=tmp_path)
    return {"dir": tmp_path, "run": run, "keys": template["keys"]}


def _verify(run: Run, bag: Path, *flags: str) -> tuple[int, set[tuple[str, str]]]:
    proc = run("bundle", "verify", bag, "--json", "--accept-self-asserted", *flags)
    assert "Traceback" not in proc.stderr, proc.stderr
    out = json.loads(proc.stdout)
    return proc.returncode, {(f["kind"], f["subject"]) for f in out["findings"]}


def _shown(model: Any) -> str:
    """A report model as text, without its findings (which quote forged values)."""

    def strip(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k != "findings"}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o

    return json.dumps(strip(model), ensure_ascii=False)


def _edit_json(bag: Path, name: str, change: Callable[[Any], None]) -> None:
    path = bag / "custody" / name
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    retag(bag)


def _set(*keys: str | int, value: Any) -> Callable[[Any], None]:
    def change(doc: Any) -> None:
        for k in keys[:-1]:
            doc = doc[k]
        doc[keys[-1]] = value

    return change


def _forge_header(doc: Any) -> None:
    """A header with another title and created time, its hash recomputed, and
    bundle.json's copies made to agree: only event 0's signed prev disagrees."""
    header = json.loads(doc["case"]["header"])
    header |= {"title": "Forged title", "created": "1999-01-01T00:00:00.000000000Z"}
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    doc["case"] |= {
        "header": text,
        "header_hash": content_hash(text.encode()),
        "title": "Forged title",
    }


BUNDLE_JSON = "custody/bundle.json"
# (name, the edit of bundle.json, the forged value as it would be printed, findings)
ATTACKS: list[tuple[str, Callable[[Any], None], str, set[tuple[str, str]]]] = [
    (
        "title",
        _set("case", "title", value="Forged title"),
        "Forged title",
        {("disclosure", BUNDLE_JSON)},
    ),
    ("header", _forge_header, "Forged title", {("disclosure", BUNDLE_JSON)}),
    (
        "header_hash",
        _set("case", "header_hash", value="sha256:" + "00" * 32),
        "sha256:" + "00" * 32,
        {("disclosure", BUNDLE_JSON)},
    ),
    (
        "exported",
        _set("exported", value="2000-01-01T00:00:00Z"),
        "2000-01-01T00:00:00",
        {("disclosure", BUNDLE_JSON)},
    ),
    ("exported_by", _set("exported_by", value=FORGED_FP), FORGED_FP, {("disclosure", BUNDLE_JSON)}),
    (
        "checkpoint_event",
        _set("checkpoint_event", value=4242),
        "4242",
        {("disclosure", BUNDLE_JSON)},
    ),
    ("path", _set("items", 0, "path", value="/etc/forged"), "/etc/forged", {("item", "ITEM-1")}),
    (
        "sha256",
        _set("items", 0, "sha256", value="cd" * 32),
        "cd" * 32,
        {("item", "ITEM-1")},
    ),
    ("size", _set("items", 0, "size", value=987654321), "987654321", {("item", "ITEM-1")}),
    ("outcome", _set("items", 0, "outcome", value="unstable"), "unstable", {("item", "ITEM-1")}),
]


@pytest.mark.parametrize(
    ("change", "forged", "want"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS]
)
def test_bundle_json_field_edited(
    world: dict[str, Any],
    change: Callable[[Any], None],
    forged: str,
    want: set[tuple[str, str]],
) -> None:
    run, d = world["run"], world["dir"]
    bag = d / "all"
    assert _verify(run, bag) == (0, set())
    _edit_json(bag, "bundle.json", change)
    assert _verify(run, bag) == (1, want)
    assert _verify(run, bag, "--trust", world["keys"]["Dana Reyes"]) == (1, want)

    proc = run("report", "--bundle", bag, "--format", "json", "--out", "-")
    assert proc.returncode == 1, proc.stderr
    model = json.loads(proc.stdout)
    assert model["verification"]["ok"] is False
    assert {(f["kind"], f["subject"]) for f in model["verification"]["findings"]} == want
    # taken from the signed events, not from bundle.json: shown only in the findings
    assert forged not in _shown(model)
    assert model["case"]["id"] == CASE_ID

    lab = d / "lab"
    before = sqlite_ok(lab / "custody.db", "SELECT count(*) FROM events;")
    proc = run("bundle", "import", bag, "--case", lab)
    assert proc.returncode == 1, proc.stderr
    assert "failed verification" in proc.stderr
    assert sqlite_ok(lab / "custody.db", "SELECT count(*) FROM events;") == before


def test_case_id_edited(world: dict[str, Any]) -> None:
    """The case id is the header's and the checkpoint's origin: both disagree."""
    run, bag = world["run"], world["dir"] / "all"
    _edit_json(bag, "bundle.json", _set("case", "id", value="OTHER-1"))
    rc, found = _verify(run, bag)
    assert (rc, found) == (
        1,
        {("disclosure", BUNDLE_JSON), ("checkpoint", "custody/checkpoint.txt")},
    )


@pytest.mark.parametrize(("field", "value"), [("name", "Mallory Forged"), ("role", "judge")])
def test_keys_json_name_or_role_edited(world: dict[str, Any], field: str, value: str) -> None:
    run, d = world["run"], world["dir"]
    bag = d / "all"
    lee = world["keys"]["Lee Okafor"]

    def change(doc: Any) -> None:
        next(k for k in doc if k["fingerprint"] == lee)[field] = value

    _edit_json(bag, "keys.json", change)
    assert _verify(run, bag) == (1, {("key", lee)})
    proc = run("bundle", "verify", bag, "--json", "--trust", world["keys"]["Dana Reyes"])
    out = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert all(value not in k for k in out["trusted_keys"] + out["self_asserted_keys"])
    assert f"Lee Okafor (counsel) {lee}" in out["trusted_keys"]

    proc = run(
        "report",
        "--bundle",
        bag,
        "--format",
        "json",
        "--out",
        "-",
        "--trust",
        world["keys"]["Dana Reyes"],
    )
    assert proc.returncode == 1
    model = json.loads(proc.stdout)
    assert value not in _shown(model)
    assert {(k["name"], k["role"]) for k in model["keys"] if k["fingerprint"] == lee} == {
        ("Lee Okafor", "counsel")
    }
    proc = run("bundle", "import", bag, "--case", d / "lab")
    assert proc.returncode == 1
    assert "failed verification" in proc.stderr


def test_export_after_event_items_rows_deleted_discloses_every_handover(
    world: dict[str, Any],
) -> None:
    """Deleting ITEM-1's event_items rows (no key needed) does not leave its
    hand-overs out: the export reads the signed events, not that table."""
    run, d = world["run"], world["dir"]
    case = d / "case"
    bypass(
        case / "custody.db", "event_items", f"DELETE FROM event_items WHERE item = {q('ITEM-1')};"
    )
    assert (
        sqlite_ok(case / "custody.db", "SELECT count(*) FROM event_items WHERE item='ITEM-1';")
        == "0\n"
    )
    out = d / "again"
    run("bundle", "export", "ITEM-1", "--out", out, cwd=case, check=True)
    types = [json.loads(r["body"])["type"] for r in read_events(out)]
    assert types.count("transfer") == 1
    assert types.count("receive") == 1
    assert types.count("collect") == 1
    proc = run(
        "bundle",
        "verify",
        out,
        "--json",
        "--require-trusted",
        "--trust",
        world["keys"]["Dana Reyes"],
    )
    assert proc.returncode == 0, proc.stdout
    handovers = json.loads(proc.stdout)["handovers"]["ITEM-1"]
    assert [(h["released_by"], h["received_by"]) for h in handovers] == [
        ("Dana Reyes", "Lee Okafor")
    ]


def _lab_findings(run: Run, lab: Path) -> tuple[int, set[tuple[str, str]]]:
    proc = run("verify", "--json", "--case", lab)
    assert "Traceback" not in proc.stderr, proc.stderr
    out = json.loads(proc.stdout)
    return proc.returncode, {(f["kind"], f["subject"]) for f in out["findings"]}


def _bundle_id(lab: Path) -> str:
    return sqlite_ok(lab / "custody.db", "SELECT bundle FROM imported_bundles;").strip()


TABLES = ("imported_bundles", "imported_events")


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM imported_events WHERE seq = (SELECT max(seq) FROM imported_events);",
        "UPDATE imported_bundles SET items = replace(items, 'a.log', 'forged.log');",
        "UPDATE imported_bundles SET source_case = 'OTHER-1';",
        "UPDATE imported_bundles SET keys = '[]';",
        "UPDATE imported_bundles SET import_seq = 0;",
        "DELETE FROM imported_events; DELETE FROM imported_bundles;",
    ],
    ids=["event-row-deleted", "items", "source_case", "keys", "import_seq", "all-rows-deleted"],
)
def test_imported_tables_edited(world: dict[str, Any], sql: str) -> None:
    run, lab = world["run"], world["dir"] / "lab"
    assert _lab_findings(run, lab) == (0, set())
    short = _bundle_id(lab)[:23]
    bypass(lab / "custody.db", TABLES, sql)
    assert _lab_findings(run, lab) == (1, {("import", short)})


def test_imported_events_repointed_to_another_bundle(world: dict[str, Any]) -> None:
    run, lab = world["run"], world["dir"] / "lab"
    short = _bundle_id(lab)[:23]
    other = "sha256:" + "ef" * 32
    bypass(lab / "custody.db", TABLES, f"UPDATE imported_events SET bundle = {q(other)};")
    # the real bundle lost its events; the other has events no import event records
    assert _lab_findings(run, lab) == (1, {("import", short), ("import", other[:23])})


def test_imported_bundle_row_without_import_event(world: dict[str, Any]) -> None:
    run, lab = world["run"], world["dir"] / "lab"
    other = "sha256:" + "ef" * 32
    bypass(
        lab / "custody.db",
        TABLES,
        "INSERT INTO imported_bundles SELECT"
        f" {q(other)}, source_case, checkpoint, keys, items, import_seq FROM imported_bundles;",
    )
    assert _lab_findings(run, lab) == (1, {("import", other[:23])})


def test_case_info_case_id_edited(world: dict[str, Any]) -> None:
    run, case = world["run"], world["dir"] / "case"
    bypass(case / "custody.db", "case_info", "UPDATE case_info SET case_id = 'OTHER-1';")
    proc = run("verify", "--json", "--case", case)
    out = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert {(f["kind"], f["subject"]) for f in out["findings"]} == {("case-header", "case header")}


def test_export_after_artifacts_and_identities_rows_edited_writes_the_signed_values(
    world: dict[str, Any],
) -> None:
    """The derived artifacts and identities rows edited (no key needed): the export
    writes each item and key as the signed events give them, not the edited rows."""
    run, d = world["run"], world["dir"]
    case = d / "case"
    lee = world["keys"]["Lee Okafor"]
    bypass(
        case / "custody.db",
        ("artifacts", "identities"),
        "UPDATE artifacts SET display_path = '/etc/forged', size = 987654321"
        f" WHERE id = 'ITEM-1'; UPDATE identities SET name = 'Mallory Forged' WHERE fingerprint = {q(lee)};",
    )
    out = d / "again"
    run("bundle", "export", "--all", "--out", out, cwd=case, check=True)
    meta = json.loads((out / "custody" / "bundle.json").read_text())
    keys = json.loads((out / "custody" / "keys.json").read_text())
    assert meta["items"][0]["path"].endswith("/a.log")
    assert meta["items"][0]["size"] == len(b"log line\n" * 30)
    assert {k["name"] for k in keys if k["fingerprint"] == lee} == {"Lee Okafor"}
    assert _verify(run, out) == (0, set())
