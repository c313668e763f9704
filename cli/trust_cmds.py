"""`custody trust`: the case's trust anchors, kept by its owner (signed events)."""

from __future__ import annotations

from pathlib import Path

import click

from custody.display import shown
from custody_cli.common import (
    NAME_LINE,
    case_option,
    echo_json,
    key_options,
    load_key,
    open_case,
    print_table,
)


@click.group("trust")
def trust() -> None:
    """The case's trust anchors: keys whose bundles 'bundle import' accepts."""


@trust.command("add")
@click.argument("key", metavar="PUBFILE|VKEY")
@click.option("--name", type=NAME_LINE, help="Who the key belongs to (shown, never trusted).")
@case_option
@key_options
def trust_add(
    key: str,
    name: str | None,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Make KEY (a public key file or verifier key) a trust anchor of the case: a
    signed event only the case's owner may sign.  Every signer of a bundle
    imported later must be an anchor, or attested under a trusted owner of its
    case."""
    from custody.trust import add_anchor, read_trust_key

    k = read_trust_key(key, what="KEY", need_key=True)
    with open_case(case_dir) as ledger:
        signer = load_key(key_path, passphrase_file, insecure_key)
        ev = add_anchor(ledger, signer, k, name or "")
    click.echo(f"Trust anchor {k.fingerprint} added as event {ev.seq}")


@trust.command("remove")
@click.argument("key", metavar="PUBFILE|VKEY|FINGERPRINT")
@case_option
@key_options
def trust_remove(
    key: str,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Stop trusting KEY for later imports (a signed event, the owner's only).
    Imports made while it was trusted keep the trust basis they recorded."""
    from custody.trust import read_trust_key, remove_anchor

    fp = read_trust_key(key, what="KEY").fingerprint
    with open_case(case_dir) as ledger:
        signer = load_key(key_path, passphrase_file, insecure_key)
        ev = remove_anchor(ledger, signer, fp)
    click.echo(f"Trust anchor {fp} removed as event {ev.seq}")


@trust.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@case_option
def trust_list(as_json: bool, case_dir: Path | None) -> None:
    """The case's trust anchors, as its signed trust events leave them."""
    from custody.trust import anchor_rows

    with open_case(case_dir, write=False) as ledger:
        rows = anchor_rows(ledger)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No trust anchors: 'custody trust add KEY' (the case's owner) adds one.")
        return
    print_table(
        ["FINGERPRINT", "NAME", "ADDED AT EVENT"],
        [[r["fingerprint"], shown(r["name"]), str(r["event"])] for r in rows],
    )
