"""Issue 14 §1: `bundle export` of imported items (docs/bundle-format.md §13).

A lab case imports a collector's bundle and carries the custody on; a re-export of
an imported item carries the collector's own signed events, proofs and checkpoint
(a *source section*) beside the lab's import event and later events, and verifies
offline back to the collector's key."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import docverify
import pytest
from conftest import Case, new_key, ok_json, one_error_line, template_case
from tampering import bypass, retag

SECRETS = {  # in the source case, never exported by the collector
    "bravo-payroll-secret.csv": b"id,name,iban\n7,J. Doe,DE00\n",
    "charlie-hr-memo.txt": b"the memo nobody may see\n",
}
EXHIBIT = ("alpha-exhibit.log", b"Jan 12 03:14:07 sshd: accepted password\n" * 7)
HOST2 = ("host2-disk-notes.txt", b"host two's own notes\n" * 3)
LAB_OWN = ("lab-own-scan.txt", b"the lab's own scan\n" * 4)
LAB_NOTE = "photographed under UV"


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Dana (collector) collects three files in NC-001 and exports only the exhibit;
    a second host of NC-001 exports its notes; the lab (Lara's key) imports both,
    collects a file of its own, and notes and seals the exhibit."""
    root = tmp_path_factory.mktemp("reexport")
    c = template_case(root)
    src_dir = root / "src"
    src_dir.mkdir()
    for name, data in [EXHIBIT, *SECRETS.items()]:
        (src_dir / name).write_bytes(data)
    src = root / "src-case"
    c.run("init", src, "--case-id", "NC-001", "--title", "host1", check=True)
    c.run("collect", *sorted(src_dir.iterdir()), "--reason", "r", cwd=src, check=True)
    exhibit = next(
        i["id"] for i in ok_json(c.run, "list", "--json", cwd=src) if EXHIBIT[0] in i["path"]
    )
    c.run("bundle", "export", exhibit, "--out", root / "host1.tar", cwd=src, check=True)
    h2 = root / "h2-case"
    (root / HOST2[0]).write_bytes(HOST2[1])
    c.run("init", h2, "--case-id", "NC-001", "--title", "host2", check=True)
    c.run("collect", root / HOST2[0], "--reason", "r", cwd=h2, check=True)
    c.run("bundle", "export", "--all", "--out", root / "host2.tar", cwd=h2, check=True)
    lara = root / "lara.pem"
    new_key(c.run, lara, "Lara Lab", "analyst", default=False)
    env = {"CUSTODY_KEY": str(lara)}
    lab = root / "lab-case"
    c.run("init", lab, "--case-id", "LAB-1", "--title", "lab", env=env, check=True)
    for b in ("host1.tar", "host2.tar"):
        c.run(
            "bundle", "import", root / b, "--trust", root / "dana.pub", cwd=lab, env=env, check=True
        )
    (root / LAB_OWN[0]).write_bytes(LAB_OWN[1])
    c.run("collect", root / LAB_OWN[0], "--reason", "r", cwd=lab, env=env, check=True)
    items = ok_json(c.run, "list", "--json", cwd=lab, env=env)
    imported = [i["id"] for i in items if i.get("source")]
    item = next(i["id"] for i in items if i.get("source") and EXHIBIT[0] in i["path"])
    c.run("event", "note", item, "--reason", LAB_NOTE, cwd=lab, env=env, check=True)
    c.run("event", "seal", item, "--reason", "sealed", cwd=lab, env=env, check=True)
    out = root / "re"
    proc = c.run("bundle", "export", item, "--out", out, cwd=lab, env=env, check=True)
    return {
        "root": root,
        "run": c.run,
        "bag": out,
        "item": item,
        "imported": imported,
        "export": proc,
        "dana": root / "dana.pub",
        "lara": root / "lara.pub",
        "lab": Case(dir=lab, key=lara, run=c.run),
        "env": env,
    }


@pytest.fixture
def bag(story: dict[str, Any], tmp_path: Path) -> Path:
    """A copy of the re-export, to tamper with."""
    out = tmp_path / "re"
    shutil.copytree(story["bag"], out)
    return out


def _verify(story: dict[str, Any], bag: Path, *trust: Path) -> tuple[int, dict[str, Any]]:
    args: list[Any] = ["bundle", "verify", bag, "--json"]
    for t in trust:
        args += ["--trust", t]
    proc = story["run"](*args)
    return proc.returncode, json.loads(proc.stdout)


def _kinds(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["kind"], f["subject"]) for f in doc["findings"]}


def _section(bag: Path) -> Path:
    (sec,) = sorted((bag / "custody" / "sources").iterdir())
    return sec


def test_reexport_verifies_with_the_collectors_and_labs_keys(story: dict[str, Any]) -> None:
    code, doc = _verify(story, story["bag"], story["dana"], story["lara"])
    assert (code, doc["findings"]) == (0, [])
    assert doc["items"] == [story["item"]]
    assert sorted(k.split(" (")[0] for k in doc["trusted_keys"]) == ["Dana Reyes", "Lara Lab"]
    assert doc["self_asserted_keys"] == []
    sec = _section(story["bag"])
    meta = json.loads((sec / "source.json").read_text())
    (entry,) = meta["items"]
    # the payload is the collected bytes, bound to the collector's signed collect event
    payload = story["bag"] / "data" / "sources" / sec.name / entry["payload"][len("data/") :]
    assert payload.read_bytes() == EXHIBIT[1]
    assert entry["sha256"] == hashlib.sha256(EXHIBIT[1]).hexdigest()
    # the lab's own events: the import, the note, the seal
    types = [json.loads(json.loads(x)["body"])["type"] for x in _lines(story["bag"])]
    assert {"import", "note", "seal", "export"} <= set(types)


def _lines(bag: Path) -> list[str]:
    return (bag / "custody" / "events.jsonl").read_text().splitlines()


def test_only_the_collectors_key_is_not_enough(story: dict[str, Any]) -> None:
    code, doc = _verify(story, story["bag"], story["dana"])
    assert code == 1
    kinds = {k for k, _ in _kinds(doc)}
    assert kinds == {"untrusted-key", "untrusted-checkpoint"}
    # the source section is trusted by the collector's key; the lab's section is not
    assert all(not s.startswith("NC-001@") for k, s in _kinds(doc) if k == "untrusted-checkpoint")
    code, doc = _verify(story, story["bag"], story["lara"])
    assert code == 1
    assert ("untrusted-checkpoint", f"{_label(story)} custody/checkpoint.txt") in _kinds(doc)


def _label(story: dict[str, Any]) -> str:
    return str(story["item"]).rsplit("/", 1)[0]


def test_tampered_source_event_is_detected(story: dict[str, Any], bag: Path) -> None:
    sec = _section(bag)
    rows = [json.loads(x) for x in (sec / "events.jsonl").read_text().splitlines()]
    collect = next(r for r in rows if json.loads(r["body"])["type"] == "collect")
    body = json.loads(collect["body"])
    body["data"]["reason"] = "edited"
    collect["body"] = json.dumps(body, separators=(",", ":"), sort_keys=True)
    collect["hash"] = "sha256:" + hashlib.sha256(collect["body"].encode()).hexdigest()
    (sec / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    retag(bag)
    code, doc = _verify(story, bag, story["dana"], story["lara"])
    assert code == 1
    subject = f"{_label(story)} event {collect['seq']}"
    # edited and re-hashed: its signature and proof fail, the signed version is
    # withheld and the edited one extra (by the lab's signed export event)
    assert {k for k, s in _kinds(doc) if s == subject} == {
        "signature",
        "proof",
        "event-withheld",
        "event-extra",
    }


def test_tampered_source_checkpoint_is_detected(story: dict[str, Any], bag: Path) -> None:
    cp = _section(bag) / "checkpoint.txt"
    lines = cp.read_text().split("\n")
    lines[1] = str(int(lines[1]) + 1)
    cp.write_text("\n".join(lines))
    retag(bag)
    code, doc = _verify(story, bag, story["dana"], story["lara"])
    assert code == 1
    label = _label(story)
    assert {
        ("checkpoint", f"{label} custody/checkpoint.txt"),
        ("import", f"{label} checkpoint.txt"),
    } <= _kinds(doc)


def test_swapped_payload_is_detected(story: dict[str, Any], bag: Path) -> None:
    (payload,) = [p for p in (bag / "data" / "sources").rglob("*") if p.is_file()]
    payload.write_bytes(b"planted bytes\n")
    # rewrite the unsigned manifests to match: only the signed collect event catches it
    for alg in ("sha256", "sha512"):
        rel = payload.relative_to(bag).as_posix()
        digest = hashlib.new(alg, payload.read_bytes()).hexdigest()
        (bag / f"manifest-{alg}.txt").write_text(f"{digest}  {rel}\n")
    retag(bag)
    code, doc = _verify(story, bag, story["dana"], story["lara"])
    assert code == 1
    assert _kinds(doc) == {("payload-digest", f"{_label(story)} ITEM-1")}


def test_a_source_section_swapped_for_another_sources_is_detected(
    story: dict[str, Any], bag: Path, tmp_path: Path
) -> None:
    """The lab also imported host 2 (same case id, another header): a re-export of
    host 2's item has a section whose events verify with the same collector key;
    put in place of host 1's, the lab's signed export and import events catch it."""
    lab: Case = story["lab"]
    other = next(i for i in story["imported"] if i != story["item"])
    out = tmp_path / "other"
    lab("bundle", "export", other, "--out", out, env=story["env"], check=True)
    mine, theirs = _section(bag), _section(out)
    shutil.rmtree(mine)
    shutil.copytree(theirs, mine)
    shutil.rmtree(bag / "data" / "sources" / mine.name)
    shutil.copytree(out / "data" / "sources" / theirs.name, bag / "data" / "sources" / mine.name)
    for alg in ("sha256", "sha512"):
        shutil.copy(out / f"manifest-{alg}.txt", bag / f"manifest-{alg}.txt")
    for p in (bag / "data" / "sources").rglob("*"):
        if p.is_file():
            rel = p.relative_to(bag).as_posix()
            for alg in ("sha256", "sha512"):
                digest = hashlib.new(alg, p.read_bytes()).hexdigest()
                (bag / f"manifest-{alg}.txt").write_text(f"{digest}  {rel}\n")
    retag(bag)
    code, doc = _verify(story, bag, story["dana"], story["lara"])
    assert code == 1
    kinds = {k for k, _ in _kinds(doc)}
    assert {"disclosure", "event-withheld", "event-extra", "import"} <= kinds


def test_a_dropped_source_section_is_detected(story: dict[str, Any], bag: Path) -> None:
    sec = _section(bag)
    shutil.rmtree(sec)
    shutil.rmtree(bag / "data" / "sources")
    for alg in ("sha256", "sha512"):
        (bag / f"manifest-{alg}.txt").write_text("")
    retag(bag)
    code, doc = _verify(story, bag, story["dana"], story["lara"])
    assert code == 1
    assert _kinds(doc) == {("event-withheld", f"custody/sources/{sec.name}")}


def test_a_one_item_reexport_leaks_nothing_else(story: dict[str, Any]) -> None:
    """Nothing of the source case's other items, of the other source, or of the
    lab's own item: not their paths, digests or note texts."""
    blob = b"".join(p.read_bytes() for p in story["bag"].rglob("*") if p.is_file())
    secrets = [*SECRETS.items(), HOST2, LAB_OWN]
    for name, data in secrets:
        assert name.encode() not in blob
        for alg in ("sha256", "sha512", "md5", "sha1"):
            assert hashlib.new(alg, data).hexdigest().encode() not in blob
    assert b"ITEM-2" not in blob and b"ITEM-3" not in blob
    others = [i for i in story["imported"] if i != story["item"]]
    for other in others:
        assert other.encode() not in blob
    assert "also names" not in story["export"].stderr


def test_tag_files_of_a_section_are_covered(story: dict[str, Any], bag: Path) -> None:
    keys = _section(bag) / "keys.json"
    keys.write_text(keys.read_text().replace("Dana Reyes", "Lara Lab"))
    code, doc = _verify(story, bag, story["dana"], story["lara"])
    assert code == 1
    sec = _section(bag).name
    # the key's name is also its checkpoint signature's key name
    assert {k for k, _ in _kinds(doc)} == {"tag-digest", "key", "checkpoint"}
    assert ("tag-digest", f"custody/sources/{sec}/keys.json") in _kinds(doc)


def test_a_hostile_section_is_refused_naming_it(story: dict[str, Any], bag: Path) -> None:
    sec = _section(bag)
    (sec / "keys.json").write_text("[]\n")
    proc = story["run"]("bundle", "verify", bag)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"custody: error: custody/sources/{sec.name}/: custody/keys.json does not match"
        " its schema at (top): [] should be non-empty"
    )
    (sec / "source.json").unlink()
    retag(bag)
    proc = story["run"]("bundle", "verify", bag)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"custody: error: custody/sources/{sec.name}/ has no source.json"
    # a section the lab's signed export event does not list is not read at all
    shutil.move(sec, sec.parent / "x")
    shutil.rmtree(bag / "data" / "sources")
    for alg in ("sha256", "sha512"):
        (bag / f"manifest-{alg}.txt").write_text("")
    retag(bag)
    code, doc = _verify(story, bag, story["dana"], story["lara"])
    assert code == 1
    assert {"custody/sources/x", f"custody/sources/{sec.name}"} <= {s for _, s in _kinds(doc)}
    assert ("event-extra", "custody/sources/x") in _kinds(doc)


def test_the_independent_verifier_refuses_what_it_does_not_implement(
    story: dict[str, Any],
) -> None:
    """tests/docverify.py implements §1-§12, not §13's source sections: it refuses a
    re-export rather than judge it without them (it would call the section's
    payload extra, or pass a bundle whose section it never read)."""
    assert docverify.verify(story["bag"]) == (2, [])


def test_a_third_case_imports_the_reexport(story: dict[str, Any], tmp_path: Path) -> None:
    """Counsel's case imports the lab's re-export: the item keeps the id its
    original source's header hash gives it (not nested under the lab's), beside
    an item of the same number from another source, and the case verifies."""
    run = story["run"]
    third = tmp_path / "third"
    run("init", third, "--case-id", "CT-9", "--title", "court", check=True)
    # another NC-001 source's ITEM-1 first: the ids must not collide
    dana, lara = ("--trust", story["dana"]), ("--trust", story["lara"])
    run("bundle", "import", story["root"] / "host2.tar", *dana, cwd=third, check=True)
    # the lab's key alone does not vouch for the collector who signed the source section
    proc = run("bundle", "import", story["bag"], *lara, cwd=third)
    assert proc.returncode == 1
    assert "refused: its source section of NC-001: signer(s)" in proc.stderr
    assert "nothing was imported" in proc.stderr
    assert len(ok_json(run, "list", "--json", cwd=third)) == 1
    proc = run("bundle", "import", story["bag"], *dana, *lara, cwd=third, check=True)
    assert "imported 1 items" in proc.stdout
    items = ok_json(run, "list", "--json", cwd=third)
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)) == 2
    assert story["item"] in ids
    mine = next(i for i in items if i["id"] == story["item"])
    assert mine["sha256"] == hashlib.sha256(EXHIBIT[1]).hexdigest()
    verified = ok_json(run, "verify", "--json", cwd=third)
    assert verified["ok"] is True
    # importing it again changes nothing
    again = run("bundle", "import", story["bag"], *dana, *lara, cwd=third, check=True)
    assert "already" in again.stdout
    assert len(ok_json(run, "list", "--json", cwd=third)) == 2


@pytest.fixture
def lab(story: dict[str, Any], tmp_path: Path) -> Case:
    """A copy of the lab case, to tamper with."""
    d = tmp_path / "lab"
    shutil.copytree(story["lab"].dir, d)
    return Case(dir=d, key=story["lab"].key, run=story["run"])


def test_edited_imported_rows_are_refused_or_caught(
    story: dict[str, Any], lab: Case, tmp_path: Path
) -> None:
    """Someone with write access to the lab case but no key: what the import kept
    is what the export carries, and neither an edit nor a re-hash goes unnoticed."""
    db = lab.dir / "custody.db"
    item, env = story["item"], story["env"]
    bypass(
        db,
        "imported_bundles",
        "UPDATE imported_bundles SET checkpoint = checkpoint || ' ';",
    )
    proc = lab("bundle", "export", item, "--out", tmp_path / "a", env=env)
    assert proc.returncode == 1
    assert "not kept as it was imported" in one_error_line(proc)
    assert not (tmp_path / "a").exists()
    shutil.rmtree(lab.dir)
    shutil.copytree(story["lab"].dir, lab.dir)
    edit = 'replace(body, \'"reason":"r"\', \'"reason":"x"\')'
    bypass(db, "imported_events", f"UPDATE imported_events SET body = {edit};")
    proc = lab("bundle", "export", item, "--out", tmp_path / "b", env=env)
    assert proc.returncode == 1
    assert "does not hash; run `custody verify`" in one_error_line(proc)
    # re-hashed too: exported, but the collector's signature no longer holds
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT bundle, seq, body FROM imported_events").fetchall()
    conn.close()
    sets = "".join(
        f"UPDATE imported_events SET hash = 'sha256:{hashlib.sha256(b.encode()).hexdigest()}'"
        f" WHERE bundle = '{bundle}' AND seq = {s};"
        for bundle, s, b in rows
    )
    bypass(db, "imported_events", sets)
    lab("bundle", "export", item, "--out", tmp_path / "c", env=env, check=True)
    code, doc = _verify(story, tmp_path / "c", story["dana"], story["lara"])
    assert code == 1
    assert {k for k, _ in _kinds(doc)} == {"signature", "proof"}


@pytest.mark.parametrize(
    "raw",
    ["NC-001@000000/ITEM-1", "../ITEM-1", "NC-001@/ITEM-1", "ITEM-1\nITEM-2", "ITEM-99"],
)
def test_hostile_item_ids_are_refused(lab: Case, raw: str, tmp_path: Path) -> None:
    proc = lab("bundle", "export", raw, "--out", tmp_path / "x.tar")
    assert proc.returncode == 2
    assert one_error_line(proc).startswith("custody: error:")
    assert not (tmp_path / "x.tar").exists()
