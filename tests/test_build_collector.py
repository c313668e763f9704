"""custody build-collector (issue 17 §6): one zipapp that runs from the USB drive
with the host's python3 and nothing installed, unpacks its native modules next to
itself (never onto the host's disk), and records its own SHA-256 in each
collection.start.

The wheels come from a cache (``CUSTODY_TEST_WHEELS``, default
``~/.cache/custody/collector-wheels``), filled from the package index the first
time; the tests are skipped, saying so, when neither has them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, Run

pytestmark = pytest.mark.slow


def _host_python() -> str:
    """The host's python3 (not this venv's), when it is one the collector supports."""
    for cand in ("/usr/bin/python3", shutil.which("python3") or ""):
        if not cand or not os.path.exists(cand):
            continue
        ver = subprocess.run(
            [cand, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if ver in ("3.11", "3.12", "3.13"):
            return cand
    return sys.executable


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from custody.buildcollector import IndexUnreachableError, build_collector, default_cache

    media = tmp_path_factory.mktemp("usb")
    cache = Path(os.environ.get("CUSTODY_TEST_WHEELS") or default_cache())
    try:
        result = build_collector(media / "custody.pyz", cache=cache)
    except IndexUnreachableError as e:
        pytest.skip(f"no cached wheels and the package index is unreachable: {e.message}")
    assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()
    return result.path


def fresh(pyz: Path, *args: str | os.PathLike[str], cwd: Path, home: Path) -> Any:
    """``python3 -I -S custody.pyz ARGS``: no site-packages, no user environment; HOME
    and TMPDIR point where nothing exists, so a write to the host's disk fails."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home / "no-home"),
        "TMPDIR": str(home / "no-tmp"),
        "CUSTODY_CONFIG_DIR": str(home / "cfg"),
        "CUSTODY_PASSPHRASE": PASSPHRASE,
    }
    return subprocess.run(
        [_host_python(), "-I", "-S", str(pyz), *map(os.fspath, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def starts(case: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(case / "custody.db")
    try:
        rows = con.execute("SELECT body FROM events WHERE type = 'collection.start' ORDER BY seq")
        return [json.loads(b)["data"] for (b,) in rows]
    finally:
        con.close()


def test_collector_runs_in_a_bare_interpreter_and_records_its_digest(
    collector: Path, tmp_path: Path
) -> None:
    digest = hashlib.sha256(collector.read_bytes()).hexdigest()
    ev = tmp_path / "evidence.txt"
    ev.write_bytes(b"exfiltrated payroll\n")

    def ok(*args: str | os.PathLike[str], cwd: Path = tmp_path) -> str:
        proc = fresh(collector, *args, cwd=cwd, home=tmp_path)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        return proc.stdout

    ok("key", "new", "--name", "Dana Reyes", "--role", "collector", "--out", tmp_path / "d.pem")
    ok("init", tmp_path / "case", "--case-id", "2026-017", "--title", "t")
    ok("collect", ev, "--reason", "from the USB drive", cwd=tmp_path / "case")
    ok("capture", "--reason", "live response", "--", "uname", "-a", cwd=tmp_path / "case")
    assert "OK" in ok("verify", cwd=tmp_path / "case")
    recorded = [s["collector"] for s in starts(tmp_path / "case")]
    assert [c["sha256"] for c in recorded] == [digest, digest]
    assert recorded[0]["path"]["display"] == str(collector)
    assert recorded[0]["size"] == collector.stat().st_size
    # unpacked on the collector's media, beside the zipapp; nothing on the host
    unpacked = collector.parent / ".custody-collector" / digest[:16]
    want = f"cp{sys.version_info[0]}{_minor()}-{_arch()}"
    assert {p.name.split(".")[0] for p in unpacked.iterdir()} == {want}
    assert not (tmp_path / "no-home").exists() and not (tmp_path / "no-tmp").exists()


def _minor() -> str:
    out = subprocess.run(
        [_host_python(), "-I", "-S", "-c", "import sys; print(sys.version_info[1])"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def _arch() -> str:
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(os.uname().machine, os.uname().machine)


def test_a_module_changed_on_the_media_is_never_run(collector: Path, tmp_path: Path) -> None:
    """Someone with the drive but not the zipapp's digest edits an unpacked module,
    or drops a .py beside them: the collector unpacks afresh and does not use it."""
    first = fresh(collector, "--version", cwd=tmp_path, home=tmp_path)
    assert first.returncode == 0, first.stderr
    digest = hashlib.sha256(collector.read_bytes()).hexdigest()
    base = collector.parent / ".custody-collector" / digest[:16]
    root = sorted(base.iterdir())[0]
    marker = tmp_path / "pwned"
    hook = f"open({str(marker)!r}, 'w').write('x')\n"
    init = root / "custody" / "__init__.py"
    init.chmod(0o600)
    init.write_text(init.read_text() + hook)
    proc = fresh(collector, "--version", cwd=tmp_path, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    assert len(list(base.iterdir())) == 2  # a fresh copy beside the changed one


def test_never_written_over_an_existing_file(tmp_path: Path, run: Run) -> None:
    out = tmp_path / "custody.pyz"
    out.write_bytes(b"someone's file")
    proc = run("build-collector", "--out", out)
    assert proc.returncode == 2
    assert (
        proc.stderr == f"custody: error: {out} exists: the collector is never written over a file\n"
    )
    assert out.read_bytes() == b"someone's file"
