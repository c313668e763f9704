"""Imported items are first-class (issue 14, scope 1): ids that cannot collide
across sources (``CASEID@<header hex>/ITEM-n``), and every command takes them."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, Case, Run, new_key, ok_json, one_error_line, template_case
from tampering import append_unchecked, bypass

from custody.keys import load_signer
from custody.ledger import Ledger
from custody.lifecycle import import_records, replay
from custody.sources import source_label

HOSTS = ("host1", "host2")


def _first_import(lab: Case) -> dict[str, Any]:
    """The lab's first import as one record (its first event's data with the
    items of its items' events)."""
    with Ledger.open(lab.dir) as ledger:
        rows = ledger.conn.execute("SELECT seq, body FROM events WHERE type = 'import'")
        found = import_records((int(seq), json.loads(body)) for seq, body in rows)
    return min(found.values(), key=lambda x: x[0])[1]


def _header(case_dir: Path) -> str:
    conn = sqlite3.connect(case_dir / "custody.db")
    try:
        return str(conn.execute("SELECT hash FROM case_info").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture(scope="module")
def lab_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Case, dict[str, str]]:
    """Two hosts of one incident (both case NC-001, two files each) exported as
    bundles, and a lab case LAB-1 that imported both, with Lee Okafor's counsel key
    (lee.pem) attested in it.  Returns the lab and each host's source label."""
    root = tmp_path_factory.mktemp("lab")
    c = template_case(root)
    labels = {}
    bundles = []
    for host in HOSTS:
        d = root / host
        d.mkdir()
        (d / "evidence.txt").write_text(f"{host} evidence\n")
        (d / "notes.txt").write_text(f"{host} notes\n")
        case_dir = root / f"{host}-case"
        c.run("init", case_dir, "--case-id", "NC-001", "--title", host, check=True)
        c.run(
            "collect",
            d / "evidence.txt",
            d / "notes.txt",
            "--reason",
            "r",
            "--no-describe",  # the sources' event numbers as the tests below name them
            cwd=case_dir,
            check=True,
        )
        out = root / f"{host}.tar"
        c.run("bundle", "export", "--all", "--out", out, cwd=case_dir, check=True)
        bundles.append(out)
        labels[host] = "NC-001@" + _header(case_dir).removeprefix("sha256:")[:6]
    lab = root / "lab-case"
    c.run("init", lab, "--case-id", "LAB-1", "--title", "lab", check=True)
    for b in bundles:
        c.run("bundle", "import", b, "--trust", c.key.with_suffix(".pub"), cwd=lab, check=True)
    new_key(c.run, root / "lee.pem", "Lee Okafor", "counsel", default=False)
    c.run(
        "key",
        "import",
        root / "lee.pub",
        "--name",
        "Lee Okafor",
        "--role",
        "counsel",
        cwd=lab,
        check=True,
    )
    return Case(dir=lab, key=c.key, run=c.run), labels


@pytest.fixture
def lab(lab_template: tuple[Case, dict[str, str]], run: Run, tmp_path: Path) -> Case:
    """A copy of the lab case (the template's keys and configuration)."""
    tpl, _ = lab_template
    d = tmp_path / "lab"
    shutil.copytree(tpl.dir, d)
    return Case(dir=d, key=tpl.key, run=tpl.run)


@pytest.fixture
def labels(lab_template: tuple[Case, dict[str, str]]) -> dict[str, str]:
    return lab_template[1]


def _lee(lab: Case) -> dict[str, str]:
    return {"CUSTODY_KEY": str(lab.key.parent / "lee.pem")}


def test_two_sources_of_one_case_id_get_distinct_labels(lab: Case, labels: dict[str, str]) -> None:
    assert labels["host1"] != labels["host2"]
    items = ok_json(lab, "list", "--json")
    assert [i["id"] for i in items] == [f"{labels[h]}/ITEM-{n}" for h in HOSTS for n in (1, 2)]
    assert [i["source"] for i in items] == [labels[h] for h in HOSTS for _ in (1, 2)]
    assert {i["source_item"] for i in items} == {"ITEM-1", "ITEM-2"}
    assert all(i["sha256"] and i["store"] and i["size"] for i in items)
    text = lab("list", check=True).stdout.splitlines()
    assert text[0].split()[:3] == ["ITEM", "SOURCE", "OUTCOME"]
    assert text[1].split()[:2] == [f"{labels['host1']}/ITEM-1", labels["host1"]]


def test_list_source_filter(lab: Case, labels: dict[str, str]) -> None:
    one = ok_json(lab, "list", "--json", "--source", labels["host2"].lower())
    assert [i["id"] for i in one] == [f"{labels['host2']}/ITEM-1", f"{labels['host2']}/ITEM-2"]
    assert len(ok_json(lab, "list", "--json", "--source", "NC-001")) == 4
    assert ok_json(lab, "list", "--json", "--source", "-") == []
    assert ok_json(lab, "list", "--json", "--source", "LAB-1") == []
    proc = lab("list", "--source", "NC-001@ffffff")
    assert proc.returncode == 2
    assert one_error_line(proc) == (
        "custody: error: no such source: 'NC-001@ffffff'; the case's sources are"
        f" {', '.join(sorted(labels.values()))} (and its own items, '-')"
    )


def test_show_gives_the_whole_chain(lab: Case, labels: dict[str, str]) -> None:
    item = f"{labels['host1']}/ITEM-1"
    lab("event", "access", item, "--reason", "triage", check=True)
    out = ok_json(lab, "show", item.lower(), "--json")
    assert out["id"] == item and out["source"] == labels["host1"]
    assert out["source_item"] == "ITEM-1"
    chain = out["source_chain"]
    assert chain["source_case"] == "NC-001"
    assert chain["source_header"].removeprefix("sha256:").startswith(labels["host1"][7:])
    assert [e["type"] for e in chain["events"]] == ["collect", "export"]
    assert all(e["signature_verified"] for e in chain["events"])
    # the import's bundle-level event, then the item's own import event
    assert [e["type"] for e in out["events"]] == ["import", "import", "access"]
    assert out["verification"]["ok"] is True
    assert out["custodian_key"]["name"] == "Dana Reyes"
    text = lab("show", item, check=True).stdout
    assert f"Source:    {labels['host1']} (case NC-001" in text
    assert text.index("Source chain") < text.index("Timeline:")


def test_log_of_an_imported_item(lab: Case, labels: dict[str, str]) -> None:
    item = f"{labels['host2']}/ITEM-2"
    lab("event", "seal", item, "--reason", "sealed", check=True)
    log = ok_json(lab, "log", "--json", item)
    assert [e["type"] for e in log] == ["import", "import", "seal"]
    head, own = (json.loads(e["body"])["data"] for e in log[:2])
    assert own["item"] == item and own["source_item"] == "ITEM-2"
    assert own["import"] == head["import"] == f"IMPORT-{log[0]['seq']}"
    assert "items" not in head and "item" not in head
    whole = lab("log", check=True).stdout
    assert f"IMPORT-{log[0]['seq']} from {labels['host2']}" in whole
    assert f"{item} (IMPORT-{log[0]['seq']})" in whole
    proc = lab("log", "NC-001@ffffff/ITEM-1")
    assert proc.returncode == 2
    assert one_error_line(proc) == "custody: error: no such item: NC-001@ffffff/ITEM-1"


def test_verify_counts_imported_items_and_objects(lab: Case) -> None:
    proc = lab("verify", check=True)
    assert "4 items (4 imported), 4 store objects re-hashed (" in proc.stdout
    report = ok_json(lab, "verify", "--json")
    assert report["artifacts"] == 4 and report["objects_checked"] == 4
    quick = ok_json(lab, "verify", "--json", "--quick")
    assert quick["artifacts"] == 4 and quick["objects_checked"] == 0


def test_transfer_receive_and_lifecycle_of_imported_items(
    lab: Case, labels: dict[str, str]
) -> None:
    a, b = f"{labels['host1']}/ITEM-1", f"{labels['host2']}/ITEM-1"
    # only the custodian (the importer) may act on them
    proc = lab("event", "seal", a, "--reason", "x", env=_lee(lab))
    assert proc.returncode == 2
    assert "only the current custodian may record seal of" in one_error_line(proc)
    out = ok_json(
        lab, "transfer", a, b.lower(), "--to", "Lee Okafor", "--reason", "court", "--json"
    )
    tid = out["id"]
    assert ok_json(lab, "show", a, "--json")["state"] == "in transit"
    lab("receive", tid, env=_lee(lab), check=True)
    shown = ok_json(lab, "show", a, "--json")
    assert shown["state"] == "collected"
    assert shown["custodian_key"]["name"] == "Lee Okafor"
    assert [h["status"] for h in shown["handovers"]] == ["received"]
    assert shown["handovers"][0]["mismatch"] is False
    lab("event", "seal", a, "--reason", "sealed", env=_lee(lab), check=True)
    lab("event", "note", b, "--reason", "looked", env=_lee(lab), check=True)
    assert ok_json(lab, "show", a, "--json")["state"] == "sealed"
    assert [e["type"] for e in ok_json(lab, "log", "--json", a)] == [
        "import",
        "import",
        "transfer",
        "receive",
        "seal",
    ]
    assert ok_json(lab, "verify", "--json")["ok"] is True


def test_a_receipt_finds_a_changed_imported_object(lab: Case, labels: dict[str, str]) -> None:
    a = f"{labels['host1']}/ITEM-1"
    tid = ok_json(lab, "transfer", a, "--to", "Lee Okafor", "--reason", "r", "--json")["id"]
    rel = ok_json(lab, "show", a, "--json")["store"]
    obj = lab.dir / "store" / rel
    obj.chmod(0o644)
    obj.write_text("swapped\n")
    proc = lab("receive", tid, env=_lee(lab))
    assert proc.returncode == 1, proc.stderr
    proc = lab("verify", "--json")
    assert proc.returncode == 1
    assert "receipt-mismatch" in proc.stdout and "object-digest" in proc.stdout


def test_unknown_source_ids_are_refused(lab: Case, labels: dict[str, str]) -> None:
    for args in (
        ("show", "NC-001@ffffff/ITEM-1"),
        ("event", "seal", "NC-001@ffffff/ITEM-1", "--reason", "x"),
        ("transfer", f"{labels['host1']}/ITEM-9", "--to", "Lee Okafor", "--reason", "x"),
    ):
        proc = lab(*args)
        assert proc.returncode == 2, args
        named = args[2] if args[0] == "event" else args[1]
        assert one_error_line(proc) == f"custody: error: no such item: {named}"


def test_a_signed_event_naming_an_unknown_source_is_a_finding(lab: Case) -> None:
    with Ledger.open(lab.dir) as ledger:
        signer = load_signer(lab.key, PASSPHRASE.encode())
        append_unchecked(ledger, signer, "seal", {"items": ["NC-001@ffffff/ITEM-1"], "reason": "x"})
    proc = lab("verify", "--json")
    assert proc.returncode == 1
    assert (
        '"lifecycle"' in proc.stdout
        and "NC-001@ffffff/ITEM-1, not an item of this case" in proc.stdout
    )


def test_edited_import_rows_are_findings(lab: Case, labels: dict[str, str]) -> None:
    """Someone with write access but no key edits what an imported item is."""
    db = lab.dir / "custody.db"
    bypass(
        db,
        "imported_bundles",
        "UPDATE imported_bundles SET items = replace(items, 'ITEM-1', 'ITEM-7');",
    )
    proc = lab("verify", "--json")
    assert proc.returncode == 1
    assert '"kind": "import"' in proc.stdout.replace('"kind":"import"', '"kind": "import"')
    assert "imported_bundles.items is" in proc.stdout


def test_an_import_event_naming_the_wrong_source_is_a_finding(
    lab: Case, labels: dict[str, str]
) -> None:
    """A signed import event whose source header or item digests are not those of
    the source's signed events is a verify finding."""
    data = _first_import(lab)  # forged as one whole-bundle event, the older form
    data["source_header"] = "sha256:" + "f" * 64
    data["items"][0]["sha256"] = "0" * 64
    with Ledger.open(lab.dir) as ledger:
        append_unchecked(ledger, load_signer(lab.key, PASSPHRASE.encode()), "import", data)
    proc = lab("verify", "--json")
    assert proc.returncode == 1
    assert "names source header 'sha256:ffff" in proc.stdout
    assert "the source collected it with" in proc.stdout


def test_label_lengthens_where_two_sources_would_share_it() -> None:
    h1 = "sha256:3fa9c2" + "a" * 58
    h2 = "sha256:3fa9c2" + "b" * 58
    assert source_label("NC-001", h1, {}) == "NC-001@3fa9c2"
    assert source_label("NC-001", h2, {"NC-001@3fa9c2": h1}) == "NC-001@3fa9c2b"
    assert source_label("NC-002", h2, {"NC-001@3fa9c2": h1}) == "NC-002@3fa9c2"
    assert source_label("NC-001", h1, {"NC-001@3fa9c2": h1}) == "NC-001@3fa9c2"

    def imp(seq: int, header: str) -> tuple[int, str, str, str, dict[str, object]]:
        data = {
            "bundle": f"sha256:{seq:064x}",
            "source_case": "NC-001",
            "source_header": header,
            "items": [{"source_item": "ITEM-1", "sha256": "0" * 64}],
        }
        return seq, "", "import", "k", {"type": "import", "data": data}

    r = replay([imp(1, h1), imp(2, h2), imp(3, h1)], "LAB-1")
    assert sorted(r.items) == ["NC-001@3fa9c2/ITEM-1", "NC-001@3fa9c2b/ITEM-1"]
    assert r.items["NC-001@3fa9c2/ITEM-1"].imported_at == 1  # a later bundle keeps it
    assert r.items["NC-001@3fa9c2b/ITEM-1"].custodian == "k"


ROOT = Path(__file__).resolve().parent.parent


def test_reports_include_imported_items_in_every_format(
    lab: Case, labels: dict[str, str], tmp_path: Path
) -> None:
    import csv
    import subprocess

    from jsonschema import Draft202012Validator

    a = f"{labels['host1']}/ITEM-1"
    lab("transfer", a, "--to", "Lee Okafor", "--reason", "court", check=True)
    ids = [f"{labels[h]}/ITEM-{n}" for h in HOSTS for n in (1, 2)]
    out = {}
    for fmt in ("json", "html", "pdf", "csv", "case", "certification"):
        out[fmt] = tmp_path / f"report.{fmt}"
        lab("report", "--format", fmt, "--detail", "all", "--out", out[fmt], check=True)
    model = json.loads(out["json"].read_text())
    schema = json.loads((ROOT / "schemas" / "report.schema.json").read_text())
    Draft202012Validator(schema).validate(model)
    # no item named: the whole case, and no list of every id (issue 16)
    assert model["scope"] == {"items": [], "all_items": True, "detail": "all"}
    assert [i["id"] for i in model["items"]] == ids
    assert model["verification"]["items"] == 4
    first = model["items"][0]
    assert first["source"]["label"] == labels["host1"]
    assert first["source"]["case_id"] == "NC-001"
    assert [e["type"] for e in first["source"]["events"]] == ["collect", "export"]
    assert first["collected_by"] == "Dana Reyes (collector)"
    assert first["verified_digests"]["sha256"] == first["digests"]["sha256"]
    assert [t["type"] for t in first["timeline"]] == ["import", "import", "transfer"]
    assert first["state"] == "in transit"
    html = out["html"].read_text()
    for i in ids:
        assert f'data-item="{i}"' in html
    assert html.count("Source chain (case NC-001)") == 4
    with out["csv"].open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    mine = [r for r in rows if r["item"] == a]
    assert [r["action_exact"] for r in mine] == [
        f"collected (in source {labels['host1']}, its event 3)",
        f"exported in a bundle (in source {labels['host1']}, its event 6)",
        "imported from a bundle",  # the import's bundle-level event
        "imported from a bundle",  # and the item's own
        mine[4]["action_exact"],
    ]
    assert mine[0]["event_seq"] == "" and mine[2]["event_seq"] == "1"
    assert mine[3]["event_seq"] == "2"
    case_ld = out["case"].read_text()
    assert f"imported from source {labels['host1']} (case NC-001" in case_ld
    assert all(i in out["certification"].read_text() for i in ids)
    if shutil.which("pdftotext"):
        text = subprocess.run(
            ["pdftotext", "-layout", str(out["pdf"]), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert text.count("Source chain (case NC-001)") == 4
        assert labels["host2"] in text
    one = json.loads(
        lab("report", a.lower(), "--format", "json", "--out", "-", check=True).stdout.split(
            "\nReport"
        )[0]
    )
    assert one["scope"] == {"items": [a], "all_items": False, "detail": "auto"}
    proc = lab("report", "NC-001@ffffff/ITEM-1", "--format", "json", "--out", tmp_path / "x")
    assert proc.returncode == 2
    assert one_error_line(proc) == "custody: error: no such item: NC-001@ffffff/ITEM-1"


def test_bundle_export_of_an_imported_item_names_it_any_case(
    lab: Case, labels: dict[str, str], tmp_path: Path
) -> None:
    """Re-exports themselves are tested in test_reexport.py; an id in another
    letter case names the item, an unknown source is refused."""
    item = f"{labels['host1']}/ITEM-1"
    proc = lab("bundle", "export", item.lower(), "--out", tmp_path / "re", check=True)
    # the host's bundle had two items: imported one event per item, so nothing
    # of the other is disclosed, and nothing is warned
    assert "also names" not in proc.stderr
    blob = b"".join(p.read_bytes() for p in (tmp_path / "re").rglob("*") if p.is_file())
    assert f"{labels['host1']}/ITEM-2".encode() not in blob
    pub = lab.key.with_suffix(".pub")  # the collectors' and the lab's key here
    verified = ok_json(lab, "bundle", "verify", tmp_path / "re", "--trust", pub, "--json")
    assert verified["items"] == [item]
    proc = lab("bundle", "export", "NC-001@000000/ITEM-1", "--out", tmp_path / "x.tar")
    assert proc.returncode == 2
    assert one_error_line(proc) == "custody: error: no such item: NC-001@000000/ITEM-1"
    assert not (tmp_path / "x.tar").exists()


def test_an_import_event_with_a_hostile_item_id_is_a_finding(lab: Case) -> None:
    data = _first_import(lab)  # forged as one whole-bundle event, the older form
    data["source_header"] = "sha256:" + "e" * 64
    data["items"] = [{**data["items"][0], "source_item": "ITEM-1/../ITEM-2"}]
    with Ledger.open(lab.dir) as ledger:
        append_unchecked(ledger, load_signer(lab.key, PASSPHRASE.encode()), "import", data)
    proc = lab("verify", "--json")
    assert proc.returncode == 1
    assert "import event lists 'ITEM-1/../ITEM-2', not an item id (ITEM-n)" in proc.stdout
    assert "ITEM-1/../ITEM-2" not in "".join(i["id"] for i in ok_json(lab, "list", "--json"))


def test_an_edited_source_event_fails_show_of_its_item(lab: Case, labels: dict[str, str]) -> None:
    """Write access, no key: the collector's collect event is edited in place."""
    item = f"{labels['host1']}/ITEM-1"
    bypass(
        lab.dir / "custody.db",
        "imported_events",
        'UPDATE imported_events SET body = replace(body, \'"reason":"r"\', \'"reason":"x"\')'
        ' WHERE body LIKE \'%"type":"collect"%\';',
    )
    proc = lab("show", item, "--json")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["verification"]["ok"] is False
    assert {f["kind"] for f in out["verification"]["findings"]} == {"import"}
    assert [e["signature_verified"] for e in out["source_chain"]["events"]] == [False, True]
    text = lab("show", item).stdout
    assert text.startswith(f"FAILED: the record of {item} fails verification (import)")


def test_prove_inclusion_of_an_imported_item(
    lab: Case, labels: dict[str, str], tmp_path: Path
) -> None:
    item = f"{labels['host2']}/ITEM-1"
    lab("event", "note", item, "--reason", "seen", check=True)
    cp = tmp_path / "cp.txt"
    lab("checkpoint", "--out", cp, check=True)
    out = ok_json(lab, "prove", "inclusion", item.lower(), "--checkpoint", cp, "--json")
    assert [(p["type"], p["included"]) for p in out["proofs"]] == [
        ("import", True),
        ("import", True),
        ("note", True),
    ]
    proc = lab("prove", "inclusion", "NC-001@ffffff/ITEM-1", "--checkpoint", cp)
    assert proc.returncode == 2
    assert one_error_line(proc) == "custody: error: no such item: NC-001@ffffff/ITEM-1"


def test_a_swapped_source_key_is_a_finding(lab: Case) -> None:
    """Write access, no key: the public key kept for the source's signer is replaced
    by another under the same fingerprint (the signed import event pins only the
    fingerprint)."""
    import base64

    other = base64.b64encode(bytes(32)).decode()
    db = lab.dir / "custody.db"
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT bundle, keys FROM imported_bundles").fetchall()
    finally:
        conn.close()
    bundle, keys_json = rows[0]
    keys = json.loads(keys_json)
    keys[0]["public_key"] = other
    new = json.dumps(keys).replace("'", "''")
    bypass(
        db,
        "imported_bundles",
        f"UPDATE imported_bundles SET keys = '{new}' WHERE bundle = '{bundle}';",
    )
    proc = lab("verify", "--json")
    assert proc.returncode == 1
    assert "is another key" in proc.stdout


def test_own_and_imported_items_side_by_side(
    lab: Case, labels: dict[str, str], tmp_path: Path
) -> None:
    """The lab's own ITEM-1 and each source's ITEM-1 are three distinct items."""
    f = tmp_path / "lab-notes.txt"
    f.write_text("the lab's own\n")
    lab("collect", f, "--reason", "lab", check=True)
    items = ok_json(lab, "list", "--json")
    ids = [i["id"] for i in items]
    assert ids[0] == "ITEM-1" and items[0]["source"] is None
    assert ids.count("ITEM-1") == 1 and len(set(ids)) == 5
    own = ok_json(lab, "list", "--json", "--source", "-")
    assert [i["id"] for i in own] == ["ITEM-1"]
    assert lab("list", check=True).stdout.splitlines()[1].split()[:2] == ["ITEM-1", "-"]
    lab("event", "seal", "ITEM-1", "--reason", "own", check=True)
    assert ok_json(lab, "show", "ITEM-1", "--json")["state"] == "sealed"
    assert ok_json(lab, "show", f"{labels['host1']}/ITEM-1", "--json")["state"] == "collected"
    assert "source_chain" not in ok_json(lab, "show", "item-1", "--json")
    report = ok_json(lab, "verify", "--json")
    assert report["ok"] is True and report["artifacts"] == 5
    assert "5 items (4 imported)" in lab("verify").stdout
