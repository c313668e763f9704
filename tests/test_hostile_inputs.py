"""Issue 15: every small file a user names (key, passphrase file, --checkpoint,
--tsa-cert, public key, proof input) is read by custody.safeio: /dev/zero, a FIFO,
a link to /dev/zero, a directory or an oversized file there is exit 2 with one
line naming the file, never a hang or a MemoryError; and every output (report
--out, checkpoint --out, key new --out, bundle export --out) is written by atomic
rename onto a new name or a regular file only.

The CLI runs in-process under :func:`hostile_helpers.deadline`: a hang fails the
test instead of blocking the suite."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Case, cli, one_error_line
from hostile_helpers import NODES, deadline, make_node

from custody.safeio import (
    CAP_CERTIFICATE,
    CAP_CHECKPOINT,
    CAP_KEY,
    CAP_PASSPHRASE,
    CAP_PUBLIC_KEY,
    UnsafeFileError,
    read_input,
    write_atomic,
)


@pytest.fixture
def collected(case: Case, tmp_path: Path) -> Case:
    ev = tmp_path / "ev.txt"
    ev.write_bytes(b"evidence\n")
    cli(case, "collect", "--reason", "r", ev)
    return case


def _run(case: Case, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    with deadline(20):
        return cli(case, *args)


#: (what the file is, how the CLI is given it, the cap of its kind)
INPUTS: dict[str, tuple[Callable[[Case, Path], list[str | os.PathLike[str]]], int]] = {
    "key": (lambda c, p: ["event", "note", "ITEM-1", "--reason", "r", "--key", p], CAP_KEY),
    "passphrase": (
        lambda c, p: ["event", "note", "ITEM-1", "--reason", "r", "--passphrase-file", p],
        CAP_PASSPHRASE,
    ),
    "verify-checkpoint": (lambda c, p: ["verify", "--checkpoint", p], CAP_CHECKPOINT),
    "tsa-cert": (lambda c, p: ["verify", "--tsa-cert", p], CAP_CERTIFICATE),
    "prove-inclusion": (
        lambda c, p: ["prove", "inclusion", "ITEM-1", "--checkpoint", p],
        CAP_CHECKPOINT,
    ),
    "prove-consistency": (lambda c, p: ["prove", "consistency", p, p], CAP_CHECKPOINT),
    "key-import": (
        lambda c, p: ["key", "import", p, "--name", "Lee", "--role", "counsel"],
        CAP_PUBLIC_KEY,
    ),
    "recovery-key": (
        lambda c, p: [
            "init",
            c.dir.parent / "case2",
            "--case-id",
            "X-1",
            "--title",
            "t",
            "--recovery-key",
            p,
        ],
        CAP_PUBLIC_KEY,
    ),
}


@pytest.mark.parametrize("node", NODES)
@pytest.mark.parametrize("what", sorted(INPUTS))
def test_hostile_input_node_is_exit_2(
    collected: Case, tmp_path: Path, what: str, node: str
) -> None:
    args, _ = INPUTS[what]
    p = make_node(tmp_path / f"hostile-{what}", node)
    proc = _run(collected, *args(collected, p))
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert "internal error" not in line and "MemoryError" not in line
    if node != "directory":  # click refuses a directory for these options itself
        assert str(p) in line, line
        assert "not a regular file" in line, line


@pytest.mark.parametrize("what", sorted(INPUTS))
def test_oversized_input_is_exit_2_before_reading_it(
    collected: Case, tmp_path: Path, what: str
) -> None:
    args, cap = INPUTS[what]
    p = tmp_path / f"big-{what}"
    with open(p, "wb") as f:  # sparse: a size the reader must refuse by fstat
        f.truncate(cap + 1)
    os.chmod(p, 0o600)
    proc = _run(collected, *args(collected, p))
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc)
    assert f"{cap + 1} bytes, more than the {cap} allowed" in line, line


def test_a_linked_key_file_is_followed_to_a_regular_target(collected: Case) -> None:
    """A link the user names is the user's choice of path (as /etc/ssl/certs holds
    links): it is resolved, and the target must be a regular file."""
    link = collected.dir.parent / "key-link.pem"
    link.symlink_to(collected.key)
    proc = _run(collected, "event", "note", "ITEM-1", "--reason", "r", "--key", link)
    assert proc.returncode == 0, proc.stderr


def test_passphrase_file_not_utf8_is_exit_2(collected: Case, tmp_path: Path) -> None:
    p = tmp_path / "pass"
    p.write_bytes(b"\xff\xfe\n")
    proc = _run(collected, "event", "note", "ITEM-1", "--reason", "r", "--passphrase-file", p)
    assert proc.returncode == 2
    assert "is not UTF-8 text" in one_error_line(proc)


def test_read_input_caps_a_file_growing_past_its_fstat_size(tmp_path: Path) -> None:
    """The cap binds the bytes read, not only the size fstat gave."""
    p = tmp_path / "f"
    p.write_bytes(b"x" * 10)
    assert read_input(p, "thing", 10)[0] == b"x" * 10
    p.write_bytes(b"x" * 11)
    with pytest.raises(UnsafeFileError, match=r"thing .* 11 bytes, more than the 10 allowed"):
        read_input(p, "thing", 10)


# -- outputs --------------------------------------------------------------------------

OUT_NODES = ("fifo", "directory", "char-device")


def _out_node(tmp_path: Path, node: str) -> Path:
    if node == "char-device":
        return Path("/dev/null")  # a device node every test machine has
    return make_node(tmp_path / f"out-{node}", node)


@pytest.mark.parametrize("node", OUT_NODES)
def test_report_out_onto_a_node_is_exit_2_node_untouched(
    collected: Case, tmp_path: Path, node: str
) -> None:
    out = _out_node(tmp_path, node)
    before = os.lstat(out)
    proc = _run(collected, "report", "--format", "json", "--out", out)
    assert proc.returncode == 2, proc.stderr
    one_error_line(proc)
    after = os.lstat(out)
    assert (after.st_ino, after.st_mode, after.st_rdev) == (
        before.st_ino,
        before.st_mode,
        before.st_rdev,
    )


def test_report_out_over_a_regular_file_replaces_it_atomically(
    collected: Case, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    out.write_text("old")
    old_ino = out.stat().st_ino
    proc = _run(collected, "report", "--format", "json", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("{")
    assert out.stat().st_ino != old_ino  # a new file renamed over it, not rewritten
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_report_out_a_link_to_a_device_is_refused(collected: Case, tmp_path: Path) -> None:
    link = tmp_path / "full"
    link.symlink_to("/dev/null")
    proc = _run(collected, "report", "--format", "json", "--out", link)
    assert proc.returncode == 2
    assert "is a symbolic link" in one_error_line(proc)
    assert link.is_symlink() and os.readlink(link) == "/dev/null"


@pytest.mark.parametrize("node", OUT_NODES)
def test_checkpoint_out_onto_a_node_is_refused_before_signing(
    collected: Case, tmp_path: Path, node: str
) -> None:
    events = len(cli(collected, "log", "--json").stdout)
    out = _out_node(tmp_path, node)
    proc = _run(collected, "checkpoint", "--out", out)
    assert proc.returncode == 2, proc.stderr
    assert str(out) in one_error_line(proc)
    assert len(cli(collected, "log", "--json").stdout) == events  # nothing recorded


def test_key_new_into_a_missing_folder_is_exit_2_and_creates_nothing(
    collected: Case, tmp_path: Path
) -> None:
    out = tmp_path / "missing" / "lee.pem"
    proc = _run(
        collected, "key", "new", "--name", "Lee", "--role", "counsel", "--out", out, "--no-default"
    )
    assert proc.returncode == 2
    assert "does not exist" in one_error_line(proc)
    assert not out.parent.exists()


@pytest.mark.parametrize("node", ("fifo", "directory"))
def test_key_new_onto_a_node_is_exit_2(collected: Case, tmp_path: Path, node: str) -> None:
    out = make_node(tmp_path / "lee.pem", node)
    proc = _run(
        collected, "key", "new", "--name", "Lee", "--role", "counsel", "--out", out, "--no-default"
    )
    assert proc.returncode == 2, proc.stderr
    one_error_line(proc)
    assert stat.S_ISFIFO(out.lstat().st_mode) if node == "fifo" else out.is_dir()


@pytest.mark.parametrize("suffix", (".7z", ".tar.xz", ".rar", ".tar.bz2"))
def test_bundle_export_unknown_suffix_is_exit_2_naming_the_accepted(
    collected: Case, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"b{suffix}"
    proc = _run(collected, "bundle", "export", "--all", "--out", out)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert ".tar, .tar.gz, .tgz, .zip" in line
    assert not os.path.lexists(out)


@pytest.mark.parametrize("name", ("b.TAR.GZ", "b.Zip", "b.TGZ", "b.TAR"))
def test_bundle_export_archive_suffix_in_any_case(
    collected: Case, tmp_path: Path, name: str
) -> None:
    out = tmp_path / name
    proc = _run(collected, "bundle", "export", "--all", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()  # an archive, not a folder
    proc = _run(collected, "bundle", "verify", out, "--accept-self-asserted")
    assert proc.returncode == 0, proc.stderr


def test_bundle_export_folder_with_a_numeric_suffix_is_a_folder(
    collected: Case, tmp_path: Path
) -> None:
    out = tmp_path / "bundle-2026.017"
    assert _run(collected, "bundle", "export", "--all", "--out", out).returncode == 0
    assert out.is_dir()


def test_bundle_export_onto_a_dangling_link_is_exit_2(collected: Case, tmp_path: Path) -> None:
    out = tmp_path / "b.tar"
    out.symlink_to(tmp_path / "elsewhere.tar")
    proc = _run(collected, "bundle", "export", "--all", "--out", out)
    assert proc.returncode == 2
    assert "already exists" in one_error_line(proc)
    assert not (tmp_path / "elsewhere.tar").exists()


def test_write_atomic_without_replace_never_clobbers(tmp_path: Path) -> None:
    p = tmp_path / "k"
    write_atomic(p, b"one", replace=False)
    with pytest.raises(Exception, match="already exists"):
        write_atomic(p, b"two", replace=False)
    assert p.read_bytes() == b"one"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["k"]
