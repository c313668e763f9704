"""Issue 16 §1 memory: a verification run for a report (``compact=True``) keeps the
parsed bodies with equal strings shared (custody.verify.Sharing), and the CSV form
reads lean items (custody.report.ReportItems.lean).  Neither may change what is
found or shown: the findings, the bodies and every rendered byte are those of the
plain verification and the full items, also when someone with write access but no
key edited the ledger, and a forged ``prev`` is shown as signed, never as the hash
it should have named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke
from test_report_csv_json import build_golden_case

from custody.ledger import Ledger
from custody.render import render
from custody.report import LEAN_FIELDS, ReportItems, case_report
from custody.verify import Sharing, VerifyReport, verify_ledger
from tests.tampering import bypass

# what someone with write access to the case files but no key can do to the rows
TAMPERS = {
    "none": "",
    # a signed body rewritten (its signature and hash no longer hold)
    "body": "UPDATE events SET body = replace(body, 'suspected exfiltration',"
    " 'routine backup') WHERE seq = 1;",
    # the prev column of one row, and one row's body prev (the chain link breaks)
    "prev column": "UPDATE events SET prev = 'sha256:' || hex(zeroblob(32)) WHERE seq = 3;",
    "prev in body": 'UPDATE events SET body = replace(body, \'"prev":"sha256:\', '
    '\'"prev":"sha256:0\') WHERE seq = 4;',
    # the derived tables
    "artifacts row": "UPDATE artifacts SET display_path = '/etc/shadow' WHERE id = 'ITEM-1';",
    "event_items": "DELETE FROM event_items WHERE seq = 2;",
}


# (kind, seq or -1) of each finding: the golden case's tampered ITEM-2 object, and more
EXPECTED = {
    "none": [("object-digest", -1)],
    "body": [
        ("checkpoint", -1),
        ("checkpoint", 9),
        ("event-hash", 1),
        ("index", -1),
        ("object-digest", -1),
        ("signature", 1),
    ],
    "prev column": [("chain-link", 3), ("event-mismatch", 3), ("object-digest", -1)],
    "prev in body": [
        ("checkpoint", -1),
        ("checkpoint", 9),
        ("event-hash", 4),
        ("event-mismatch", 4),
        ("index", -1),
        ("object-digest", -1),
        ("signature", 4),
    ],
    "artifacts row": [("index", 2), ("object-digest", -1)],
    "event_items": [("index", -1), ("object-digest", -1)],
}


def _tables(sql: str) -> tuple[str, ...]:
    return tuple(t for t in ("events", "artifacts", "event_items") if t in sql)


def _findings(v: VerifyReport) -> list[tuple[Any, ...]]:
    return [(f.kind, f.subject, f.detail, f.seq, f.item, f.obj) for f in v.findings]


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compact")
    mp = pytest.MonkeyPatch()
    try:
        build_golden_case(root, mp).close()
    finally:
        mp.undo()
    return root


def _copy(golden: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    dest = tmp_path / "g"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(golden, dest, symlinks=True)
    monkeypatch.chdir(dest)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1772445600")
    return dest / "case"


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_compact_verification_finds_and_keeps_the_same(
    tamper: str, golden: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = _copy(golden, tmp_path, monkeypatch)
    if TAMPERS[tamper]:
        bypass(case / "custody.db", _tables(TAMPERS[tamper]), TAMPERS[tamper])
    with Ledger.open(case, write=False) as led:
        plain = verify_ledger(led, parallel=False)
        compact = verify_ledger(led, parallel=False, compact=True)
        workers = verify_ledger(led, parallel=True, compact=True)
        assert _findings(compact) == _findings(plain) == _findings(workers)
        assert compact.as_json() | {"findings": 0} == plain.as_json() | {"findings": 0}
        assert compact.bodies == plain.bodies and compact.body_hashes == plain.body_hashes
        # the bodies are the ones of the plain run, byte for byte once printed again
        for seq, body in compact.bodies.items():
            assert json.dumps(body, sort_keys=True) == json.dumps(plain.bodies[seq], sort_keys=True)
        for fmt in ("csv", "json", "html"):
            a = render(case_report(led, verify=plain, detail="all", stream=True), fmt)
            b = render(case_report(led, verify=compact, detail="all", stream=True), fmt)
            assert a == b, fmt
    assert sorted({(str(f.kind), f.seq or -1) for f in compact.findings}) == EXPECTED[tamper]
    if tamper == "prev in body":
        # the signed body's own (forged) prev is kept, not the previous event's hash
        assert compact.bodies[4]["prev"] == "sha256:0" + plain.body_hashes[3][7:]


def test_sharing_shares_equal_strings_only() -> None:
    """Keys and short values are held once; times, paths and long values are
    not memoised; ``prev`` becomes the previous hash only when it equals it; every
    value (nested lists, numbers, booleans, None, hostile text) is unchanged."""
    s = Sharing()
    prev = "sha256:" + "ab" * 32
    hostile = "\u202eexe.txt\x1b[2J\\\n" + "\U0001f600"
    long_value = "x" * 101

    def body(n: int, prev_text: str) -> dict[str, Any]:
        return json.loads(  # one json.loads per body: its own copy of each string
            json.dumps(
                {
                    "prev": prev_text,
                    "time": "2026-03-02T10:00:00.000000000Z",
                    "signer": "sha256:" + "cd" * 32,
                    "data": {
                        "item": "ITEM-1",
                        "path": {"display": "/a/b", "hex": "2f612f62"},
                        "note": hostile,
                        "long": long_value,
                        "list": [["ITEM-1", 1, None, True], {"k": False}],
                        "n": n,
                        "\u00e9\u202e": "k\u00e9y",
                    },
                }
            )
        )

    a_in, b_in = body(1, prev), body(2, "sha256:" + "00" * 32)
    a, b = s.body(a_in, prev), s.body(b_in, prev)
    assert a == a_in and b == b_in and a is not a_in
    assert a["prev"] is prev and b["prev"] == "sha256:" + "00" * 32  # a forged prev stays
    assert a["signer"] is b["signer"]
    assert a["data"]["note"] is b["data"]["note"] and a["data"]["note"] == hostile
    ka = next(k for k in a["data"] if k.startswith("\u00e9"))
    kb = next(k for k in b["data"] if k.startswith("\u00e9"))
    assert ka is kb
    assert a["data"]["list"][0][0] is b["data"]["list"][0][0] is a["data"]["item"]
    assert a["data"]["long"] == b["data"]["long"] and a["data"]["long"] is not b["data"]["long"]
    assert a["time"] is not b["time"] and a["data"]["path"]["hex"] is not b["data"]["path"]["hex"]
    assert long_value not in s.memo and "2f612f62" not in s.memo and prev not in s.memo


def test_lean_items_are_the_full_items_fields(
    golden: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each lean item holds only fields of LEAN_FIELDS, each the full item's value,
    and every field the CSV form reads; the CSV of the streamed model (lean) is the
    listed model's (full items), with and without detail."""
    case = _copy(golden, tmp_path, monkeypatch)
    with Ledger.open(case, write=False) as led:
        v = verify_ledger(led, compact=True)
        for detail in ("all", "auto"):
            streamed = case_report(led, verify=v, detail=detail, stream=True)
            listed = case_report(led, verify=v, detail=detail)
            items = streamed["items"]
            assert isinstance(items, ReportItems)
            lean, full = list(items.lean()), list(items)
            assert [i["id"] for i in lean] == ["ITEM-2", "ITEM-1"]
            for li, fi in zip(lean, full, strict=True):
                assert set(li) <= set(LEAN_FIELDS)
                assert li == {k: fi[k] for k in li}
                assert {"id", "path", "digests", "integrity"} <= set(li)
                assert ("timeline" in li) == ("timeline" in fi)
                assert "handovers" not in li and "metadata" not in li
            assert render(streamed, "csv") == render(listed, "csv")


def test_the_cli_verify_keeps_the_bodies_compact(
    golden: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``custody verify`` (it re-hashes the store anyway) keeps the parsed bodies
    shared, as a report's verification does: at 10^5 items that is the difference
    between ~0.9 and ~0.6 GB.  ``--quick`` keeps the plain bodies (its speed is the
    benchmark).  What it prints is the plain verification's, on a tampered case."""
    case = _copy(golden, tmp_path, monkeypatch)
    bypass(case / "custody.db", _tables(TAMPERS["body"]), TAMPERS["body"])
    seen: list[bool] = []
    real = verify_ledger

    def spy(*args: Any, **kwargs: Any) -> VerifyReport:
        seen.append(bool(kwargs.get("compact")))
        return real(*args, **kwargs)

    monkeypatch.setattr("custody_cli.verify_cmds.verify_ledger", spy)
    full = invoke(["verify", "--json", "--case", case], env={}, cwd=case.parent)
    quick = invoke(["verify", "--quick", "--json", "--case", case], env={}, cwd=case.parent)
    assert seen == [True, False]
    assert (full.returncode, quick.returncode) == (1, 1)
    with Ledger.open(case, write=False) as led:
        plain = verify_ledger(led, parallel=False).as_json()
    printed = json.loads(full.stdout)
    assert printed["findings"] == plain["findings"]
    assert printed | {"findings": 0} == plain | {"findings": 0}
