"""Issue 15: every decoder error of every archive and compression format custody
reads (.tar, .tar.gz, .tar.bz2, .tar.xz, .zip) is exit 2 with one short line; a
folder bundle nested 3,000 deep is exit 2 with a short line; a bundle path that
is a FIFO or a device is refused before it is read; ``report --bundle`` on hostile
bundles exits 1 or 2 with one line, never 3, and ``bundle verify`` never passes
them.

The hostile bundles are generated here from the good bundle of
tests/test_bundle_hostile.py (exported by the real CLI), each with one thing
changed and the tag manifest recomputed (anyone holding a bundle can): see
:data:`HOSTILE_BUNDLES`."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import test_bundle_hostile
from conftest import Run, one_error_line
from hostile_helpers import deadline
from tampering import retag
from test_bundle_hostile import TOP, bag_files

from custody.bundle.archive import MAX_PATH_DEPTH

good = test_bundle_hostile.good  # the good bundle, exported once per module


def _verify(
    run: Run, bundle: Path, *more: str | os.PathLike[str]
) -> subprocess.CompletedProcess[str]:
    with deadline(30):
        return run("bundle", "verify", bundle, "--accept-self-asserted", *more)


def _tar(path: Path, bag: Path, mode: str) -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in bag_files(bag).items():
            info = tarfile.TarInfo(f"{TOP}/{name}")
            info.size, info.mode, info.mtime = len(data), 0o600, 1_790_000_000
            tar.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, bag: Path, method: int) -> Path:
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in bag_files(bag).items():
            z.writestr(f"{TOP}/{name}", data)
    return path


def _flip_middle(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    i = len(data) // 2
    for k in range(i, i + 4):
        data[k] ^= 0xA5
    path.write_bytes(bytes(data))
    return path


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def _zip_corrupt_first_member(path: Path) -> Path:
    """Flip bytes inside the first member's (compressed or stored) data."""
    data = bytearray(path.read_bytes())
    n = int.from_bytes(data[26:28], "little")
    m = int.from_bytes(data[28:30], "little")
    start = 30 + n + m
    for k in range(start, start + 4):
        data[k] ^= 0xA5
    path.write_bytes(bytes(data))
    return path


ARCHIVES: dict[str, Callable[[Path, Path], Path]] = {
    "tar.xz-flipped": lambda d, g: _flip_middle(_tar(d / "b.tar.xz", g, "w:xz")),
    "tar.xz-truncated": lambda d, g: _truncate(_tar(d / "b.tar.xz", g, "w:xz")),
    "tar.gz-flipped": lambda d, g: _flip_middle(_tar(d / "b.tar.gz", g, "w:gz")),
    "tar.gz-truncated": lambda d, g: _truncate(_tar(d / "b.tar.gz", g, "w:gz")),
    "tar.bz2-flipped": lambda d, g: _flip_middle(_tar(d / "b.tar.bz2", g, "w:bz2")),
    "tar.bz2-truncated": lambda d, g: _truncate(_tar(d / "b.tar.bz2", g, "w:bz2")),
    "zip-bad-crc": lambda d, g: _zip_corrupt_first_member(_zip(d / "b.zip", g, zipfile.ZIP_STORED)),
    "zip-bad-deflate": lambda d, g: _zip_corrupt_first_member(
        _zip(d / "b.zip", g, zipfile.ZIP_DEFLATED)
    ),
    "zip-bad-bzip2": lambda d, g: _zip_corrupt_first_member(
        _zip(d / "b.zip", g, zipfile.ZIP_BZIP2)
    ),
    "zip-bad-lzma": lambda d, g: _zip_corrupt_first_member(_zip(d / "b.zip", g, zipfile.ZIP_LZMA)),
}


def test_truncated_plain_tar_never_passes(run: Run, tmp_path: Path, good: Path) -> None:
    """A plain tar cut short is no decoder error (tarfile sees its end early): the
    members it lost are findings."""
    proc = _verify(run, _truncate(_tar(tmp_path / "b.tar", good, "w")))
    assert proc.returncode in (1, 2), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("what", sorted(ARCHIVES))
def test_damaged_archive_is_exit_2_one_short_line(
    run: Run,
    tmp_path: Path,
    good: Path,
    what: str,
) -> None:
    bundle = ARCHIVES[what](tmp_path, good)
    proc = _verify(run, bundle)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    line = one_error_line(proc)
    assert "internal error" not in line
    assert len(line) < 400, line


@pytest.mark.parametrize("what", ["tar.xz", "tar.gz", "tar.bz2", "zip"])
def test_intact_compressed_archives_verify(
    run: Run,
    tmp_path: Path,
    good: Path,
    what: str,
) -> None:
    if what == "zip":
        bundle = _zip(tmp_path / "b.zip", good, zipfile.ZIP_DEFLATED)
    else:
        bundle = _tar(tmp_path / f"b.{what}", good, f"w:{what.split('.')[1]}")
    proc = _verify(run, bundle)
    assert proc.returncode == 0, proc.stderr


def test_folder_nested_3000_deep_is_exit_2_short_line(
    run: Run,
    tmp_path: Path,
    good: Path,
) -> None:
    bag = tmp_path / "deep"
    shutil.copytree(good, bag)
    fd = os.open(bag / "data", os.O_RDONLY)
    try:
        for _ in range(3000):  # by descriptor: the path is far beyond PATH_MAX
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)
    try:
        proc = _verify(run, bag)
    finally:
        _remove_chain(bag / "data" / "d")
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert f"nested deeper than {MAX_PATH_DEPTH} folders" in line
    assert len(line) < 300, len(line)


def _remove_chain(top: Path) -> None:
    """Remove a chain of folders ``d/d/d/...`` without recursion (pytest's own
    clean-up, shutil.rmtree, would hit Python's recursion limit): each child is
    moved up beside its parent, then the emptied parent removed."""
    cur, n = top, 0
    while cur.exists():
        nxt = None
        if (cur / "d").exists():
            n += 1
            nxt = top.parent / f"up-{n}"
            (cur / "d").rename(nxt)
        cur.rmdir()
        if nxt is None:
            break
        cur = nxt


def test_tar_entry_nested_too_deep_is_exit_2(
    run: Run,
    tmp_path: Path,
    good: Path,
) -> None:
    path = _tar(tmp_path / "b.tar", good, "w")
    with tarfile.open(path, "a") as tar:
        info = tarfile.TarInfo(f"{TOP}/data/" + "d/" * 200 + "x")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    proc = _verify(run, path)
    assert proc.returncode == 2
    assert "nested deeper than" in one_error_line(proc)


@pytest.mark.parametrize("node", ["fifo", "dev-zero", "link-to-dev-zero"])
def test_bundle_path_that_is_a_fifo_or_device_is_exit_2(
    run: Run, tmp_path: Path, node: str
) -> None:
    if node == "fifo":
        path = tmp_path / "b.tar"
        os.mkfifo(path)
    elif node == "dev-zero":
        path = Path("/dev/zero")
    else:
        path = tmp_path / "b.zip"
        path.symlink_to("/dev/zero")
    proc = _verify(run, path)
    assert proc.returncode == 2, proc.stderr
    assert "not a bundle" in one_error_line(proc)
    with deadline(30):
        proc = run("report", "--bundle", path, "--out", tmp_path / "r.json", "--format", "json")
    assert proc.returncode == 2, proc.stderr
    one_error_line(proc)


# -- hostile bundles for report --bundle ------------------------------------------------


def _edit_checkpoint(line: int, value: str) -> Callable[[Path], None]:
    def edit(bag: Path) -> None:
        p = bag / "custody" / "checkpoint.txt"
        lines = p.read_text(encoding="utf-8").split("\n")
        lines[line] = value
        p.write_text("\n".join(lines), encoding="utf-8")

    return edit


def _edit_bundle_json(old: str, new: str) -> Callable[[Path], None]:
    def edit(bag: Path) -> None:
        p = bag / "custody" / "bundle.json"
        text = p.read_text(encoding="utf-8")
        assert old in text
        p.write_text(text.replace(old, new, 1), encoding="utf-8")

    return edit


def _set_header(value: str) -> Callable[[Path], None]:
    def edit(bag: Path) -> None:
        p = bag / "custody" / "bundle.json"
        meta = json.loads(p.read_text(encoding="utf-8"))
        meta["case"]["header"] = value
        p.write_text(json.dumps(meta, indent=2), encoding="utf-8")

    return edit


#: name -> (the change, the exit code bundle verify and report --bundle give)
HOSTILE_BUNDLES: dict[str, tuple[Callable[[Path], None], int]] = {
    "checkpoint-size-superscript": (_edit_checkpoint(1, "\u00b2"), 1),
    "checkpoint-root-not-base64": (_edit_checkpoint(2, "not base64!"), 1),
    "header-a-list": (_set_header("[1,2]"), 1),
    "header-not-json": (_set_header("{not json"), 1),
    "title-lone-surrogate": (_edit_bundle_json('"title": "', '"title": "\\udc80'), 2),
    "schema-version-float": (
        _edit_bundle_json('"schema_version": 1,', '"schema_version": 1.0,'),
        2,
    ),
    "rules-true": (_edit_bundle_json('"rules": 2', '"rules": true'), 2),
}


@pytest.fixture(scope="module")
def hostile_bundles(good: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile-bundles")
    for name, (edit, _) in HOSTILE_BUNDLES.items():
        shutil.copytree(good, root / name)
        edit(root / name)
        retag(root / name)
    return root


@pytest.mark.parametrize("name", sorted(HOSTILE_BUNDLES))
def test_hostile_bundle_never_passes_and_report_never_exits_3(
    run: Run, hostile_bundles: Path, tmp_path: Path, name: str
) -> None:
    bundle = hostile_bundles / name
    want = HOSTILE_BUNDLES[name][1]
    proc = _verify(run, bundle)
    assert proc.returncode == want, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    if want == 2:
        one_error_line(proc)
    for fmt in ("json", "html", "csv", "pdf", "case", "certification"):
        out = tmp_path / f"r.{fmt}"
        with deadline(30):
            proc = run("report", "--bundle", bundle, "--format", fmt, "--out", out)
        assert proc.returncode == want, (fmt, proc.returncode, proc.stderr)
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
        if want == 2:
            one_error_line(proc)
            assert not out.exists()
        else:
            assert proc.stderr == "", proc.stderr
            assert out.stat().st_size > 0


@pytest.mark.parametrize("name", sorted(HOSTILE_BUNDLES))
def test_docverify_follows_the_page_on_hostile_bundles(hostile_bundles: Path, name: str) -> None:
    """tests/docverify.py, written from bundle-format.md alone, reaches the same exit
    code: the §11 rules for versions and lone surrogates are on the page."""
    import docverify

    got, _ = docverify.verify(hostile_bundles / name)
    assert got == HOSTILE_BUNDLES[name][1]


def test_docverify_refuses_a_tar_entry_nested_too_deep(tmp_path: Path, good: Path) -> None:
    import docverify

    path = _tar(tmp_path / "b.tar", good, "w")
    with tarfile.open(path, "a") as tar:
        info = tarfile.TarInfo(f"{TOP}/data/" + "d/" * MAX_PATH_DEPTH + "x")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    assert docverify.verify(path)[0] == 2


def test_zip_entry_with_an_empty_name_is_refused(good: Path, run: Run, tmp_path: Path) -> None:
    """zipfile's own is_dir() fails on an empty name (IndexError, once an internal
    error, exit 3): it is an unsafe entry, exit 2, one line."""
    path = _zip(tmp_path / "b.zip", good, zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr(zipfile.ZipInfo(""), b"")
    proc = _verify(run, path)
    assert proc.returncode == 2
    assert proc.stderr == "custody: error: unsafe entry '': empty or NUL in name\n"
