"""custody - evidence preservation and chain of custody.

Exit codes:

\b
  0  success, nothing wrong found
  1  integrity problem found (verification failed, ledger corrupt)
  2  usage error or bad input (missing path, wrong passphrase, not a case)
  3  operational failure (I/O error, disk full, ledger locked past the timeout)
"""

# The custody command group, loaded lazily: `custody --help` and `custody --version`
# import no command module (and so none of cryptography, sqlite_utils, magic, fpdf,
# tqdm); a command's module is imported when that command is run or asked for its
# own help.  tests/test_cli_lazy.py keeps it so.
#
# TO ADD A COMMAND: write it (a click command or group) in a module of its own
# under cli/, then add ONE line to COMMANDS below:
#
#     "name": ("custody_cli.module:function", "Its short help, as --help lists it."),
#
# The short help is what the help text of the command says first (its first
# sentence); tests/test_cli_lazy.py checks that it is, and that every entry loads
# a command of that name.  Then run `cog -r docs/cli-reference.md`.

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from custody import __version__
from custody_cli.common import CustodyGroup, case_option

#: command name -> ("module:attribute", short help for `custody --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": (
        "custody_cli.core_cmds:init",
        "Create a case: DIRECTORY/custody.db and DIRECTORY/store/.",
    ),
    "key": ("custody_cli.core_cmds:key", "Signing identities (Ed25519 keys)."),
    "collect": (
        "custody_cli.collect_cmds:collect",
        (
            "Hash, copy into the read-only store, and record PATHS (files, directories, block "
            "devices or images named explicitly)."
        ),
    ),
    "list": (
        "custody_cli.core_cmds:list_cmd",
        (
            "Items recorded in the case: its own, then those imported from bundles (SOURCE names "
            "the case each came from, by case id and case header hash)."
        ),
    ),
    "log": (
        "custody_cli.core_cmds:log",
        (
            "The custody events, oldest first (optionally only those of ITEM; of an imported item, "
            "from the import that brought it into the case)."
        ),
    ),
    "show": (
        "custody_cli.core_cmds:show",
        (
            "One item: what it is, its digests, its current custodian and state, every hand-over in"
            " the form of a paper chain-of-custody record, and its timeline."
        ),
    ),
    "verify": (
        "custody_cli.verify_cmds:verify",
        (
            "Re-hash the store, recompute every event hash and the chain, check every signature; "
            "report every problem found."
        ),
    ),
    "demo": (
        "custody_cli.core_cmds:demo",
        (
            "Run the whole collector's story on built-in sample evidence, under DIRECTORY (default:"
            " a new temporary directory)."
        ),
    ),
    "transfer": (
        "custody_cli.custody_cmds:transfer_cmd",
        "Release ITEMS to another custodian (signed by you, the current custodian).",
    ),
    "receive": (
        "custody_cli.custody_cmds:receive_cmd",
        (
            "Receive a transfer addressed to you: every item is re-hashed and the receipt, with any"
            " mismatch, is signed by you."
        ),
    ),
    "reassign": (
        "custody_cli.custody_cmds:reassign_cmd",
        (
            "Give ITEMS held by a revoked key, or in transit to one, to an attested key (the case's"
            " owner only, with a signed reason that stays in the record)."
        ),
    ),
    "event": (
        "custody_cli.custody_cmds:event_cmd",
        (
            "Record a lifecycle event (access, analysis, note, seal, release, dispose) on ITEMS. "
            "dispose keeps the stored bytes unless --purge is given and confirmed; the record stays"
            " forever."
        ),
    ),
    "checkpoint": (
        "custody_cli.custody_cmds:checkpoint_cmd",
        (
            "Sign a checkpoint (C2SP tlog-checkpoint in a signed note) of the ledger as it is now, "
            "record it, and print it."
        ),
    ),
    "prove": ("custody_cli.custody_cmds:prove", "Merkle proofs against signed checkpoints."),
    "bundle": (
        "custody_cli.bundle_cmds:bundle",
        "Evidence bundles: export for counsel, verify offline.",
    ),
    "trust": (
        "custody_cli.trust_cmds:trust",
        "The case's trust anchors: keys whose bundles 'bundle import' accepts.",
    ),
    "report": (
        "custody_cli.report_cmds:report",
        (
            "Write a custody report of the case (or of ITEMS only): case header, a full "
            "verification run now, every item with its digests and custody timeline, the keys "
            "involved."
        ),
    ),
    "selftest": (
        "custody_cli.selftest_cmd:selftest",
        (
            "Run known-answer tests of every algorithm custody relies on: each digest (NIST and RFC"
            " vectors), Ed25519 (RFC 8032), canonical JSON (RFC 8785), the Merkle tree (RFC 6962), "
            "libmagic on built-in samples, the store."
        ),
    ),
    "describe": (
        "custody_cli.describe_cmd:describe",
        (
            "Record the MIME type and libmagic description of store objects, one signed "
            "'describe' event per object (it names the object's SHA-256, never an item)."
        ),
    ),
    "vault": (
        "custody_cli.vault_cmds:vault",
        "Keep the case's evidence in S3-compatible object storage under Object Lock.",
    ),
    "hold": (
        "custody_cli.vault_cmds:hold",
        (
            "Legal holds: while an item is held, its stored bytes may not be purged, and "
            "'vault push' sets the S3 legal hold on its object."
        ),
    ),
    "profile": (
        "custody_cli.profile_cmds:profile_group",
        "Collection profiles: what 'collect --profile' takes, in which order.",
    ),
    "capture": (
        "custody_cli.capture_cmds:capture",
        (
            "Run CMD and record it: argv, the executable's path and SHA-256, the environment it "
            "ran "
            "with (secrets removed, their names listed), start and end times, how it ended, and "
            "its "
            "stdout and stderr, streamed into the store as two items (outcome captured)."
        ),
    ),
    "build-collector": (
        "custody_cli.collector_cmds:build_collector",
        (
            "Write one self-contained zipapp: custody and the wheels of its dependencies for "
            "CPython "
            "3.11-3.13 on manylinux x86_64 and aarch64."
        ),
    ),
}


class LazyGroup(CustodyGroup):
    """A click group whose commands are imported from COMMANDS on first use."""

    def __init__(self, *args: Any, lazy: Mapping[str, tuple[str, str]], **kwargs: Any) -> None:
        self._loaded: dict[str, click.Command] = {}
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    @property
    def commands(self) -> dict[str, click.Command]:
        """Every command, all loaded, in COMMANDS order whatever was loaded first
        (for code that walks the tree: docs, tests); added ones after them."""
        ordered = {name: self._load(name) for name in self.lazy}
        ordered.update(self._loaded)
        self._loaded = {name: cmd for name, cmd in ordered.items() if cmd is not None}
        return self._loaded

    @commands.setter
    def commands(self, value: Mapping[str, click.Command]) -> None:
        self._loaded = dict(value)

    def _load(self, name: str) -> click.Command | None:
        cmd = self._loaded.get(name)
        if cmd is None and name in self.lazy:
            module, _, attr = self.lazy[name][0].partition(":")
            cmd = getattr(importlib.import_module(module), attr)
            if not isinstance(cmd, click.Command):
                raise TypeError(f"COMMANDS[{name!r}] is not a click command")
            self._loaded[name] = cmd
        return cmd

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self._loaded) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the short helps in COMMANDS: no module imported."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            cmd = self._loaded.get(name)
            if cmd is None:  # click's own shortening, of the text COMMANDS holds
                cmd = click.Command(name, help=self.lazy[name][1])
            if cmd.hidden:
                continue
            rows.append((name, cmd.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, lazy=COMMANDS, help=__doc__)
@click.version_option(__version__, prog_name="custody")
@case_option
def cli(case_dir: Path | None) -> None:
    pass


def main() -> None:
    cli(prog_name="custody")


if __name__ == "__main__":
    main()
