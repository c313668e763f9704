"""Issue 15: a store object replaced by a directory, a FIFO, a link (to /dev/zero,
or to a copy outside the store holding the very same bytes) or reached through a
linked folder is read by nobody: ``verify`` and ``report`` report it as
``object-not-regular`` (exit 1), ``receive`` records the item as not matching,
``bundle export`` refuses it (exit 1).  Never a hang, never an internal error.

What the attacker has: write access to the case folder, no key."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import Case, Run, cli, new_key, one_error_line, template_case
from hostile_helpers import deadline

EVIDENCE = b"Accepted password for svc-payroll from 10.0.0.7\n"
SHA = hashlib.sha256(EVIDENCE).hexdigest()
REL = f"sha256/{SHA[:2]}/{SHA}"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A case: ITEM-1 collected by Dana, Lee's key attested, ITEM-1 in transit to Lee."""
    root = tmp_path_factory.mktemp("hostile-store")
    case = template_case(root)
    new_key(case.run, root / "lee.pem", "Lee Okafor", "counsel", default=False)
    (root / "auth.log").write_bytes(EVIDENCE)
    case("collect", "--reason", "r", root / "auth.log", check=True)
    case("key", "import", root / "lee.pub", "--name", "Lee Okafor", "--role", "counsel", check=True)
    t = case("transfer", "ITEM-1", "--to", "Lee Okafor", "--reason", "r", "--json", check=True)
    (root / "tid").write_text(json.loads(t.stdout)["id"])
    return root


@pytest.fixture
def story(template: Path, run: Run, tmp_path: Path) -> Case:
    for name in ("case", "config"):
        shutil.copytree(template / name, tmp_path / name, symlinks=True)
    for f in ("dana.pem", "dana.pub", "lee.pem", "lee.pub", "tid"):
        shutil.copy2(template / f, tmp_path / f)
    run.env["CUSTODY_CONFIG_DIR"] = str(tmp_path / "config")
    run.env["CUSTODY_KEY"] = str(tmp_path / "dana.pem")
    return Case(dir=tmp_path / "case", key=tmp_path / "dana.pem", run=run)


HOSTILE = ("directory", "fifo", "link-to-dev-zero", "link-to-outside-copy", "linked-folder")


def replace_object(case: Case, how: str) -> None:
    obj = case.dir / "store" / REL
    obj.parent.chmod(0o700)
    outside = case.dir.parent / "outside"
    outside.mkdir()
    shutil.copy2(obj, outside / SHA)  # the very same bytes, outside the store
    if how == "linked-folder":  # sha256/ab -> a folder outside holding the copy
        shutil.rmtree(obj.parent)
        obj.parent.symlink_to(outside)
        return
    obj.unlink()
    if how == "directory":
        obj.mkdir()
    elif how == "fifo":
        os.mkfifo(obj)
    elif how == "link-to-dev-zero":
        obj.symlink_to("/dev/zero")
    elif how == "link-to-outside-copy":
        obj.symlink_to(outside / SHA)


def _run(case: Case, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    with deadline(20):
        return cli(case, *args)


@pytest.mark.parametrize("how", HOSTILE)
def test_verify_reports_object_not_regular(story: Case, how: str) -> None:
    replace_object(story, how)
    proc = _run(story, "verify", "--json")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    findings = json.loads(proc.stdout)["findings"]
    assert [f["kind"] for f in findings] == ["object-not-regular"], findings
    assert REL in findings[0]["subject"]


@pytest.mark.parametrize("how", HOSTILE)
def test_case_report_records_object_not_regular(story: Case, how: str) -> None:
    replace_object(story, how)
    out = story.dir.parent / "r.json"
    proc = _run(story, "report", "--format", "json", "--out", out)
    assert proc.returncode == 1, proc.stderr
    kinds = [f["kind"] for f in json.loads(out.read_text())["verification"]["findings"]]
    assert kinds == ["object-not-regular"]


@pytest.mark.parametrize("how", HOSTILE)
def test_receive_records_the_item_as_not_matching(story: Case, how: str) -> None:
    replace_object(story, how)
    tid = (story.dir.parent / "tid").read_text()
    proc = _run(story, "receive", tid, "--key", story.dir.parent / "lee.pem", "--json")
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert proc.returncode in (0, 1), proc.stderr
    events = json.loads(_run(story, "log", "--json").stdout)
    receipt = [e for e in events if e["type"] == "receive"][-1]
    item = json.loads(receipt["body"])["data"]["items"]["ITEM-1"]
    assert item["match"] is False and item["found"] is None
    assert "not a regular file" in item["error"]


@pytest.mark.parametrize("how", HOSTILE)
def test_bundle_export_refuses_a_hostile_object(story: Case, how: str) -> None:
    replace_object(story, how)
    events = len(json.loads(_run(story, "log", "--json").stdout))
    out = story.dir.parent / "b.tar"
    proc = _run(story, "bundle", "export", "--all", "--out", out)
    assert proc.returncode == 1, proc.stderr
    assert "not a regular file" in one_error_line(proc)
    assert not out.exists()
    assert len(json.loads(_run(story, "log", "--json").stdout)) == events  # nothing signed


def test_an_intact_store_still_verifies(story: Case) -> None:
    assert _run(story, "verify").returncode == 0
