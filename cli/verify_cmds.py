"""`custody verify` (moved from cli/core_cmds.py; loaded on first use by cli/main.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from custody.display import shown
from custody.errors import CustodyError
from custody.keys import (
    Signer,
)
from custody.ledger import Event
from custody.verified import record_note
from custody.verify import VerifyReport, store_bytes, verify_ledger
from custody.views import (
    verification_lines,
)
from custody_cli.common import (
    case_option,
    echo_json,
    key_options,
    load_key,
    open_case,
    progress_bar,
    read_tsa_roots,
    show_progress,
    tsa_cert_option,
)

# -- verify ---------------------------------------------------------------------


@click.command()
@click.option("--quick", is_flag=True, help="Skip re-hashing the store objects.")
@click.option("--json", "as_json", is_flag=True, help='Print {"ok": ..., "findings": [...], ...}.')
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also check the ledger against this signed checkpoint (repeatable).",
)
@click.option(
    "--incremental",
    is_flag=True,
    help="Check again only the signatures past your key's last signed 'verified through"
    " N' note (everything else in full), then record a new note if all is well.",
)
@tsa_cert_option
@case_option
@key_options
def verify(
    quick: bool,
    as_json: bool,
    quiet: bool,
    checkpoints: tuple[Path, ...],
    incremental: bool,
    tsa_certs: tuple[Path, ...],
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Re-hash the store, recompute every event hash and the chain, check every
    signature; report every problem found.  Exit 0 if all is well, 1 if not.
    With --incremental, your key (--key, else the default) signs a note of what
    it verified, and the next --incremental run does not check those signatures
    again once the note, the tree root and the signatures below it hold."""
    signer = load_key(key_path, passphrase_file, insecure_key) if incremental else None
    with open_case(case_dir, write=False) as ledger:
        show = show_progress(quiet) and not quick
        with progress_bar(store_bytes(ledger) if show else 0, show, "verify") as cb:
            report = verify_ledger(
                ledger,
                quick=quick,
                progress=cb,
                checkpoints=checkpoints,
                tsa_roots=read_tsa_roots(tsa_certs),
                verifier=signer.identity if signer is not None else None,
                # a full verify re-hashes the store anyway: the bodies it keeps are
                # shared (~30-60% less memory at 10^5 items); --quick keeps its speed
                compact=not quick,
            )
    recorded, why = _record_verified(case_dir, signer, report)
    if as_json:
        out = report.as_json()
        if signer is not None:
            out["verified_note_recorded"] = recorded.seq if recorded is not None else None
        echo_json(out)
    else:
        for line in verification_lines(report):
            click.echo(line)
        if recorded is not None:
            click.echo(
                f"Recorded event {recorded.seq}: your key's signed note that events"
                f" 0-{recorded.data['through']} verified."
            )
    if why:
        click.echo(f"custody: no verified-through note recorded: {shown(why)}", err=True)
    sys.exit(0 if report.ok else 1)


def _record_verified(
    case_dir: Path | None, signer: Signer | None, report: VerifyReport
) -> tuple[Event | None, str]:
    """After an --incremental run that found nothing wrong, the new note (or why
    none could be recorded: the verification's result stands either way)."""
    if signer is None or not report.ok or report.root is None or report.signatures is None:
        return None, ""
    try:
        with open_case(case_dir) as ledger:
            ev = record_note(
                ledger,
                signer,
                events=report.events,
                root=report.root,
                signatures=report.signatures,
                note=report.note,
            )
    except CustodyError as e:
        return None, e.message
    return ev, ""
