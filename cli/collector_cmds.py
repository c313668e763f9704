"""custody build-collector: one zipapp that runs from the USB drive."""

from __future__ import annotations

from pathlib import Path

import click

from custody_cli.common import echo_json


@click.command("build-collector")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The zipapp to write (never over an existing file).",
)
@click.option(
    "--wheels",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Wheel cache: used offline when it holds every wheel, else filled from the"
    " package index (default: ~/.cache/custody/collector-wheels).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def build_collector(out: Path, wheels: Path | None, as_json: bool) -> None:
    """Write one self-contained zipapp: custody and the wheels of its dependencies
    for CPython 3.11-3.13 on manylinux x86_64 and aarch64.  Run it with the host's
    python3 (nothing installed): it unpacks its modules next to itself, on the
    collector's media, and records its own SHA-256 in each collection.start."""
    from custody.buildcollector import build_collector as build

    def say(msg: str) -> None:
        if not as_json:
            click.echo(f"fetching {msg}", err=True)

    result = build(out, cache=wheels, progress=say)
    if as_json:
        echo_json(
            {
                "path": str(result.path),
                "sha256": result.sha256,
                "size": result.size,
                "wheels": result.wheels,
            }
        )
        return
    click.echo(f"Wrote {result.path} ({result.size} bytes, {len(result.wheels)} wheels)")
    click.echo(f"sha256 {result.sha256}")
