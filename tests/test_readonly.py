"""Counsel verifying a write-blocked copy: a case on read-only media verifies,
and recording there is refused before any work starts (exit 2)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Case


@pytest.fixture
def ro_case(case: Case, tmp_path: Path) -> Iterator[Path]:
    src = tmp_path / "ev.txt"
    src.write_text("evidence\n")
    case("collect", src, "--reason", "r", check=True)
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "--bind", str(case.dir), str(mnt)], capture_output=True).returncode:
        pytest.skip("bind mounts are not available here")
    try:
        subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(mnt)], check=True, capture_output=True
        )
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_verify_on_read_only_media(case: Case, ro_case: Path) -> None:
    proc = case.run("verify", "--json", "--case", ro_case)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ok"] is True
    assert not (ro_case / "custody.db-shm").exists()


def test_collect_refused_on_read_only_media(case: Case, ro_case: Path, tmp_path: Path) -> None:
    before = case.run("log", "--json", "--case", ro_case, check=True).stdout
    f = tmp_path / "more.txt"
    f.write_text("more\n")
    proc = case.run("collect", "--reason", "test", f, "--case", ro_case)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"custody: error: case {ro_case} is on read-only media: nothing can be recorded there"
    ]
    assert case.run("log", "--json", "--case", ro_case, check=True).stdout == before
