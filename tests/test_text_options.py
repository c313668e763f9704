"""Every text option and argument is checked once, at the CLI boundary (issue 15;
cli/common.py ``TextType``): valid UTF-8 (bytes that are not arrive as lone
surrogates and are refused), one line without control, separator or bidi characters
where the value becomes a header, note or bag-info line (case id, title, names,
roles, organization, location), no NUL in free text (reasons, notes).  A refusal is
exit 2 with one ``custody: error:`` line, never an internal error.  And what custody
signs names a key the way the ledger registers it (checkpoint notes, bag-info.txt)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import click
import pytest
from conftest import PASSPHRASE, Case, cli, new_key, one_error_line, spawn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custody.keys import load_signer
from custody.ledger import Ledger
from custody_cli.common import TextType
from custody_cli.main import cli as custody_group


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name, cmd in sorted(group.commands.items()):
        out.append((f"{prefix}{name}", cmd))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, f"{prefix}{name} "))
    return out


#: a public key file's name or a key string: a file name may be any bytes, and the
#: value is only read (load_public_key / a fingerprint match), never recorded
FILE_OR_KEY = [
    "bundle import trust",
    "bundle verify trust",
    "key import pubfile",
    "report trust",
    "trust add key",
    "trust remove key",
]


def test_every_text_parameter_is_checked() -> None:
    """No command takes a plain string: each text option or argument is a TextType
    (or a choice, a path, a flag), so none reaches the library unchecked."""
    unchecked = [
        f"{name} {param.name}"
        for name, cmd in _commands(custody_group)
        for param in cmd.params
        if isinstance(param.type, click.types.StringParamType)
        and not (isinstance(param, click.Option) and param.is_flag)
    ]
    assert sorted(unchecked) == FILE_OR_KEY
    assert isinstance(
        next(p for p in custody_group.commands["init"].params if p.name == "case_id").type,
        TextType,
    )


@pytest.fixture
def counsel(case: Case, tmp_path: Path) -> Case:
    """The case with ITEM-1 collected and Lee Okafor's key imported as counsel."""
    ev = tmp_path / "ev.txt"
    ev.write_bytes(b"evidence\n")
    assert cli(case, "collect", ev, "--reason", "seized", "--no-selftest").returncode == 0
    new_key(case.run, tmp_path / "lee.pem", "Lee Okafor", "counsel", default=False)
    proc = cli(case, "key", "import", tmp_path / "lee.pub", "--name", "Lee Okafor", "--role", "c")
    assert proc.returncode == 0, proc.stderr
    return case


BAD_UTF8 = "ab\udcffc"  # the byte 0xff in an argument, as Python carries it
REFUSALS = [
    (["init", "new", "--case-id", "A\nB", "--title", "t"], "--case-id", "a single line"),
    (["init", "new", "--case-id", BAD_UTF8, "--title", "t"], "--case-id", "not valid UTF-8"),
    (["init", "new", "--case-id", " ", "--title", "t"], "--case-id", "must not be empty"),
    (["init", "new", "--case-id", "X\u202eY", "--title", "t"], "--case-id", "a single line"),
    (["init", "new", "--case-id", "X", "--title", "a\rb"], "--title", "a single line"),
    (["init", "new", "--case-id", "X", "--title", "t" * 1025], "--title", "too long"),
    (["key", "new", "--name", BAD_UTF8, "--role", "r"], "--name", "not valid UTF-8"),
    (["key", "new", "--name", "Eve\nMallory", "--role", "r"], "--name", "a single line"),
    (["key", "new", "--name", "Eve", "--role", "x\ty"], "--role", "a single line"),
    (["key", "new", "--name", "", "--role", "r"], "--name", "must not be empty"),
    (["collect", "ev.txt", "--reason", BAD_UTF8], "--reason", "not valid UTF-8"),
    (["collect", "ev.txt", "--reason", "a\x00b"], "--reason", "free text"),
    (["collect", "ev.txt", "--reason", "r" * 65537], "--reason", "too long"),
    (["event", "access", "ITEM-1", "--reason", BAD_UTF8], "--reason", "not valid UTF-8"),
    (["event", "access", "ITEM-1", "--reason", "r", "--location", "a\nb"], "--location", "line"),
    (["transfer", "ITEM-1", "--to", BAD_UTF8, "--reason", "r"], "--to", "not valid UTF-8"),
    (["transfer", "ITEM-1", "--to", "Lee Okafor", "--reason", BAD_UTF8], "--reason", "UTF-8"),
    (["receive", BAD_UTF8], "TRANSFER_ID", "not valid UTF-8"),
    (["receive", "X", "--note", BAD_UTF8], "--note", "not valid UTF-8"),
    (["key", "import", "lee.pub", "--name", BAD_UTF8, "--role", "c"], "--name", "UTF-8"),
    (["key", "import", "lee.pub", "--name", "L\nO", "--role", "c"], "--name", "a single line"),
    (["key", "revoke", BAD_UTF8, "--reason", "r"], "FINGERPRINT|NAME", "not valid UTF-8"),
    (["key", "revoke", "Lee Okafor", "--reason", BAD_UTF8], "--reason", "not valid UTF-8"),
    (["reassign", "ITEM-1", "--to", "Lee Okafor", "--reason", BAD_UTF8], "--reason", "UTF-8"),
    (
        ["bundle", "export", "--all", "--out", "b", "--organization", "O\nX"],
        "--organization",
        "line",
    ),
    (
        ["bundle", "export", "--all", "--out", "b", "--organization", BAD_UTF8],
        "--organization",
        "8",
    ),
    (["bundle", "export", BAD_UTF8, "--out", "b"], "ITEMS", "not valid UTF-8"),
    (["show", BAD_UTF8], "ITEM", "not valid UTF-8"),
    (["log", BAD_UTF8], "ITEM", "not valid UTF-8"),
    (["report", BAD_UTF8, "--out", "r.json"], "ITEMS", "not valid UTF-8"),
    (["checkpoint", "--tsa", BAD_UTF8], "--tsa", "not valid UTF-8"),
]


@pytest.mark.parametrize(("args", "what", "why"), REFUSALS, ids=lambda v: repr(v)[:40])
def test_hostile_text_is_refused_with_one_line(
    counsel: Case, tmp_path: Path, args: list[str], what: str, why: str
) -> None:
    (counsel.dir / "ev.txt").write_bytes(b"more\n")
    (counsel.dir / "lee.pub").write_bytes((tmp_path / "lee.pub").read_bytes())
    db = counsel.dir / "custody.db"
    with Ledger.open(counsel.dir, write=False) as ledger:
        events = ledger.event_count()
    proc = cli(counsel, *args)
    assert proc.returncode == 2, (args, proc.stderr)
    line = one_error_line(proc)
    assert line.startswith(f"custody: error: {what} "), line
    assert why in line, line
    assert not (counsel.dir / "new").exists()
    with Ledger.open(counsel.dir, write=False) as ledger:
        assert ledger.event_count() == events  # nothing recorded
    assert db.exists()


def test_exact_refusal_lines(case: Case) -> None:
    proc = cli(case, "init", "new", "--case-id", "A\nB", "--title", "t")
    assert (proc.returncode, one_error_line(proc)) == (
        2,
        "custody: error: --case-id must be a single line without control characters"
        " (U+000A at character 2): A\\nB",
    )
    proc = cli(case, "event", "access", "ITEM-1", "--reason", "why \udcfe")
    assert (proc.returncode, one_error_line(proc)) == (
        2,
        "custody: error: --reason is not valid UTF-8 text (at character 5): why \\xfe",
    )


def test_non_utf8_argv_of_a_real_process(case: Case) -> None:
    """The bytes 0xff 0xfe in a real argv (not a test's str): exit 2, one line."""
    proc = spawn(
        ["init", "other", "--case-id", os.fsdecode(b"CASE-\xff\xfe"), "--title", "t"],
        env=case.env,
        cwd=case.dir,
    )
    assert proc.returncode == 2
    assert one_error_line(proc) == (
        "custody: error: --case-id is not valid UTF-8 text (at character 6): CASE-\\xff\\xfe"
    )
    assert not (case.dir / "other").exists()


def test_free_text_keeps_lines_and_any_script(counsel: Case) -> None:
    """A reason may span lines and hold any script; the exact text is recorded."""
    reason = "seized at 09:12\nsecond line: é 漢字 \u202e tab\t"
    proc = cli(counsel, "event", "access", "ITEM-1", "--reason", reason, "--json")
    assert proc.returncode == 0, proc.stderr
    with Ledger.open(counsel.dir, write=False) as ledger:
        last = list(ledger.events())[-1]
    assert last.data["reason"] == reason


# -- a case whose id an earlier custody accepted -----------------------------------


@pytest.fixture
def multiline_id(case: Case, tmp_path: Path) -> Case:
    """A case made (through the library, as custody init once allowed) with the case
    id "A\\nB": it must not fail with exit 3 for good."""
    signer = load_signer(case.key, PASSPHRASE.encode())
    d = tmp_path / "old"
    Ledger.create(d, "A\nB", "multi\nline title", owner=signer).close()
    return Case(dir=d, key=case.key, run=case.run)


@pytest.mark.parametrize("cmd", [["checkpoint"], ["bundle", "export", "--all", "--out", "b"]])
def test_case_id_that_cannot_be_an_origin_is_refused_before_writing(
    multiline_id: Case, cmd: list[str]
) -> None:
    db = multiline_id.dir / "custody.db"
    with Ledger.open(multiline_id.dir, write=False) as ledger:
        events = ledger.event_count()
    proc = cli(multiline_id, *cmd)
    assert proc.returncode == 2
    assert one_error_line(proc) == (
        "custody: error: this case's id 'A\\nB' cannot name a checkpoint (checkpoint origin"
        " contains a newline): the case can be read and verified, but not checkpointed or"
        " exported"
    )
    with Ledger.open(multiline_id.dir, write=False) as ledger:
        assert ledger.event_count() == events
    assert not (multiline_id.dir / "b").exists() and db.exists()


def test_case_id_that_cannot_be_an_origin_still_reads_and_verifies(multiline_id: Case) -> None:
    for cmd in (["verify"], ["list"], ["log"], ["key", "list"]):
        proc = cli(multiline_id, *cmd)
        assert proc.returncode == 0, (cmd, proc.stderr)
        assert "A\\nB" in proc.stdout or cmd != ["verify"]


# -- the registered name is the signed name ------------------------------------------


def test_bag_info_and_checkpoint_use_the_registered_name(counsel: Case, tmp_path: Path) -> None:
    """A key imported under another name than its key file's: the checkpoint note is
    signed with the slug of the registered name and bag-info.txt's Contact-Name is
    the registered name (it was the key file's), ledger-format §9.2."""
    new_key(counsel.run, tmp_path / "kim.pem", "Kim File-Name", "examiner", default=False)
    proc = cli(
        counsel, "key", "import", tmp_path / "kim.pub", "--name", "Kim Registered", "--role", "x"
    )
    assert proc.returncode == 0, proc.stderr
    out = counsel.dir / "b"
    proc = cli(counsel, "bundle", "export", "--all", "--out", out, "--key", tmp_path / "kim.pem")
    assert proc.returncode == 0, proc.stderr
    info = dict(line.split(": ", 1) for line in (out / "bag-info.txt").read_text().splitlines())
    assert info["Contact-Name"] == "Kim Registered"
    assert "\n— kim-registered " in (out / "custody" / "checkpoint.txt").read_text()
    assert cli(counsel, "bundle", "verify", out, "--accept-self-asserted").returncode == 0


# -- property: hostile values for every text option ----------------------------------

HOSTILE = [
    "",
    " ",
    "\n",
    "A\nB",
    "\r\n",
    "\x00",
    "\x1b[2J",
    "\t",
    "\udcff",
    "a\udcc3\udca9",
    "\u202egnp.exe",
    "\u2028",
    "\u0085",
    "-",
    "--help",
    "é 漢字",
    "x" * 1100,
    "y" * 70000,
]
values = st.lists(
    st.one_of(
        st.sampled_from(HOSTILE),
        st.text(max_size=12),
        st.binary(max_size=8).map(lambda b: b.decode("utf-8", "surrogateescape")),
    ),
    min_size=1,
    max_size=3,
).map("".join)

#: (arguments with V for the hostile value); "{n}" is a fresh name per example
TEMPLATES = [
    ["init", "c{n}", "--case-id=V", "--title=t"],
    ["init", "c{n}", "--case-id=C{n}", "--title=V"],
    ["key", "new", "--name=V", "--role=r", "--out=k{n}.pem", "--no-default"],
    ["key", "new", "--name=N{n}", "--role=V", "--out=k{n}.pem", "--no-default"],
    ["collect", "ev.txt", "--reason=V", "--no-selftest"],
    ["event", "note", "ITEM-1", "--reason=V"],
    ["event", "access", "ITEM-1", "--reason=r", "--location=V"],
    ["transfer", "ITEM-1", "--to=V", "--reason=r"],
    ["receive", "--note=V", "--", "V"],
    ["key", "import", "lee.pub", "--name=V", "--role=counsel"],
    ["key", "revoke", "--reason=V", "--", "V"],
    ["bundle", "export", "--all", "--out=b{n}", "--organization=V"],
    ["show", "--", "V"],
    ["log", "--", "V"],
    ["prove", "inclusion", "--checkpoint=cp.txt", "--", "V"],
    ["report", "--format=json", "--out=r{n}.json", "--", "V"],
]


def _fill(arg: str, n: int, value: str) -> str:
    arg = arg.replace("{n}", str(n))
    if arg == "V" or arg.endswith("=V"):
        return arg[:-1] + value
    return arg


def test_hostile_option_values_never_break_the_contract(counsel: Case, tmp_path: Path) -> None:
    (counsel.dir / "ev.txt").write_bytes(b"more\n")
    (counsel.dir / "lee.pub").write_bytes((tmp_path / "lee.pub").read_bytes())
    assert cli(counsel, "checkpoint", "--out", "cp.txt").returncode == 0
    counter = itertools.count()

    @settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(template=st.sampled_from(TEMPLATES), value=values)
    def run(template: list[str], value: str) -> None:
        n = next(counter)
        args = [_fill(a, n, value) for a in template]
        proc = cli(counsel, *args)
        assert proc.returncode in (0, 1, 2), (args, proc.returncode, proc.stderr)
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
        if proc.returncode:
            assert proc.stderr.count("\n") == 1 and proc.stderr.endswith("\n"), proc.stderr
        check = cli(counsel, "verify", "--quick")
        assert check.returncode == 0, (args, check.stdout, check.stderr)

    run()


def test_abort_at_a_prompt_exits_130_not_1() -> None:
    """exit-codes.md: Ctrl-C / Ctrl-D at a prompt (click.Abort) is `custody: aborted`,
    exit 130; it was listed as a known deviation (exit 1) after it was fixed."""
    from click.testing import CliRunner

    from custody_cli.common import CustodyGroup

    group = CustodyGroup(name="custody")

    @group.command("ask")
    def ask() -> None:
        click.prompt("Key passphrase", hide_input=True)

    result = CliRunner().invoke(group, ["ask"], input="")
    assert result.exit_code == 130
    assert result.stderr.endswith("custody: aborted\n")
