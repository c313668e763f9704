"""custody describe: MIME type and libmagic description per store object, signed."""

from __future__ import annotations

from pathlib import Path

import click

from custody.display import shown
from custody.errors import UsageError
from custody_cli.common import (
    LOOKUP,
    case_option,
    echo_json,
    key_options,
    load_key,
    open_case,
    progress_bar,
    show_progress,
)


@click.command("describe")
@click.argument("items", nargs=-1, type=LOOKUP)
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="Type every store object again, described or not (after a libmagic upgrade).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@case_option
@key_options
def describe(
    items: tuple[str, ...],
    every: bool,
    as_json: bool,
    quiet: bool,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Record the MIME type and libmagic description of store objects, one signed
    'describe' event per object (it names the object's SHA-256, never an item).
    Without ITEMS: every object no describe event types yet (collect types what it
    stores unless --no-describe).  With ITEMS: those items' objects, again.  Needs
    libmagic (exit 3 if it, or python-magic, cannot be loaded)."""
    from custody import describe as d
    from custody.lifecycle import find_item

    if every and items:
        raise UsageError("--all and ITEMS are alternatives: give one")
    d.check_available()
    with open_case(case_dir) as ledger:
        if items:
            r = ledger.rules().current()
            todo = []
            for raw in items:
                item = find_item(r, raw)
                if item is None:
                    raise UsageError(f"no such item: {shown(raw)}")
                st = r.items[item]
                sha = st.digests.get("sha256")
                if not st.stored or not isinstance(sha, str):
                    raise UsageError(f"{shown(item)} has no stored object to describe")
                todo.append(sha)
        elif every:
            todo = d.stored_objects(ledger)
        else:
            todo = d.undescribed(ledger)
        signer = load_key(key_path, passphrase_file, insecure_key) if todo else None
        with progress_bar(0, show_progress(quiet) and bool(todo), "describe") as cb:
            done, problems = (
                d.describe_objects(
                    ledger,
                    signer,
                    todo,
                    progress=None if cb is None else (lambda n: cb(0, n)),
                )
                if signer is not None
                else (0, [])
            )
    if as_json:
        echo_json({"described": done, "problems": problems})
        return
    for p in problems:
        click.echo(f"Note: {shown(p)}")
    click.echo(f"Described {done} store object(s); {len(problems)} could not be typed.")
