"""The display rule (issue 13, item 4; custody/display.py, docs/reports.md "How text
is shown"): control characters, bidi controls and line separators in names,
reasons and paths never reach a terminal or a report raw, a backslash is doubled so
the escaped text is unambiguous, and the exact text stays available (JSON output,
the path's hex, the CSV's exact columns)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import unicodedata
from pathlib import Path

import pytest
from conftest import PASSPHRASE, Case, cli, new_key, ok_json, one_error_line

from custody.display import (
    formula_guarded,
    needs_escape,
    path_text,
    shown,
    shown_bytes,
    shown_model,
)
from custody.keys import Identity, load_public_key, load_signer
from custody.ledger import Ledger
from custody.render.csv_form import COLUMNS, DISPLAY_COLUMNS

BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
SEPARATORS = [0x2028, 0x2029, 0x0085]

# a file name with a newline and a forged `custody list` row, ESC[31m, U+202E, a backslash
NAME = "memo\nITEM-99  file  9  deadbeefdeadbeef  text-plain  forged\x1b[31m\u202egnp.exe\\x"
NAME_SHOWN = (
    "memo\\nITEM-99  file  9  deadbeefdeadbeef  text-plain  forged\\x1b[31m\\u202egnp.exe\\\\x"
)
REASON = "ok\nITEM-98 forged reason\x1b[2J\u202eevil\\n"
REASON_SHOWN = "ok\\nITEM-98 forged reason\\x1b[2J\\u202eevil\\\\n"
KEY_NAME = "Mallory\nsha256:0000  Forged Row\x1b]0;t\x07\u202eyroM\\"
KEY_NAME_SHOWN = "Mallory\\nsha256:0000  Forged Row\\x1b]0;t\\x07\\u202eyroM\\\\"


def raw_unsafe(text: str) -> list[str]:
    """Every control, bidi or separator character in ``text`` other than the line
    breaks between lines (a trailing ``\\n`` per line)."""
    bad = []
    for line in text.split("\n"):
        for ch in line:
            cp = ord(ch)
            if (
                unicodedata.category(ch) == "Cc"
                or cp in BIDI
                or cp in SEPARATORS
                or 0xD800 <= cp <= 0xDFFF
            ):
                bad.append(ch)
    return bad


# -- the escape function -----------------------------------------------------------


@pytest.mark.parametrize("cp", [*range(0x20), 0x7F])
def test_every_c0_control_and_del(cp: int) -> None:
    named = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
    want = named.get(cp, "\\x" + f"{cp:02x}")
    assert shown(f"a{chr(cp)}b") == f"a{want}b"


@pytest.mark.parametrize("cp", range(0x80, 0xA0))
def test_every_c1_control(cp: int) -> None:
    assert shown(chr(cp)) == f"\\u{cp:04x}"


@pytest.mark.parametrize("cp", [*BIDI, *SEPARATORS])
def test_every_bidi_control_and_separator(cp: int) -> None:
    assert shown(f"x{chr(cp)}y") == f"x\\u{cp:04x}y"
    assert needs_escape(chr(cp))


def test_named_examples_and_backslash() -> None:
    assert shown("a\nb") == "a\\nb"
    assert shown("\x1b[31m") == "\\x1b[31m"
    assert shown("report\u202egnp.exe") == "report\\u202egnp.exe"
    assert shown("C:\\temp\\new") == "C:\\\\temp\\\\new"
    # a literal backslash-n and a newline are shown differently
    assert shown("\\n") == "\\\\n" != shown("\n")
    assert shown(None) == "" and shown(7) == "7"


def test_plain_unicode_is_left_alone() -> None:
    for text in ("é", "café", "漢字テスト", "Ωμέγα", "Zoë Ångström 😀", "a b\u00a0c", "-=+@"):
        assert shown(text) == text
        assert not needs_escape(text)


def test_paths_from_their_bytes() -> None:
    # an undecodable byte is \xNN (>= \x80); a C1 character is \u0085: never the same
    assert shown_bytes(b"/ev/\xff\xc2\x85\\") == "/ev/\\xff\\u0085\\\\"
    # the byte 0xff and the text "\xff" are shown differently
    assert shown_bytes(b"\xff") != shown_bytes(b"\\xff") == "\\\\xff"
    assert path_text("/display", b"/a\nb".hex()) == "/a\nb"
    assert path_text("/display", "not hex") == "/display"
    assert shown_bytes("/é/漢".encode()) == "/é/漢"


def test_formula_guard() -> None:
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert formula_guarded(f"{start}1") == f"'{start}1"
    assert formula_guarded("plain") == "plain" and formula_guarded("") == ""


def test_shown_model_keeps_the_note_lines_and_shows_paths_from_bytes() -> None:
    model = {"a": ["x\ny", {"path": "/p\\xff", "path_hex": b"/p\xff\n".hex()}], "note": "a\n\x1b"}
    assert shown_model(model) == {
        "a": ["x\\ny", {"path": "/p\\xff\\n", "path_hex": b"/p\xff\n".hex()}],
        "note": "a\n\\x1b",
    }


# -- the CLI -----------------------------------------------------------------------


@pytest.fixture
def hostile(case: Case, tmp_path: Path) -> Case:
    """The case with ITEM-1 collected from a file named NAME for REASON, and a key
    imported under KEY_NAME."""
    ev = case.dir / "ev"
    ev.mkdir()
    (ev / NAME).write_bytes(b"hostile name\n")
    proc = cli(case, "collect", ev / NAME, "--reason", REASON, "--no-selftest")
    assert proc.returncode == 0, proc.stderr
    assert not raw_unsafe(proc.stdout), proc.stdout
    assert shown(str(ev / NAME)) in proc.stdout
    new_key(case.run, tmp_path / "m.pem", "Mallory", "examiner", default=False)
    # the CLI refuses such a name and role (cli/common.py TextType, issue 15), but a
    # ledger written by an earlier custody or by another tool may hold them
    proc = cli(case, "key", "import", tmp_path / "m.pub", "--name", KEY_NAME, "--role", "x\ty")
    assert proc.returncode == 2
    assert one_error_line(proc).startswith("custody: error: --name must be a single line")
    with Ledger.open(case.dir) as ledger:
        owner = load_signer(case.key, PASSPHRASE.encode())
        other = Identity(KEY_NAME, "x\ty", load_public_key(tmp_path / "m.pub"))
        assert ledger.register_identity(owner, other) is not None
    proc = cli(case, "key", "list")
    assert proc.returncode == 0, proc.stderr
    assert not raw_unsafe(proc.stdout) and KEY_NAME_SHOWN in proc.stdout, proc.stdout
    return case


def _out(case: Case, *args: str) -> str:
    proc = cli(case, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_list_one_line_per_item_escaped(hostile: Case) -> None:
    out = _out(hostile, "list")
    assert not raw_unsafe(out), out
    lines = out.splitlines()
    assert len(lines) == 2  # the header and ITEM-1: no forged ITEM-99 row
    assert lines[1].startswith("ITEM-1 ") and lines[1].endswith(
        str(hostile.dir / "ev") + "/" + NAME_SHOWN
    )
    assert not any(line.startswith("ITEM-99") for line in lines)


def test_log_one_line_per_event_escaped(hostile: Case) -> None:
    events = ok_json(hostile, "log", "--json")
    out = _out(hostile, "log")
    assert not raw_unsafe(out), out
    lines = out.splitlines()
    assert len(lines) == 1 + len(events)
    assert any(line.endswith("/" + NAME_SHOWN) for line in lines)
    assert any(f"reason: '{REASON_SHOWN}'" in line for line in lines)
    assert any(KEY_NAME_SHOWN in line for line in lines)


def test_show_escaped(hostile: Case) -> None:
    out = _out(hostile, "show", "ITEM-1")
    assert not raw_unsafe(out), out
    lines = out.splitlines()
    assert f"Path:      {hostile.dir / 'ev'}/{NAME_SHOWN}" in lines
    assert f"Reason:    {REASON_SHOWN}" in lines
    assert not any(line.startswith("ITEM-9") for line in lines)


def test_key_list_one_line_per_key_escaped(hostile: Case) -> None:
    keys = ok_json(hostile, "key", "list", "--json")
    out = _out(hostile, "key", "list")
    assert not raw_unsafe(out), out
    lines = out.splitlines()
    assert len(lines) == 1 + len(keys)
    row = next(line for line in lines if "Mallory" in line)
    assert f"{KEY_NAME_SHOWN}  x\\ty " in row


def test_json_stays_exact(hostile: Case) -> None:
    (item,) = ok_json(hostile, "list", "--json")
    assert item["path"] == str(hostile.dir / "ev" / NAME)
    assert bytes.fromhex(item["path_hex"]) == str(hostile.dir / "ev" / NAME).encode()
    assert item["reason"] == REASON
    assert ok_json(hostile, "show", "ITEM-1", "--json")["reason"] == REASON
    names = [k["name"] for k in ok_json(hostile, "key", "list", "--json")]
    assert KEY_NAME in names
    events = ok_json(hostile, "log", "--json")
    assert any(e["signer_name"] == "Dana Reyes" for e in events)
    bodies = [json.loads(e["body"]) if isinstance(e["body"], str) else e["body"] for e in events]
    assert any(b["data"].get("name") == KEY_NAME for b in bodies)


def test_error_message_echoing_input_is_escaped(hostile: Case) -> None:
    proc = cli(hostile, "show", "ITEM-1\n\x1b[31m\u202e")
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert not raw_unsafe(proc.stderr), proc.stderr
    assert "ITEM-1\\n\\x1b[31m\\u202e" in proc.stderr


def test_verify_human_output_has_no_raw_controls(hostile: Case) -> None:
    out = _out(hostile, "verify")
    assert not raw_unsafe(out), out


# -- the reports -------------------------------------------------------------------


def _report(case: Case, fmt: str, tmp_path: Path) -> bytes:
    out = tmp_path / f"report.{fmt}"
    proc = cli(case, "report", "--format", fmt, "--detail", "all", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert not raw_unsafe(proc.stdout)
    return out.read_bytes()


def test_html_report(hostile: Case, tmp_path: Path) -> None:
    text = _report(hostile, "html", tmp_path).decode("utf-8")
    assert not raw_unsafe(text)
    assert NAME_SHOWN in text  # it holds no HTML special character
    assert REASON_SHOWN in text
    assert KEY_NAME_SHOWN in text


def test_html_escapes_after_the_rule() -> None:
    from custody.render import html as html_render

    assert html_render._e("<b>\u202e&\n") == "&lt;b&gt;\\u202e&amp;\\n"


def test_certification_report(hostile: Case, tmp_path: Path) -> None:
    text = _report(hostile, "certification", tmp_path).decode("utf-8")
    assert not raw_unsafe(text)
    assert "\u202e" not in text and "\x1b" not in text
    # Markdown-escaped: the rendered text reads NAME_SHOWN (backslashes doubled again)
    assert NAME_SHOWN.replace("\\", "\\\\").replace("[", "\\[") in text
    assert "(exact bytes, hex: `" in text


def test_csv_report(hostile: Case, tmp_path: Path) -> None:
    data = _report(hostile, "csv", tmp_path)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[0] == list(COLUMNS)
    body = [dict(zip(COLUMNS, r, strict=True)) for r in rows[1:]]
    collect = next(r for r in body if r["action"] == "collected")
    assert collect["path"] == f"{hostile.dir / 'ev'}/{NAME_SHOWN}"
    assert bytes.fromhex(collect["path_hex"]) == str(hostile.dir / "ev" / NAME).encode()
    assert collect["reason"] == REASON_SHOWN and collect["reason_exact"] == REASON
    assert collect["description"].startswith(f"{hostile.dir / 'ev'}/{NAME_SHOWN} (")
    assert collect["description_exact"].startswith(f"{hostile.dir / 'ev' / NAME} (")
    for r in body:
        for name in DISPLAY_COLUMNS:
            assert r[name] == formula_guarded(shown(r[f"{name}_exact"])), name
        display = [v for k, v in r.items() if not k.endswith("_exact")]
        assert not raw_unsafe("".join(display)), r


def test_csv_formula_guard_on_a_display_column(hostile: Case, tmp_path: Path) -> None:
    proc = cli(hostile, "event", "note", "ITEM-1", "--reason", '=HYPERLINK("x")')
    assert proc.returncode == 0, proc.stderr
    data = _report(hostile, "csv", tmp_path)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    body = [dict(zip(COLUMNS, r, strict=True)) for r in rows[1:]]
    note = next(r for r in body if r["reason_exact"].startswith("="))
    assert note["reason"] == '\'=HYPERLINK("x")'


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_pdf_report(hostile: Case, tmp_path: Path) -> None:
    _report(hostile, "pdf", tmp_path)
    text = subprocess.run(
        ["pdftotext", "-raw", str(tmp_path / "report.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert not raw_unsafe(text.replace("\f", ""))
    assert "\\u202egnp.exe" in text and "\\x1b[31m" in text
    assert "".join(REASON_SHOWN.split()) in "".join(text.split())


def test_json_report_stays_exact(hostile: Case, tmp_path: Path) -> None:
    model = json.loads(_report(hostile, "json", tmp_path))
    (item,) = model["items"]
    assert item["path"] == str(hostile.dir / "ev" / NAME)
    assert item["timeline"][0]["reason"] == REASON


def test_case_uco_descriptions_follow_the_rule_data_stays_exact(
    hostile: Case, tmp_path: Path
) -> None:
    graph = json.loads(_report(hostile, "case", tmp_path))["@graph"]
    descriptions = []
    for node in graph:
        desc = node.get("uco-core:description", [])
        descriptions += desc if isinstance(desc, list) else [desc]
    text = "\n".join(descriptions)
    assert not raw_unsafe(text), text
    assert any(REASON_SHOWN in d for d in descriptions)
    # the data fields stay exact: the file's path
    dumped = json.dumps(graph, ensure_ascii=False)
    assert json.dumps(str(hostile.dir / "ev" / NAME), ensure_ascii=False) in dumped


def test_transfer_and_bundle_verify_messages(hostile: Case, tmp_path: Path) -> None:
    proc = cli(hostile, "transfer", "ITEM-1", "--to", KEY_NAME, "--reason", REASON)
    assert proc.returncode == 0, proc.stderr
    assert not raw_unsafe(proc.stdout) and len(proc.stdout.splitlines()) == 1, proc.stdout
    assert f"released to {KEY_NAME_SHOWN}" in proc.stdout
    out = tmp_path / "bundle"
    proc = cli(hostile, "bundle", "export", "ITEM-1", "--out", out)
    assert proc.returncode == 0, proc.stderr
    proc = cli(hostile, "bundle", "verify", out, "--accept-self-asserted")
    assert proc.returncode == 0, proc.stderr
    assert not raw_unsafe(proc.stdout), proc.stdout
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("  ITEM-1: released by")]
    assert line.endswith(f" - {REASON_SHOWN}")


def test_verification_lines_show_findings_by_the_rule() -> None:
    from custody.findings import Kind
    from custody.verify import VerifyReport
    from custody.views import verification_lines

    report = VerifyReport(case_id="C\u202e1", quick=True, notes=[f"note {NAME}"])
    report.add(next(iter(Kind)), f"item {NAME}", REASON)
    lines = verification_lines(report)
    assert not raw_unsafe("\n".join(lines)), lines
    assert lines[0].startswith("Case C\\u202e1: ")
    assert f"Note: note {NAME_SHOWN}" in lines
    assert lines[-1].endswith(f"item {NAME_SHOWN}: {REASON_SHOWN}")
