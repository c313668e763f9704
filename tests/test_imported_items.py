"""Imported items are first-class (issue 14, scope 1): ids that cannot collide
across sources, and every command takes them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import Case, Run, template_case


@pytest.fixture(scope="module")
def lab_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Case, list[Path]]:
    """Two hosts of one incident (both case NC-001, each with two files) exported
    as bundles; a lab case LAB-1 importing both."""
    root = tmp_path_factory.mktemp("lab")
    c = template_case(root)
    bundles = []
    for host in ("host1", "host2"):
        d = root / host
        d.mkdir()
        (d / "evidence.txt").write_text(f"{host} evidence\n")
        (d / "notes.txt").write_text(f"{host} notes\n")
        case_dir = root / f"{host}-case"
        c.run("init", case_dir, "--case-id", "NC-001", "--title", host, check=True)
        c.run("collect", d / "evidence.txt", d / "notes.txt", "--reason", "r", cwd=case_dir, check=True)
        out = root / f"{host}.tar"
        c.run("bundle", "export", "--all", "--out", out, cwd=case_dir, check=True)
        bundles.append(out)
    lab = root / "lab-case"
    c.run("init", lab, "--case-id", "LAB-1", "--title", "lab", check=True)
    for b in bundles:
        c.run("bundle", "import", b, cwd=lab, check=True)
    return Case(dir=lab, key=c.key, run=c.run), bundles


@pytest.fixture
def lab(lab_template: tuple[Case, list[Path]], run: Run, tmp_path: Path) -> Case:
    """A copy of the lab case, signed by the template's key."""
    tpl, _ = lab_template
    d = tmp_path / "lab"
    shutil.copytree(tpl.dir, d)
    return Case(dir=d, key=tpl.key, run=tpl.run)
