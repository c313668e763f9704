"""The case every report test uses (issue 5): two items, a hand-over, a seal, and
one tampered item.

* ITEM-1 ``memo, "final".txt`` (a name with a comma and quotes): collected by
  Dana Reyes (collector), handed over to Lee Okafor (counsel) as TRANSFER-<n>
  with reason ``for counsel, review`` at ``Room 4, HQ``, received by Lee, then
  sealed by Lee.
* ITEM-2 ``auth.log``: collected by Dana; afterwards one byte of its stored copy
  is flipped, so verify reports ``object-digest`` for it and every report must
  show ITEM-2 failing and ITEM-1 intact.

``report_case`` yields a ``ReportCase``: a private copy of a template built once
per session through the real CLI.  Import the fixtures into a test module:

    from report_fixtures import ReportCase, report_case, report_template  # noqa: F401
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, invoke, new_key

ITEM1_NAME = 'memo, "final".txt'
ITEM1_BYTES = b"Quarterly payroll memo\nline two, with a comma\n"
ITEM2_BYTES = b"Nov 27 10:01:02 payroll sshd[812]: Accepted password for admin\n"
REASON = "for counsel, review"
LOCATION = "Room 4, HQ"


@dataclass
class ReportCase:
    dir: Path  # the case directory
    root: Path  # holds dana.pem/.pub, lee.pem/.pub and evidence/
    env: dict[str, str]
    template: dict[str, Any]

    def run(
        self, *args: str | os.PathLike[str], key: str = "dana", check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            **self.env,
            "CUSTODY_CASE": str(self.dir),
            "CUSTODY_KEY": str(self.root / f"{key}.pem"),
        }
        proc = invoke(args, env=env, cwd=self.root)
        if check and proc.returncode != 0:
            raise AssertionError(f"custody {args} exited {proc.returncode}: {proc.stderr}")
        return proc

    def report(self, fmt: str, *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
        """Run ``custody report --format fmt --out <file>``; return the process and file."""
        suffix = {
            "html": "html",
            "pdf": "pdf",
            "csv": "csv",
            "json": "json",
            "case": "jsonld",
            "certification": "md",
        }[fmt]
        out = self.root / f"report-{fmt}-{len(list(self.root.glob('report-*')))}.{suffix}"
        return self.run("report", *extra, "--format", fmt, "--out", out), out

    @property
    def sha256(self) -> dict[str, str]:
        return {
            "ITEM-1": hashlib.sha256(ITEM1_BYTES).hexdigest(),
            "ITEM-2": hashlib.sha256(ITEM2_BYTES).hexdigest(),
        }


def _build(root: Path, env: dict[str, str]) -> dict[str, Any]:
    case = ReportCase(root / "case", root, env, {})
    ev = root / "evidence"
    ev.mkdir()
    (ev / ITEM1_NAME).write_bytes(ITEM1_BYTES)
    (ev / "auth.log").write_bytes(ITEM2_BYTES)
    new_key(case.run, root / "dana.pem", "Dana Reyes", "collector", default=False)
    new_key(case.run, root / "lee.pem", "Lee Okafor", "counsel", default=False)
    case.run(
        "init", case.dir, "--case-id", "2026-017", "--title", "Payroll server breach", check=True
    )
    case.run("collect", "--reason", "suspected exfiltration", ev / ITEM1_NAME, check=True)
    case.run("collect", "--reason", "suspected exfiltration", ev / "auth.log", check=True)
    case.run(
        "key", "import", root / "lee.pub", "--name", "Lee Okafor", "--role", "counsel", check=True
    )
    t = case.run(
        "transfer",
        "ITEM-1",
        "--to",
        "Lee Okafor",
        "--reason",
        REASON,
        "--location",
        LOCATION,
        "--json",
        check=True,
    )
    tid = json.loads(t.stdout)["id"]
    case.run("receive", tid, "--location", "Counsel's office", key="lee", check=True)
    case.run("event", "seal", "ITEM-1", "--reason", "sealed in bag 44", key="lee", check=True)
    # tamper with ITEM-2's stored copy: one byte flipped
    sha = hashlib.sha256(ITEM2_BYTES).hexdigest()
    obj = case.dir / "store" / "sha256" / sha[:2] / sha
    obj.chmod(0o644)
    data = bytearray(obj.read_bytes())
    data[0] ^= 0x01
    obj.write_bytes(bytes(data))
    obj.chmod(0o400)
    return {"transfer": tid, "store_object_item2": str(obj.relative_to(case.dir))}


@pytest.fixture(scope="session")
def report_template(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, str], dict[str, Any]]:
    root = tmp_path_factory.mktemp("report-template")
    env = {"CUSTODY_CONFIG_DIR": str(root / "config"), "CUSTODY_PASSPHRASE": PASSPHRASE}
    return root, env, _build(root, env)


@pytest.fixture
def report_case(
    report_template: tuple[Path, dict[str, str], dict[str, Any]], tmp_path: Path
) -> ReportCase:
    root, env, info = report_template
    mine = tmp_path / "rc"
    shutil.copytree(root, mine, symlinks=True)
    env = {**env, "CUSTODY_CONFIG_DIR": str(mine / "config")}
    return ReportCase(mine / "case", mine, env, info)
