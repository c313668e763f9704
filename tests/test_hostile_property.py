"""Issue 15, the class closed: property-based tests generate hostile store entries,
archive members (names, types, corruption) and option values, and assert of every
run: exit code in {0, 1, 2}, no traceback, no internal error, at most one line on
stderr (exactly one, ``custody: error: ...``, for exit 2), and an answer within
10 s (:func:`hostile_helpers.deadline`; the CLI runs in-process)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, Run, invoke, template_case
from hostile_helpers import deadline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EVIDENCE = b"Accepted password for svc-payroll from 10.0.0.7\n"


def assert_contract(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode in (0, 1, 2), (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "internal error" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    if proc.returncode == 2:
        assert len(lines) == 1 and lines[0].startswith("custody: error: "), proc.stderr
    else:
        assert len(lines) <= 1, proc.stderr


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A case with one collected item and its folder bundle, built once."""
    root = tmp_path_factory.mktemp("hostile-property")
    case = template_case(root)
    (root / "auth.log").write_bytes(EVIDENCE)
    case("collect", "--reason", "r", root / "auth.log", check=True)
    case("bundle", "export", "--all", "--out", root / "bundle", check=True)
    obj = next(p for p in (root / "case" / "store" / "sha256").rglob("*") if p.is_file())
    files = {
        p.relative_to(root / "bundle").as_posix(): p.read_bytes()
        for p in sorted((root / "bundle").rglob("*"))
        if p.is_file()
    }
    env = {**os.environ, **case.run.env, "CUSTODY_KEY": str(case.key)}
    return {"root": root, "env": env, "obj": obj, "files": files, "n": [0]}


def _fresh(world: dict[str, Any]) -> Path:
    """A new working folder for one example."""
    world["n"][0] += 1
    d: Path = world["root"] / f"ex-{world['n'][0]}"
    d.mkdir()
    return d


def _cli(world: dict[str, Any], cwd: Path, *args: str | os.PathLike[str]) -> Any:
    with deadline(10):
        return invoke(list(args), env=world["env"], cwd=cwd)


# -- hostile store entries ------------------------------------------------------------

STORE_ENTRIES = st.sampled_from(
    [
        "directory",
        "fifo",
        "link-dev-zero",
        "link-dev-null",
        "link-outside-copy",
        "link-dangling",
        "link-loop",
        "empty",
        "truncated",
        "other-bytes",
        "appended",
        "missing",
        "linked-folder",
        "folder-is-a-file",
    ]
)


def _hostile_entry(obj: Path, how: str) -> None:
    data = obj.read_bytes()
    obj.parent.chmod(0o700)
    outside = obj.parents[4] / "outside"
    outside.mkdir(exist_ok=True)
    (outside / obj.name).write_bytes(data)
    if how == "linked-folder":
        shutil.rmtree(obj.parent)
        obj.parent.symlink_to(outside)
        return
    if how == "folder-is-a-file":
        shutil.rmtree(obj.parent)
        obj.parent.write_bytes(data)
        return
    obj.unlink()
    if how == "directory":
        obj.mkdir()
    elif how == "fifo":
        os.mkfifo(obj)
    elif how == "link-dev-zero":
        obj.symlink_to("/dev/zero")
    elif how == "link-dev-null":
        obj.symlink_to("/dev/null")
    elif how == "link-outside-copy":
        obj.symlink_to(outside / obj.name)
    elif how == "link-dangling":
        obj.symlink_to(outside / "nothing")
    elif how == "link-loop":
        obj.symlink_to(obj)
    elif how == "empty":
        obj.write_bytes(b"")
    elif how == "truncated":
        obj.write_bytes(data[:-1])
    elif how == "other-bytes":
        obj.write_bytes(data[::-1])
    elif how == "appended":
        obj.write_bytes(data + b"x")


@settings(max_examples=14, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(how=STORE_ENTRIES, command=st.sampled_from(["verify", "report"]))
def test_hostile_store_entry(world: dict[str, Any], how: str, command: str) -> None:
    d = _fresh(world)
    shutil.copytree(world["root"] / "case", d / "case", symlinks=True)
    obj = d / "case" / world["obj"].relative_to(world["root"] / "case")
    _hostile_entry(obj, how)
    if command == "verify":
        proc = _cli(world, d / "case", "verify")
    else:
        proc = _cli(world, d / "case", "report", "--format", "json", "--out", d / "r.json")
    assert_contract(proc)
    assert proc.returncode == 1, (how, proc.stdout, proc.stderr)  # never passes


# -- hostile archive members ------------------------------------------------------------

NAME_PARTS = st.sampled_from(
    ["b", "data", "custody", "..", ".", "", "x\\y", "C:", "d" * 300, "\u00e9", "a b", "\x00"]
)
MEMBER_NAMES = st.lists(NAME_PARTS, min_size=1, max_size=4).map("/".join)
MEMBER_TYPES = st.sampled_from(["reg", "dir", "sym", "lnk", "fifo", "chr"])
MEMBERS = st.lists(
    st.tuples(MEMBER_NAMES, MEMBER_TYPES, st.binary(max_size=64)), min_size=0, max_size=3
)


def _tar_bytes(files: dict[str, bytes], extra: list[tuple[str, str, bytes]], mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(f"b/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, kind, data in extra:
            info = tarfile.TarInfo(name)
            info.type = {
                "reg": tarfile.REGTYPE,
                "dir": tarfile.DIRTYPE,
                "sym": tarfile.SYMTYPE,
                "lnk": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
                "chr": tarfile.CHRTYPE,
            }[kind]
            info.linkname = "/dev/zero" if kind in ("sym", "lnk") else ""
            info.size = len(data) if kind == "reg" else 0
            tar.addfile(info, io.BytesIO(data) if kind == "reg" else None)
    return buf.getvalue()


def _zip_bytes(files: dict[str, bytes], extra: list[tuple[str, str, bytes]], method: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in files.items():
            z.writestr(f"b/{name}", data)
        for name, kind, data in extra:
            info = zipfile.ZipInfo(name + ("/" if kind == "dir" else ""))
            info.create_system = 3
            mode = {
                "reg": 0o100644,
                "dir": 0o040755,
                "sym": 0o120777,
                "lnk": 0o100644,
                "fifo": 0o010644,
                "chr": 0o020644,
            }[kind]
            info.external_attr = mode << 16
            z.writestr(info, data)
    return buf.getvalue()


FORMATS = st.sampled_from(["tar", "tar.gz", "tar.bz2", "tar.xz", "zip", "zip-stored", "zip-bz2"])


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fmt=FORMATS,
    extra=MEMBERS,
    corrupt=st.one_of(
        st.none(),
        st.tuples(st.floats(0, 1), st.integers(1, 255)),  # flip a byte at this fraction
        st.floats(0, 1).map(lambda f: ("truncate", f)),
    ),
)
def test_hostile_archive(
    world: dict[str, Any], fmt: str, extra: list[tuple[str, str, bytes]], corrupt: Any
) -> None:
    d = _fresh(world)
    files: dict[str, bytes] = world["files"]
    if fmt.startswith("zip"):
        method = {"zip": zipfile.ZIP_DEFLATED, "zip-stored": zipfile.ZIP_STORED}.get(
            fmt, zipfile.ZIP_BZIP2
        )
        data = _zip_bytes(files, extra, method)
        path = d / "b.zip"
    else:
        mode = "w" if fmt == "tar" else f"w:{fmt.split('.')[1]}"
        try:
            data = _tar_bytes(files, extra, mode)
        except (ValueError, tarfile.TarError):
            return  # a name tarfile itself cannot write (NUL): nothing to test
        path = d / f"b.{fmt}"
    if isinstance(corrupt, tuple) and corrupt[0] == "truncate":
        data = data[: int(len(data) * corrupt[1])]
    elif isinstance(corrupt, tuple):
        raw = bytearray(data)
        i = min(int(len(raw) * corrupt[0]), len(raw) - 1)
        raw[i] ^= corrupt[1]
        data = bytes(raw)
    path.write_bytes(data)
    proc = _cli(world, d, "bundle", "verify", path, "--accept-self-asserted")
    assert_contract(proc)
    if proc.returncode == 0:
        # only an archive whose members and bytes custody reads as the good bundle's
        # may pass: a corruption the decoders cannot see lies outside the members
        # (a zip directory entry's mode is not looked at, bundle-format §11: custody
        # extracts nothing, so a "link" that is a directory entry is only a name)
        assert not any(
            k in ("sym", "lnk", "fifo", "chr") and not (fmt.startswith("zip") and n.endswith("/"))
            for n, k, _ in extra
        )


# -- hostile option values --------------------------------------------------------------

TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", " ", "A\nB", "A\rB", "\u2028", "\u202e", "\x00", "\udcff", "x" * 1100, "\x7f", "\x85"]
    ),
)


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    option=st.sampled_from(
        [
            ("event", "note", "ITEM-1", "--reason", "{}"),
            ("event", "note", "ITEM-1", "--reason", "r", "--location", "{}"),
            ("init", "new", "--case-id", "{}", "--title", "t"),
            ("init", "new", "--case-id", "X-1", "--title", "{}"),
            ("bundle", "export", "--all", "--out", "out", "--organization", "{}"),
            ("key", "new", "--name", "{}", "--role", "r", "--out", "k.pem", "--no-default"),
            ("show", "{}"),
            ("log", "{}"),
        ]
    ),
    value=TEXT,
)
def test_hostile_option_value(world: dict[str, Any], option: tuple[str, ...], value: str) -> None:
    d = _fresh(world)
    shutil.copytree(world["root"] / "case", d / "case", symlinks=True)
    args = [a.replace("{}", value) if a == "{}" else a for a in option]
    args = [d / a if a in ("new", "out", "k.pem") else a for a in args]
    env = {**world["env"], "CUSTODY_CASE": str(d / "case"), "CUSTODY_PASSPHRASE": PASSPHRASE}
    with deadline(10):
        proc = invoke(args, env=env, cwd=d)
    assert_contract(proc)


def test_world_is_sound(world: dict[str, Any]) -> None:
    """The unchanged case verifies and its bundle verifies: the failures above are
    the hostile changes' doing."""
    d = _fresh(world)
    assert _cli(world, world["root"] / "case", "verify").returncode == 0
    run = Run(env=world["env"], cwd=d)
    assert (
        run("bundle", "verify", world["root"] / "bundle", "--accept-self-asserted").returncode == 0
    )
