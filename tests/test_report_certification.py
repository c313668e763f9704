"""The FRE 902(14)/902(13) certification draft (custody report --format certification).

With the shared report case: both items with their SHA-256 at collection, ITEM-1
MATCH and ITEM-2 MISMATCH (its digest at verification differs, and the draft
tells counsel not to certify it without explanation), the draft banner, the
process description and the signature block.  Hostile text cannot break the
Markdown.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

from report_fixtures import ITEM1_NAME, LOCATION, REASON, ReportCase, report_case, report_template  # noqa: F401

from custody.render import render
from custody.render.certification import BANNER, digest_result, md


def _rows(text: str) -> dict[str, list[str]]:
    """The item table's rows by item id, split on unescaped pipes."""
    out = {}
    for line in text.splitlines():
        if line.startswith("| ITEM-"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            out[cells[0]] = cells
    return out


def _model(case: ReportCase) -> dict[str, Any]:
    proc, out = case.report("json", "--detail", "all")
    assert proc.returncode == 1, proc.stderr
    model: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return model


def test_certification_of_the_shared_case(report_case: ReportCase) -> None:  # noqa: F811
    proc, out = report_case.report("certification")
    assert proc.returncode == 1, proc.stderr  # verification found the tampered ITEM-2
    data = out.read_bytes()
    assert f"SHA-256 of the report: sha256:{hashlib.sha256(data).hexdigest()}" in proc.stdout
    text = data.decode("utf-8")
    assert text.startswith(f"> **{BANNER}**\n")
    assert "DRAFT FOR COUNSEL — NOT A SIGNED CERTIFICATION" in text
    assert "902(14)" in text and "902(13)" in text
    rows = _rows(text)
    assert set(rows) == {"ITEM-1", "ITEM-2"}
    # columns: item, path, host, size, at collection, at verification, result
    for item, cells in rows.items():
        assert f"sha256: `{report_case.sha256[item]}`" in cells[4]
    assert md(ITEM1_NAME) in rows["ITEM-1"][1] and 'memo, "final".txt' in rows["ITEM-1"][1]
    assert rows["ITEM-1"][3] == "46 bytes"
    assert rows["ITEM-1"][5] == rows["ITEM-1"][4]  # re-hashed: the same digests
    assert rows["ITEM-1"][6] == "MATCH<br>passed verification"
    found = re.search(r"sha256: `([0-9a-f]{64})`", rows["ITEM-2"][5])
    assert found and found.group(1) != report_case.sha256["ITEM-2"]
    assert rows["ITEM-2"][6] == "**MISMATCH**<br>**FAILED verification**"
    assert (
        "- **ITEM-2 FAILED verification** (MISMATCH). Counsel must not certify this item"
        " without an explanation." in text
    )
    assert "ITEM-1 FAILED" not in text
    assert "> **WARNING — items that FAILED verification:** ITEM-2." in text
    # the process, in plain words, from the model
    assert "with **custody " in text
    assert "hashed with these algorithms: MD5, SHA1, SHA256." in text
    assert "content-addressed evidence store" in text and "re-read from the store" in text
    assert "Ed25519" in text and "SHA-256 hash of the event before it" in text
    assert "The result: **FAILED**: 3 finding(s) were recorded" in text
    assert "- stored bytes: **FAILED** (3 finding(s))" in text
    # (12 events, and the describe events typing the two items' objects)
    assert re.search(r"made from the ledger at 14 event\(s\), Merkle root `[0-9a-f]{64}`", text)
    assert "5. **Latest signed checkpoint.** None was recorded." in text
    # the custody chain, one line per item
    chain = [line for line in text.splitlines() if line.startswith("- **ITEM-")]
    chain = [line for line in chain if "FAILED" not in line]
    assert len(chain) == 2
    # every signer with 16 hex digits of its key, its standing and who attested it
    keys = json.loads(report_case.run("key", "list", "--json", check=True).stdout)
    fp = {k["name"]: k["fingerprint"][:23] for k in keys}
    dana = f"Dana Reyes (collector) (key `{fp['Dana Reyes']}`, owner)"
    lee = (
        f"Lee Okafor (counsel) (key `{fp['Lee Okafor']}`,"
        f" attested by Dana Reyes {fp['Dana Reyes']})"
    )
    # the failing ITEM-2 first (issue 16), then ITEM-1
    assert chain[1].startswith("- **ITEM-2**: ") or chain[0].startswith("- **ITEM-2**: ")
    chain = sorted(chain, key=lambda line: not line.startswith("- **ITEM-1**"))
    assert chain[0].startswith("- **ITEM-1**: ") and f"{dana}: collected" in chain[0]
    assert f"released to Lee Okafor (counsel), {report_case.template['transfer']}" in chain[0]
    assert f"{REASON}; {LOCATION}" in chain[0]
    assert f"{lee}: sealed — sealed in bag 44" in chain[0]
    assert chain[0].endswith(f"now sealed, held by {lee}.")
    assert chain[1].endswith(f"now collected, held by {dana}.")
    # the declaration and signature block
    assert (
        "I, ____________, declare under penalty of perjury under the laws of the United States"
        " (28 U.S.C. § 1746) that the foregoing is true and correct" in text
    )
    for line in (
        "Name: ____________",
        "Title: ____________",
        "Date: ____________",
        "Signature: ____________",
    ):
        assert f"\n{line}\n" in text, line


def test_clean_items_read_match(report_case: ReportCase) -> None:  # noqa: F811
    """Report only ITEM-1: no warning, and every finding-free item passes."""
    proc, out = report_case.report("certification", "ITEM-1")
    text = out.read_text(encoding="utf-8")
    assert set(_rows(text)) == {"ITEM-1"}
    assert "WARNING" not in text and "must not certify" not in text
    assert _rows(text)["ITEM-1"][6] == "MATCH<br>passed verification"
    # the verification is of the whole case, and still says so
    assert proc.returncode == 1 and "The result: **FAILED**" in text


def test_results_per_item(report_case: ReportCase) -> None:  # noqa: F811
    model = _model(report_case)
    item2, item1 = model["items"]  # the failing item first
    assert (digest_result(item1), digest_result(item2)) == ("MATCH", "MISMATCH")
    assert digest_result({**item1, "verified_digests": None}) == "NOT RE-VERIFIED"
    assert digest_result({**item1, "digests": {}, "verified_digests": None}) == "NO CONTENT"
    text = render({**model, "items": [{**item1, "verified_digests": None}]}, "certification")
    row = _rows(text.decode("utf-8"))["ITEM-1"]
    assert row[5] == "not re-verified" and row[6].startswith("**NOT RE-VERIFIED**")


def test_hostile_text_cannot_break_the_markdown(report_case: ReportCase) -> None:  # noqa: F811
    model = copy.deepcopy(_model(report_case))
    item = next(i for i in model["items"] if i["id"] == "ITEM-1")
    item["path"] = "/ev/a|b\n# heading *bold* <script>`x`\\.txt"
    item["path_hex"] = item["path"].encode().hex()  # the path is shown from its bytes
    item["timeline"][0]["reason"] = "line\nbreak | pipe"
    model["case"]["title"] = "T\n> quote"
    text = render(model, "certification").decode("utf-8")
    row = _rows(text)["ITEM-1"]
    assert len(row) == 7  # the pipe did not add a column
    assert row[1].startswith(
        "/ev/a\\|b\\\\n\\# heading \\*bold\\* \\<script\\>\\`x\\`\\\\\\\\.txt<br>(exact bytes, hex: `"
    )
    assert "\n# heading" not in text and "<script>" not in text
    assert "line\\\\nbreak \\| pipe" in text
    assert "— T\\\\n\\> quote" in text
    assert not any(line.startswith("> quote") for line in text.splitlines())
