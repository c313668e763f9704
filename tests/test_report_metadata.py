"""Issue 16 §1 (part): the recorded metadata and each receipt's signed location, extracted
once in custody.views and shown by ``custody show`` (text and JSON)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from report_fixtures import ITEM1_NAME, ReportCase, report_case, report_template  # noqa: F401

from custody.views import item_metadata


def test_show_json_has_the_recorded_metadata_and_receipt_location(
    report_case: ReportCase,  # noqa: F811
    report_template: tuple[Path, dict[str, str], dict[str, Any]],  # noqa: F811
) -> None:
    proc = report_case.run("show", "ITEM-1", "--json")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    st = os.lstat(report_template[0] / "evidence" / ITEM1_NAME)
    meta = shown["metadata"]
    assert meta["mode"] == stat.filemode(st.st_mode)
    assert (meta["uid"], meta["gid"], meta["inode"]) == (st.st_uid, st.st_gid, str(st.st_ino))
    assert meta["size"] == st.st_size and meta["kind"] == "file"
    assert meta["symlink_target"] is None
    (h,) = shown["handovers"]
    assert h["receipt_location"] == "Counsel's office"
    assert h["location"] == "Room 4, HQ"


def test_show_text_prints_metadata_and_where_it_was_received(
    report_case: ReportCase,  # noqa: F811
) -> None:
    proc = report_case.run("show", "ITEM-1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "Metadata:" in lines
    assert any(line.startswith("  Mode:") and line.split()[-1].startswith("-") for line in lines)
    assert "  Received at: Counsel's office" in lines


def test_hostile_symlink_target_is_escaped_in_show() -> None:
    data = {
        "host": "srv",
        "source": {"kind": "symlink", "mode_str": "lrwxrwxrwx", "uid": True, "size": "5"},
        "target": {"display": "a\nITEM-9 forged\u202e", "hex": "610a"},
    }
    meta = item_metadata(data)
    # wrong types are not shown as recorded facts
    assert meta["uid"] is None and meta["size"] is None
    from custody.views import metadata_lines

    lines = metadata_lines(meta)
    assert "  Symlink target:       a\\nITEM-9 forged\\u202e" in lines
    assert all("\n" not in line for line in lines)
