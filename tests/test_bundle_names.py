"""Issue 14 §6: names and metadata every BagIt reader reads back.

bagit.py splits manifest and bag-info lines where str.splitlines does (U+0085,
U+2028, U+2029 ...) and strips white space at their ends (a trailing space, U+00A0,
U+3000), so a payload name holding them is mapped (docs/bundle-format.md §2), every
bag-info.txt value is one line with no white space at its ends (§3), and manifest
paths are percent-encoded as RFC 8493 says (§4).  custody's own verify and import
map the names back to the exact recorded paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import bagit
import docverify
import pytest
from conftest import PASSPHRASE, Run, template_case
from tampering import retag
from test_bundle import extract

from custody.bundle import export_bundle
from custody.bundle.shapes import decode_manifest_path, encode_manifest_path
from custody.keys import load_signer
from custody.ledger import Ledger

AWKWARD = [
    "trailing space ",
    "nbsp\u00a0inside",
    "nbsp at end\u00a0",
    "next\u0085line",
    "line\u2028separator",
    "para\u2029separator",
    "ideographic space\u3000",
    "percent%41.txt",
    "new\nline",
    "carriage\rreturn",
    "de\u0301composed.txt",
    "plain name.txt",
]
# the names every reader keeps as they are: the others are mapped to ITEM-<n>.bin
KEPT = {"nbsp\u00a0inside", "de\u0301composed.txt", "plain name.txt"}


def _bagit_valid(bag: Path) -> None:
    b = bagit.Bag(str(bag))
    b.validate()  # raises BagValidationError, naming each problem
    assert b.is_valid()


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("names")
    c = template_case(root)
    ev = root / "ev"
    ev.mkdir()
    for n, name in enumerate(AWKWARD):
        (ev / name).write_bytes(f"evidence {n}\n".encode())
    c("collect", "--reason", "awkward names", *(ev / n for n in AWKWARD), check=True)
    items = {i["id"]: i for i in json.loads(c("list", "--json", check=True).stdout)}
    out = root / "out"
    for name in ("b", "b.tar", "b.zip"):
        c(
            "bundle",
            "export",
            "--all",
            "--out",
            out / name,
            "--organization",
            "Acme\u00a0Forensics ",
            check=True,
        )
    return {"root": root, "case": c, "items": items, "out": out}


@pytest.mark.parametrize("name", ["b", "b.tar", "b.zip"])
def test_bagit_validates_awkward_names(named: dict[str, Any], tmp_path: Path, name: str) -> None:
    bag = named["out"] / name
    if bag.is_file():
        bag = extract(bag, tmp_path / "x")
    _bagit_valid(bag)
    meta = json.loads((bag / "custody" / "bundle.json").read_text())
    by_path = {
        bytes.fromhex(it["path_hex"]).rsplit(b"/", 1)[-1].decode(): it for it in meta["items"]
    }
    assert sorted(by_path) == sorted(AWKWARD)  # every name recorded exactly
    for base, it in by_path.items():
        file = it["payload"].rsplit("/", 1)[-1]
        if base in KEPT:
            assert (file, it["name_mapped"]) == (base, False)
        else:
            assert (file, it["name_mapped"]) == (f"{it['id']}.bin", True), base
        assert (bag / it["payload"]).read_bytes().startswith(b"evidence ")


@pytest.mark.parametrize("name", ["b", "b.tar", "b.zip"])
def test_custody_and_docverify_verify_awkward_names(
    named: dict[str, Any], run: Run, name: str
) -> None:
    bag = named["out"] / name
    proc = run("bundle", "verify", bag, "--trust", named["root"] / "dana.pub", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    keys = json.loads(named["case"]("key", "list", "--json", check=True).stdout)
    (fp,) = [k["fingerprint"] for k in keys if k["name"] == "Dana Reyes"]
    assert docverify.verify(bag, trust=(fp,)) == (0, [])


def test_bag_info_values_read_back_exactly(named: dict[str, Any]) -> None:
    bag = named["out"] / "b"
    lines = (bag / "bag-info.txt").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and all(":" in ln for ln in lines[:-1])
    written = dict(ln.split(": ", 1) for ln in lines[:-1])
    # white space at the ends is dropped: a reader would strip it
    assert written["Source-Organization"] == "Acme\u00a0Forensics"
    assert {k: v for k, v in bagit.Bag(str(bag)).info.items() if k in written} == written


def test_import_restores_the_recorded_paths(
    named: dict[str, Any], run: Run, tmp_path: Path
) -> None:
    """The lab imports the bundle: every imported item has the path its signed collect
    event records, byte for byte, not the mapped payload name."""
    lab = template_case(tmp_path)
    proc = lab("bundle", "import", named["out"] / "b.zip", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    items = json.loads(lab("list", "--json", check=True).stdout)
    got = sorted(i["path"] for i in items)
    assert got == sorted(i["path"] for i in named["items"].values())
    assert len(got) == len(AWKWARD)


def test_title_and_case_id_with_separators(tmp_path: Path, run: Run) -> None:
    """The CLI refuses a title, case id or organization holding CR, U+0085 or
    U+2028; a title recorded with them before (here by the library) is written to
    bag-info.txt as one line that bagit reads back."""
    c = template_case(tmp_path)
    for opt, bad in (("--title", "a\rb"), ("--title", "a\u0085b"), ("--case-id", "C\u2028D")):
        args = ["init", tmp_path / "x", "--case-id", "C-2", "--title", "t"]
        args[args.index(opt) + 1] = bad
        proc = run(*args)
        assert proc.returncode == 2 and "control characters" in proc.stderr, proc.stderr
    (tmp_path / "f").write_bytes(b"x")
    c("collect", "--reason", "r", tmp_path / "f", check=True)
    for org in ("Acme\nEvil-Tag: 1", "Acme\u2028Evil-Tag: 1", "Acme\rX"):
        proc = c("bundle", "export", "ITEM-1", "--organization", org, "--out", tmp_path / "no")
        assert proc.returncode == 2 and not (tmp_path / "no").exists(), proc.stderr
    with Ledger.open(c.dir) as led:
        led.case.title = "line one\r\nline\u2028two\u0085three "  # as an old case might hold
        signer = load_signer(tmp_path / "dana.pem", PASSPHRASE.encode())
        export_bundle(led, signer, ["ITEM-1"], tmp_path / "b")
    info = (tmp_path / "b" / "bag-info.txt").read_text(encoding="utf-8")
    assert "Custody-Case-Title: line one  line two three\n" in info
    _bagit_valid(tmp_path / "b")
    assert bagit.Bag(str(tmp_path / "b")).info["Custody-Case-Title"] == "line one  line two three"


def test_manifest_paths_percent_encoded() -> None:
    for path in ("data/a%b", "data/a\r\nb", "data/%0A", "data/100%25"):
        line = encode_manifest_path(path)
        assert "\n" not in line and "\r" not in line
        assert decode_manifest_path(line) == path
    assert encode_manifest_path("data/a%b\n") == "data/a%25b%0A"
    # only %25, %0A and %0D are decoded, in either case, and only once
    assert decode_manifest_path("data/%2541%0a%0D%41") == "data/%41\n\r%41"


def test_a_manifest_line_percent_encoded_by_another_tool(
    named: dict[str, Any], tmp_path: Path, run: Run
) -> None:
    """A bag whose manifests percent-encode a path that needs no encoding is the
    same bag: custody decodes (RFC 8493 §2.1.3), so does docverify."""
    bag = tmp_path / "b"
    shutil.copytree(named["out"] / "b", bag)
    (item,) = [i for i, it in named["items"].items() if it["path"].endswith("plain name.txt")]
    rel = f"data/{item}/plain name.txt"
    m = bag / "manifest-sha256.txt"
    text = m.read_text(encoding="utf-8")
    assert rel in text
    m.write_text(text.replace(rel, rel.replace(" ", "%20")), encoding="utf-8")
    retag(bag)
    proc = run("bundle", "verify", bag, "--json")
    assert proc.returncode == 1  # %20 is not decoded: a file missing, a file extra
    kinds = {(f["kind"], f["subject"]) for f in json.loads(proc.stdout)["findings"]}
    assert ("payload-missing", rel.replace(" ", "%20")) in kinds
    m.write_text(text.replace(rel, rel + "%25"), encoding="utf-8")
    retag(bag)
    proc = run("bundle", "verify", bag, "--json")
    kinds = {(f["kind"], f["subject"]) for f in json.loads(proc.stdout)["findings"]}
    assert ("payload-missing", rel + "%") in kinds
    assert ("payload-missing", rel + "%") in set(docverify.verify(bag)[1])


def test_a_bundle_named_by_the_earlier_rule_still_verifies(
    named: dict[str, Any], tmp_path: Path, run: Run
) -> None:
    """Before issue 14 a name ending in a space was kept: such a bundle (payload,
    bundle.json and manifests as custody wrote them then) verifies as it did, for
    custody and docverify; any third name is still an ``item`` finding."""
    import hashlib

    bag = tmp_path / "b"
    shutil.copytree(named["out"] / "b", bag)
    meta_file = bag / "custody" / "bundle.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    (it,) = [i for i in meta["items"] if i["path"].endswith("trailing space ")]
    new = f"data/{it['id']}/trailing space "
    (bag / it["payload"]).rename(bag / new)
    for alg in ("sha256", "sha512"):
        m = bag / f"manifest-{alg}.txt"
        m.write_text(m.read_text(encoding="utf-8").replace(it["payload"], new), encoding="utf-8")
    it["payload"], it["name_mapped"] = new, False
    meta_file.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    retag(bag)
    dana = named["root"] / "dana.pub"
    proc = run("bundle", "verify", bag, "--trust", dana, "--json")
    assert proc.returncode == 0, proc.stdout
    keys = json.loads(named["case"]("key", "list", "--json", check=True).stdout)
    (fp,) = [k["fingerprint"] for k in keys if k["name"] == "Dana Reyes"]
    assert docverify.verify(bag, trust=(fp,)) == (0, [])
    # another name for it: neither rule gives it
    other = f"data/{it['id']}/other"
    (bag / new).rename(bag / other)
    for alg in ("sha256", "sha512"):
        m = bag / f"manifest-{alg}.txt"
        m.write_text(m.read_text(encoding="utf-8").replace(new, other), encoding="utf-8")
    it["payload"] = other
    meta_file.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    retag(bag)
    proc = run("bundle", "verify", bag, "--trust", dana, "--json")
    assert proc.returncode == 1
    assert {(f["kind"], f["subject"]) for f in json.loads(proc.stdout)["findings"]} == {
        ("item", it["id"])
    }
    assert docverify.verify(bag, trust=(fp,)) == (1, [("item", it["id"])])
    assert hashlib.sha256((bag / other).read_bytes()).hexdigest() == it["sha256"]
