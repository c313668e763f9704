"""custody selftest: known-answer tests of every algorithm custody relies on."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from custody.errors import NotACaseError
from custody.ledger import Ledger, find_case_dir
from custody_cli.common import case_option, echo_json, key_options, load_key


@click.command("selftest")
@click.option(
    "--record/--no-record",
    default=True,
    show_default=True,
    help="Inside a case, record the result as a signed selftest event.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
@case_option
@key_options
def selftest(
    record: bool,
    as_json: bool,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Run known-answer tests of every algorithm custody relies on: each digest
    (NIST and RFC vectors), Ed25519 (RFC 8032), canonical JSON (RFC 8785), the
    Merkle tree (RFC 6962), libmagic on built-in samples, the store.  Inside a
    case the result is recorded as a signed event: the record that the tool gave
    accurate results on this machine on this day.  Exit 0 if every test passed
    (libmagic's checks are skipped, not failed, where libmagic is not installed),
    1 if any failed."""
    from custody.selftest import record_selftest, run_selftest

    result = run_selftest()
    event = None
    if record:
        try:
            ledger = Ledger.open(find_case_dir(case_dir))
        except NotACaseError:
            if case_dir is not None:
                raise
            ledger = None
        if ledger is not None:
            with ledger:
                signer = load_key(key_path, passphrase_file, insecure_key)
                event = record_selftest(ledger, signer, result)
    if as_json:
        echo_json({**result.as_json(), "event": event.seq if event else None})
    else:
        for c in result.checks:
            mark = "ok  " if c.ok else "skip" if c.skipped else "FAIL"
            click.echo(f"  {mark} {c.name:<28} {c.standard}" + ("" if c.ok else f": {c.detail}"))
        verdict = "PASSED" if result.ok else f"FAILED ({len(result.failed)} check(s))"
        if result.ok and result.skipped:
            verdict += f" ({len(result.skipped)} check(s) skipped)"
        click.echo(f"Self-test {verdict}: {len(result.checks)} checks in {result.seconds:.2f} s.")
        if event is not None:
            click.echo(f"Recorded as signed event {event.seq}.")
    sys.exit(0 if result.ok else 1)
