"""Attacks on the staged import that moves ("adopts") staged payload files into the
store (r17): someone with write access to the lab's files swaps a staged copy in
the instant after its check (same size, other bytes; or a hard link to a file
outside the staging folder), and a bundle folder whose payload folder is a link."""

# ruff: noqa: F811 - the fixtures template and w come from test_import_trust
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest import one_error_line
from test_import_staging import GENUINE, trust
from test_import_trust import World, template, w  # noqa: F401 - the shared fixtures

from custody.bundle import archive

FORGED = b"the forged evidence!\n"
assert len(FORGED) == len(GENUINE)


def _swap_after_check(monkeypatch: pytest.MonkeyPatch, how: Any) -> None:
    """The staged copy of GENUINE passes its check, then is replaced by ``how``."""
    real = archive.StagedSource.untouched

    def untouched(self: archive.StagedSource, name: str) -> bool:
        ok = real(self, name)
        path = Path(self.files[name])
        if ok and path.read_bytes() == GENUINE:
            how(path)
        return ok

    monkeypatch.setattr(archive.StagedSource, "untouched", untouched)


@pytest.mark.parametrize("swap", ["replaced by a new file", "hard link", "rewritten in place"])
def test_a_staged_copy_swapped_after_its_check_never_becomes_the_object(
    w: World, monkeypatch: pytest.MonkeyPatch, swap: str
) -> None:
    """Another file (same size, other bytes; or a hard link to a file outside the
    staging folder), or the same file rewritten, under the staged name after its
    check and before it is linked into the store: refused (exit 1), nothing
    recorded, no forged object, the outside file never linked into the store."""
    outside = w.root / "outside-evidence"
    outside.write_bytes(FORGED)

    def how(path: Path) -> None:
        if swap == "rewritten in place":
            path.chmod(0o600)
            path.write_bytes(FORGED)
            return
        path.unlink()
        if swap == "hard link":
            os.link(outside, path)
        else:
            path.write_bytes(FORGED)

    _swap_after_check(monkeypatch, how)
    before = w.rows()
    proc = w.lab("bundle", "import", w.root / "b1", *trust(w))
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert line.startswith("custody: error: ") and line.endswith(
        " was changed or replaced after it was hashed"
    )
    assert w.rows() == before
    assert FORGED not in w.store().values()
    assert outside.stat().st_nlink == 1
