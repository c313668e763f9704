"""The custody group loads its commands lazily (cli/main.py): `custody --help`
imports none of the heavy libraries, the command list it prints is the one the
commands themselves give, and each entry of the table names a command of that
name.  Start-up time itself is measured in benchmarks/cli_startup.py."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from custody_cli import main as cli_main

HEAVY = ("cryptography", "sqlite_utils", "magic", "fpdf", "tqdm", "custody.ledger")


def _modules_after(args: list[str]) -> tuple[int, str, set[str]]:
    """Exit code, output and the modules loaded of ``custody ARGS`` in a fresh
    interpreter (a process matters: this process has imported everything)."""
    code = (
        "import sys\n"
        "from custody_cli.main import cli\n"
        "try:\n"
        f"    cli({args!r}, prog_name='custody')\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "print('\\n' + repr(code), ' '.join(sorted(sys.modules)), sep='\\n')\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    out, rc, mods = p.stdout.rsplit("\n", 3)[:3]
    return int(rc) if rc != "None" else 0, out, set(mods.split())


@pytest.mark.parametrize("args", [["--help"], ["--version"], []])
def test_help_imports_nothing_heavy(args: list[str]) -> None:
    rc, out, mods = _modules_after(args)
    assert rc in (0, 2)  # bare `custody` prints the help, exit 0 (click 8.1) or 2 (8.2)
    assert not {m for m in mods if m.split(".")[0] in HEAVY or m in HEAVY}
    assert not {m for m in mods if m.startswith("custody_cli.") and m != "custody_cli.common"} - {
        "custody_cli.main"
    }
    if args == ["--help"]:
        assert re.search(r"\n  verify +Re-hash the store", out)


def test_a_command_loads_only_when_used() -> None:
    rc, out, mods = _modules_after(["verify", "--help"])
    assert rc == 0
    assert "--quick" in out
    assert "custody_cli.verify_cmds" in mods
    assert "custody_cli.collect_cmds" not in mods  # nor the collector, profiles, capture
    assert "custody.collect" not in mods
    assert "custody_cli.report_cmds" not in mods  # nor the PDF library it brings
    assert "fpdf" not in mods


def test_every_entry_is_a_command_of_its_name() -> None:
    for name, (target, _) in cli_main.COMMANDS.items():
        module, _, attr = target.partition(":")
        cmd = getattr(importlib.import_module(module), attr)
        assert isinstance(cmd, click.Command), name
        assert cmd.name == name, (name, cmd.name)


@pytest.mark.parametrize("limit", [20, 45, 62, 100, 10_000])
def test_short_help_in_the_table_is_the_commands_own(limit: int) -> None:
    for name, (target, short) in cli_main.COMMANDS.items():
        module, _, attr = target.partition(":")
        cmd = getattr(importlib.import_module(module), attr)
        assert click.Command(name, help=short).get_short_help_str(limit) == (
            cmd.get_short_help_str(limit)
        ), name


def _help(group: click.Group, width: int) -> str:
    r = CliRunner().invoke(group, ["--help"], prog_name="custody", terminal_width=width)
    assert r.exit_code == 0
    return r.output


@pytest.mark.parametrize("width", [50, 78, 120])
def test_help_listing_equals_the_loaded_commands(width: int) -> None:
    """The listing from the table equals click's own listing of the loaded commands."""
    fresh = cli_main.LazyGroup(name="custody", lazy=cli_main.COMMANDS, help=cli_main.__doc__)
    lazy_text = _help(fresh, width)
    assert fresh._loaded == {}  # printing the help loaded nothing
    eager = click.Group(name="custody", help=cli_main.__doc__, commands=fresh.commands)
    assert _help(eager, width) == lazy_text
    assert set(fresh._loaded) == set(cli_main.COMMANDS)


def test_unknown_command_is_a_usage_error() -> None:
    r = CliRunner().invoke(cli_main.cli, ["no-such-command"], prog_name="custody")
    assert r.exit_code == 2
    assert "No such command 'no-such-command'" in r.output


def test_registration_is_documented_at_the_top_of_main() -> None:
    text = Path(cli_main.__file__).read_text(encoding="utf-8")
    assert "TO ADD A COMMAND" in text.split("COMMANDS: dict")[0]


def test_commands_walk_in_table_order_whatever_ran_first() -> None:
    """docs/cli-reference.md walks ``commands``: its order must not depend on which
    command a test ran first."""
    fresh = cli_main.LazyGroup(name="custody", lazy=cli_main.COMMANDS)
    fresh.get_command(click.Context(fresh), "verify")
    fresh.get_command(click.Context(fresh), "event")
    assert list(fresh.commands) == list(cli_main.COMMANDS)
