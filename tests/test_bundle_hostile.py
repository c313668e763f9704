"""Hostile bundles: ``custody bundle verify`` refuses them with exit 2 and one line on
stderr, without a traceback and without writing anything anywhere.

A good bundle is exported once per module through the real CLI; every hostile
bundle is built by hand from its files (``tarfile``/``zipfile``, or a copy of the
folder) with one hostile thing added.  Nothing is ever extracted: the reader must
refuse what it sees in the archive's index before reading any content.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import Run, template_case
from tampering import retag

from custody.display import shown

TOP = "b"
MiB = 1 << 20


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A good folder bundle (two items), exported by the CLI."""
    root = tmp_path_factory.mktemp("hostile-template")
    case = template_case(root)
    run = case.run
    ev = root / "evidence"
    ev.mkdir()
    (ev / "auth.log").write_bytes(b"Accepted password for svc-payroll from 10.0.0.7\n" * 30)
    (ev / "payroll.csv").write_bytes(b"id,name,iban\n7,J. Doe,DE00 0000\n")
    run(
        "collect",
        "--reason",
        "suspected credential theft",
        ev / "auth.log",
        ev / "payroll.csv",
        cwd=root / "case",
        check=True,
    )
    run("bundle", "export", "--all", "--out", root / "good", cwd=root / "case", check=True)
    return root / "good"


def bag_files(bag: Path) -> dict[str, bytes]:
    return {
        p.relative_to(bag).as_posix(): p.read_bytes() for p in sorted(bag.rglob("*")) if p.is_file()
    }


def member(
    name: str, data: bytes | None = None, type_: bytes = tarfile.REGTYPE, **attrs: Any
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = type_
    info.mode = 0o644
    info.mtime = 1_790_000_000
    info.size = len(data) if data is not None else 0
    for k, v in attrs.items():
        setattr(info, k, v)
    return info, data


def build_tar(
    path: Path,
    good: Path,
    extra: list[tuple[tarfile.TarInfo, Any]] | None = None,
    mode: str = "w",
    **kw: Any,
) -> Path:
    """The good bundle's files under ``b/``, then the ``extra`` members."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode, **kw) as tar:
        for name, data in bag_files(good).items():
            info, _ = member(f"{TOP}/{name}", data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in extra or []:
            tar.addfile(info, io.BytesIO(data) if isinstance(data, bytes) else data)
    return path


def build_zip(
    path: Path, good: Path, extra: list[tuple[zipfile.ZipInfo, bytes]] | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in bag_files(good).items():
            z.writestr(f"{TOP}/{name}", data)
        for info, data in extra or []:
            z.writestr(info, data)
    return path


def copy_bag(good: Path, dest: Path) -> Path:
    shutil.copytree(good, dest)
    for p in dest.rglob("*"):
        if p.is_file():
            os.chmod(p, 0o644)
    return dest


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root``: (mode, size, mtime_ns), symlinks not followed."""
    out = {}
    for p in [root, *root.rglob("*")]:
        st = p.lstat()
        out[p.relative_to(root).as_posix()] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def where(tmp_path: Path) -> tuple[Path, Path]:
    """(the folder hostile bundles are put in, an empty working directory)."""
    (tmp_path / "hostile").mkdir()
    (tmp_path / "cwd").mkdir()
    return tmp_path / "hostile", tmp_path / "cwd"


def refused(run: Run, bundle: Path, cwd: Path, expected: str, *flags: str) -> str:
    """``bundle verify`` exits 2 with exactly one stderr line containing ``expected``,
    prints nothing on stdout and changes nothing under the test's directory (which
    holds the bundle's folder, the working directory and custody's config dir)."""
    scope = cwd.parent
    before = snapshot(scope)
    proc = run("bundle", "verify", bundle, *flags, cwd=cwd)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("custody: error: "), lines[0]
    assert "internal error" not in lines[0]
    assert shown(expected) in lines[0], lines[0]  # error messages follow the display rule
    assert snapshot(scope) == before
    return lines[0]


def verified(run: Run, bundle: Path, cwd: Path) -> dict[str, Any]:
    proc = run("bundle", "verify", bundle, "--json", "--accept-self-asserted", cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


# -- the hand-built archives are good bundles before anything is added ------------------


def test_handbuilt_archives_of_the_good_bundle_verify(
    good: Path, run: Run, where: tuple[Path, Path]
) -> None:
    d, cwd = where
    for path in (
        build_tar(d / "ok.tar", good),
        build_tar(d / "ok.tar.gz", good, mode="w:gz"),
        build_zip(d / "ok.zip", good),
    ):
        report = verified(run, path, cwd)
        assert (report["ok"], report["items"], report["payload_files"]) == (
            True,
            ["ITEM-1", "ITEM-2"],
            2,
        )
    assert list(cwd.iterdir()) == []


# -- tar -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        (f"{TOP}/data/../../evil.txt", "'..' in path"),
        ("../evil.txt", "'..' in path"),
        (f"{TOP}/../{TOP}/data/ITEM-1/x", "'..' in path"),
        ("/tmp/evil.txt", "absolute path"),
        (f"{TOP}/data\\..\\..\\evil.txt", "backslash in name"),
        (f"{TOP}//data/evil.txt", "empty or '.' path component"),
    ],
)
def test_tar_entry_with_unsafe_name(
    good: Path, run: Run, where: tuple[Path, Path], name: str, why: str
) -> None:
    d, cwd = where
    bundle = build_tar(d / "h.tar", good, [member(name, b"owned\n")])
    refused(run, bundle, cwd, f"unsafe entry {name!r}: {why}")


@pytest.mark.parametrize("target", ["/etc/passwd", "../../../../etc/passwd", "bagit.txt"])
def test_tar_symlink(good: Path, run: Run, where: tuple[Path, Path], target: str) -> None:
    d, cwd = where
    name = f"{TOP}/data/ITEM-1/passwd"
    bundle = build_tar(d / "h.tar", good, [member(name, None, tarfile.SYMTYPE, linkname=target)])
    refused(run, bundle, cwd, f"unsafe entry {name!r}: link")


@pytest.mark.parametrize("target", ["/etc/passwd", f"{TOP}/bagit.txt"])
def test_tar_hard_link(good: Path, run: Run, where: tuple[Path, Path], target: str) -> None:
    d, cwd = where
    name = f"{TOP}/data/ITEM-1/hl"
    bundle = build_tar(d / "h.tar", good, [member(name, None, tarfile.LNKTYPE, linkname=target)])
    refused(run, bundle, cwd, f"unsafe entry {name!r}: link")


@pytest.mark.parametrize("type_", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_tar_device_or_special_file(
    good: Path, run: Run, where: tuple[Path, Path], type_: bytes
) -> None:
    d, cwd = where
    name = f"{TOP}/data/ITEM-1/null"
    bundle = build_tar(d / "h.tar", good, [member(name, None, type_, devmajor=1, devminor=3)])
    refused(run, bundle, cwd, f"unsafe entry {name!r}: device or special file")


@pytest.mark.parametrize("name", ["custody/bundle.json", "data/ITEM-1/auth.log"])
def test_tar_duplicate_names(good: Path, run: Run, where: tuple[Path, Path], name: str) -> None:
    d, cwd = where
    bundle = build_tar(d / "h.tar", good, [member(f"{TOP}/{name}", b"{}\n")])
    refused(run, bundle, cwd, f"duplicate entry '{TOP}/{name}'")


class Zeros:
    """A file object of endless zero bytes (tarfile reads exactly the declared size)."""

    def read(self, n: int = -1) -> bytes:
        return bytes(max(n, 0))


def test_tar_gz_decompression_bomb(good: Path, run: Run, where: tuple[Path, Path]) -> None:
    d, cwd = where
    declared = 200 * MiB
    info, _ = member(f"{TOP}/data/ITEM-1/zeros.bin")
    info.size = declared
    bundle = build_tar(d / "bomb.tar.gz", good, [(info, Zeros())], mode="w:gz", compresslevel=6)
    size = bundle.stat().st_size
    assert size < 300_000 and declared / size > 1000  # ~200 KB holding 200 MiB
    t0 = time.monotonic()
    line = refused(run, bundle, cwd, "refusing a decompression bomb")
    assert time.monotonic() - t0 < 10  # refused from the index, not after inflating it
    assert f"declared content ({declared + sum(map(len, bag_files(good).values()))} bytes)" in line


def test_zip_decompression_bomb(good: Path, run: Run, where: tuple[Path, Path]) -> None:
    d, cwd = where
    bundle = build_zip(d / "bomb.zip", good)
    declared = 400 * MiB
    with (
        zipfile.ZipFile(bundle, "a", zipfile.ZIP_DEFLATED) as z,
        z.open(f"{TOP}/data/ITEM-1/zeros.bin", "w") as f,
    ):
        chunk = bytes(MiB)
        for _ in range(declared // MiB):
            f.write(chunk)
    # deflate tops out near 1030:1, so the bomb must be large enough for the good
    # bundle's own files not to pull the archive's ratio under custody's 1000:1
    size = bundle.stat().st_size
    assert size < 600_000 and declared / size > 1000  # ~410 KB holding 400 MiB
    t0 = time.monotonic()
    refused(run, bundle, cwd, "refusing a decompression bomb")
    assert time.monotonic() - t0 < 10


def test_not_a_bundle(good: Path, run: Run, where: tuple[Path, Path]) -> None:
    d, cwd = where
    refused(run, d / "absent.tar", cwd, "no such bundle")
    (d / "empty").mkdir()
    refused(run, d / "empty", cwd, "not a BagIt bag: bagit.txt is missing")
    # a zip whose one top folder holds no bag; a tar of two top folders
    bundle = build_zip(d / "other.zip", good / "data")
    refused(run, bundle, cwd, "not a BagIt bag: bagit.txt is missing")
    bundle = build_tar(d / "two.tar", good, [member("other/bagit.txt", b"x")])
    refused(run, bundle, cwd, "not a BagIt bag: bagit.txt is missing")


def test_not_an_archive_at_all(run: Run, where: tuple[Path, Path]) -> None:
    d, cwd = where
    junk = d / "bundle.tar"
    junk.write_bytes(os.urandom(4096))
    refused(run, junk, cwd, f"{junk} is not a bundle (folder, tar or zip): ")


def test_hostile_refused_with_json_too(good: Path, run: Run, where: tuple[Path, Path]) -> None:
    d, cwd = where
    bundle = build_tar(d / "h.tar", good, [member("../evil.txt", b"x")])
    refused(run, bundle, cwd, "unsafe entry '../evil.txt'", "--json")


# -- zip -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../evil.txt", "'..' in path"),
        (f"{TOP}/data/../../../evil.txt", "'..' in path"),
        ("/evil.txt", "absolute path"),
    ],
)
def test_zip_entry_with_unsafe_name(
    good: Path, run: Run, where: tuple[Path, Path], name: str, why: str
) -> None:
    d, cwd = where
    info = zipfile.ZipInfo(name)
    assert info.filename == name  # zipfile keeps it as given
    bundle = build_zip(d / "h.zip", good, [(info, b"owned\n")])
    refused(run, bundle, cwd, f"unsafe entry {name!r}: {why}")


@pytest.mark.parametrize("kind", [stat.S_IFLNK, stat.S_IFCHR, stat.S_IFIFO])
def test_zip_symlink_or_special_entry(
    good: Path, run: Run, where: tuple[Path, Path], kind: int
) -> None:
    d, cwd = where
    name = f"{TOP}/data/ITEM-1/passwd"
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: external_attr holds st_mode
    info.external_attr = (kind | 0o777) << 16
    bundle = build_zip(d / "h.zip", good, [(info, b"/etc/passwd")])
    refused(run, bundle, cwd, f"unsafe entry {name!r}: link or special file")


def test_zip_duplicate_names(good: Path, run: Run, where: tuple[Path, Path]) -> None:
    d, cwd = where
    with pytest.warns(UserWarning, match="Duplicate name"):
        bundle = build_zip(
            d / "h.zip", good, [(zipfile.ZipInfo(f"{TOP}/custody/keys.json"), b"[]\n")]
        )
    refused(run, bundle, cwd, f"duplicate entry '{TOP}/custody/keys.json'")


# -- folders -------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/etc/passwd", "/etc", "../../.."])
def test_folder_with_symlink_pointing_outside(
    good: Path, run: Run, where: tuple[Path, Path], target: str
) -> None:
    d, cwd = where
    bag = copy_bag(good, d / "bag")
    (bag / "data" / "ITEM-1" / "passwd").symlink_to(target)
    refused(run, bag, cwd, "unsafe entry 'data/ITEM-1/passwd': symbolic link")


def test_folder_with_hard_link(good: Path, run: Run, where: tuple[Path, Path]) -> None:
    d, cwd = where
    bag = copy_bag(good, d / "bag")
    outside = d / "outside.txt"
    outside.write_bytes(b"a file outside the bundle\n")
    os.link(outside, bag / "data" / "ITEM-1" / "linked.txt")
    refused(run, bag, cwd, "unsafe entry 'data/ITEM-1/linked.txt': hard link")


def test_folder_with_fifo(good: Path, run: Run, where: tuple[Path, Path]) -> None:
    d, cwd = where
    bag = copy_bag(good, d / "bag")
    os.mkfifo(bag / "data" / "ITEM-1" / "pipe")
    refused(run, bag, cwd, "unsafe entry 'data/ITEM-1/pipe': not a regular file")


# -- what the files say ----------------------------------------------------------------------


def edit_json(bag: Path, name: str, text: str) -> None:
    (bag / name).write_text(text)
    retag(bag)  # a well-formed bag around the hostile file


def test_json_with_duplicate_keys(good: Path, run: Run, where: tuple[Path, Path]) -> None:
    d, cwd = where
    bag = copy_bag(good, d / "bag")
    text = (bag / "custody" / "bundle.json").read_text()
    edit_json(
        bag,
        "custody/bundle.json",
        text.replace('"schema_version": 1,', '"schema_version": 1, "schema_version": 1,'),
    )
    refused(run, bag, cwd, "custody/bundle.json is not valid JSON: duplicate key 'schema_version'")

    bag = copy_bag(good, d / "bag2")
    keys = (bag / "custody" / "keys.json").read_text()
    edit_json(bag, "custody/keys.json", keys.replace('"role": ', '"role": "x", "role": ', 1))
    refused(run, bag, cwd, "custody/keys.json is not valid JSON: duplicate key 'role'")


DEEPER = "JSON nested deeper than 64"
TOO_DEEP_TO_PARSE = "is not valid JSON: maximum recursion depth exceeded"


@pytest.mark.parametrize(
    ("name", "depth", "why"),
    [
        ("custody/bundle.json", 1000, TOO_DEEP_TO_PARSE),
        ("custody/bundle.json", 100, DEEPER),
        ("custody/proofs.json", 1000, TOO_DEEP_TO_PARSE),
        ("custody/proofs.json", 70, DEEPER),
        ("custody/keys.json", 100_000, TOO_DEEP_TO_PARSE),
    ],
)
def test_json_absurdly_deep(
    good: Path, run: Run, where: tuple[Path, Path], name: str, depth: int, why: str
) -> None:
    d, cwd = where
    bag = copy_bag(good, d / "bag")
    doc = json.loads((bag / name).read_text())
    deep = "[" * depth + "]" * depth
    if isinstance(doc, dict):
        text = json.dumps({**doc, "deep": None}).replace('"deep": null', f'"deep": {deep}')
    else:
        text = json.dumps(doc)[:-1] + f", {deep}]"
    edit_json(bag, name, text)
    refused(run, bag, cwd, f"{name}{':' if why == DEEPER else ''} {why}")


def test_tag_file_absurdly_large(good: Path, run: Run, where: tuple[Path, Path]) -> None:
    d, cwd = where
    bag = copy_bag(good, d / "bag")
    with open(bag / "custody" / "keys.json", "r+b") as f:
        f.truncate(65 * MiB)  # sparse: costs nothing on disk
    refused(run, bag, cwd, f"custody/keys.json is {65 * MiB} bytes; larger than allowed")


@pytest.mark.parametrize("version", [2, "1", 0, None])
def test_unknown_or_newer_schema_version(
    good: Path, run: Run, where: tuple[Path, Path], version: Any
) -> None:
    d, cwd = where
    bag = copy_bag(good, d / "bag")
    meta = json.loads((bag / "custody" / "bundle.json").read_text())
    meta["schema_version"] = version
    edit_json(bag, "custody/bundle.json", json.dumps(meta))
    refused(run, bag, cwd, f"unknown bundle schema version {version!r}; this custody reads 1")


def test_newer_schema_version_in_a_tar_gz(good: Path, run: Run, where: tuple[Path, Path]) -> None:
    d, cwd = where
    bag = copy_bag(good, d / "bag")
    meta = json.loads((bag / "custody" / "bundle.json").read_text())
    edit_json(bag, "custody/bundle.json", json.dumps({**meta, "schema_version": 2}))
    bundle = build_tar(d / "v2.tar.gz", bag, mode="w:gz")
    refused(run, bundle, cwd, "unknown bundle schema version 2")


def test_manifest_naming_an_unsafe_path(good: Path, run: Run, where: tuple[Path, Path]) -> None:
    d, cwd = where
    bag = copy_bag(good, d / "bag")
    with open(bag / "manifest-sha256.txt", "a") as f:
        f.write(f"{'0' * 64}  ../../../etc/passwd\n")
    retag(bag)
    refused(run, bag, cwd, "manifest-sha256.txt names an unsafe path '../../../etc/passwd'")


def test_bundle_json_naming_an_unsafe_payload(
    good: Path, run: Run, where: tuple[Path, Path]
) -> None:
    d, cwd = where
    bag = copy_bag(good, d / "bag")
    meta = json.loads((bag / "custody" / "bundle.json").read_text())
    meta["items"][0]["payload"] = "data/../../../etc/passwd"
    edit_json(bag, "custody/bundle.json", json.dumps(meta))
    # bundle.json is checked against its schema, whose payload pattern refuses it first
    refused(
        run,
        bag,
        cwd,
        "custody/bundle.json does not match its schema at items/0/payload:"
        " 'data/../../../etc/passwd' does not match",
    )


# Issue 4 lists "a manifest listing files that are absent or omitting files that are
# present" among the hostile bundles (exit 2); custody reports both as integrity
# findings (exit 1), like a removed or planted payload file.  Asserted as it is.


def test_manifest_listing_an_absent_file(good: Path, run: Run, where: tuple[Path, Path]) -> None:
    d, cwd = where
    bag = copy_bag(good, d / "bag")
    for alg, n in (("sha256", 64), ("sha512", 128)):
        with open(bag / f"manifest-{alg}.txt", "a") as f:
            f.write(f"{'0' * n}  data/ITEM-1/ghost.txt\n")
    retag(bag)
    before = snapshot(d.parent)
    proc = run("bundle", "verify", bag, "--json", cwd=cwd)
    assert (proc.returncode, proc.stderr) == (1, "")
    report = json.loads(proc.stdout)
    assert report["findings"] == [
        {
            "kind": "payload-missing",
            "subject": "data/ITEM-1/ghost.txt",
            "detail": "listed in the manifest but absent from the bundle",
        }
    ]
    assert snapshot(d.parent) == before


def test_manifest_omitting_a_present_file(good: Path, run: Run, where: tuple[Path, Path]) -> None:
    d, cwd = where
    bag = copy_bag(good, d / "bag")
    for alg in ("sha256", "sha512"):
        m = bag / f"manifest-{alg}.txt"
        m.write_text(
            "".join(
                line + "\n"
                for line in m.read_text().splitlines()
                if not line.endswith("data/ITEM-2/payroll.csv")
            )
        )
    retag(bag)
    before = snapshot(d.parent)
    proc = run("bundle", "verify", bag, "--json", cwd=cwd)
    assert (proc.returncode, proc.stderr) == (1, "")
    report = json.loads(proc.stdout)
    assert report["findings"] == [
        {
            "kind": "payload-extra",
            "subject": "data/ITEM-2/payroll.csv",
            "detail": "present in the bundle but in no manifest",
        }
    ]
    assert snapshot(d.parent) == before


# -- malformed events.jsonl and bundle.json --------------------------------------------------


def test_event_line_absurdly_deep(good: Path, run: Run, where: tuple[Path, Path]) -> None:
    d, cwd = where
    bag = copy_bag(good, d / "bag")
    with open(bag / "custody" / "events.jsonl", "a") as f:
        f.write("[" * 100_000 + "]" * 100_000 + "\n")
    retag(bag)
    # after the good bundle's 6 events: identity, 2 collects, their 2 describes, export
    refused(run, bag, cwd, "custody/events.jsonl line 7 is nested too deep")


def test_events_file_not_utf8(good: Path, run: Run, where: tuple[Path, Path]) -> None:
    d, cwd = where
    bag = copy_bag(good, d / "bag")
    with open(bag / "custody" / "events.jsonl", "ab") as f:
        f.write(b"\xff\xfe\n")
    retag(bag)
    refused(run, bag, cwd, "custody/events.jsonl is not UTF-8: ")


def test_bundle_json_items_not_a_list(good: Path, run: Run, where: tuple[Path, Path]) -> None:
    d, cwd = where
    bag = copy_bag(good, d / "bag")
    meta = json.loads((bag / "custody" / "bundle.json").read_text())
    meta["items"] = "ITEM-1 ITEM-2"
    edit_json(bag, "custody/bundle.json", json.dumps(meta))
    refused(
        run,
        bag,
        cwd,
        "custody/bundle.json does not match its schema at items:"
        " 'ITEM-1 ITEM-2' is not of type 'array'",
    )
