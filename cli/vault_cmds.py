"""The evidence vault (S3 Object Lock) and legal holds: ``custody vault push|verify|list``
and ``custody hold set|release|list`` (docs/vault.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from custody.display import shown
from custody.errors import IntegrityError
from custody_cli.common import (
    LINE,
    LOOKUP,
    TEXT,
    case_option,
    echo_json,
    key_options,
    load_key,
    open_case,
    print_table,
)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
endpoint_option = click.option(
    "--endpoint-url",
    type=LINE,
    default=None,
    help="The S3 server's URL, for servers other than AWS (e.g. MinIO).",
)
url_argument = click.argument("url", metavar="s3://BUCKET[/PREFIX]", type=LINE)


@click.group()
def vault() -> None:
    """Keep the case's evidence in S3-compatible object storage under Object Lock.

    Credentials and region come from the standard AWS configuration chain
    (environment, ~/.aws files, instance roles)."""


@vault.command("push")
@url_argument
@click.argument("items", nargs=-1, type=LOOKUP)
@click.option("--all", "all_items", is_flag=True, help="Push every item with stored bytes.")
@click.option(
    "--retain-until",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Lock each object version until the end of this day (UTC).",
)
@click.option("--retain-days", type=int, help="Lock each object version for N days.")
@click.option(
    "--mode",
    type=click.Choice(["compliance", "governance"]),
    default="compliance",
    show_default=True,
    help="The Object Lock mode (compliance: nobody may shorten or delete).",
)
@click.option("--legal-hold", is_flag=True, help="Also set the S3 legal hold on every object.")
@click.option(
    "--no-lock",
    is_flag=True,
    help="Push to a bucket without Object Lock (recorded in the signed event).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Uploads at once.",
)
@endpoint_option
@json_option
@case_option
@key_options
def push_cmd(
    url: str,
    items: tuple[str, ...],
    all_items: bool,
    retain_until: dt.datetime | None,
    retain_days: int | None,
    mode: str,
    legal_hold: bool,
    no_lock: bool,
    concurrency: int,
    endpoint_url: str | None,
    as_json: bool,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Upload ITEMS' (or --all) store objects under content addresses, and a bundle
    of them, each object version locked; record the push in a signed event.  A killed
    push resumes: run it again."""
    from custody import vault as v
    from custody.errors import UsageError

    if bool(items) == all_items:
        raise UsageError("name ITEMS or give --all")
    ret = v.retention(
        retain_until.date() if retain_until else None,
        retain_days,
        mode,
        no_lock=no_lock,
        legal_hold=legal_hold,
    )
    with open_case(case_dir) as ledger:
        signer = load_key(key_path, passphrase_file, insecure_key)
        res = v.push(
            ledger,
            signer,
            url,
            list(items),
            ret,
            endpoint_url=endpoint_url,
            concurrency=concurrency,
        )
    if as_json:
        echo_json(
            {
                "event": res.event,
                "url": str(res.url),
                "objects": len(res.objects),
                "sent": res.sent,
                "reused": res.reused,
                "bytes_sent": res.bytes_sent,
                "bundle": res.bundle,
                "notes": res.notes,
            }
        )
        return
    for n in res.notes:
        click.echo(f"note: {shown(n)}", err=True)
    locked = (
        f"locked {ret.mode} until {v.iso(ret.until)}" if ret.mode and ret.until else "NOT locked"
    )
    click.echo(
        f"Pushed {len(res.objects)} objects to {shown(str(res.url))} ({res.sent} sent,"
        f" {res.reused} already there and confirmed), {locked}; bundle"
        f" {shown(res.bundle) or '(none)'}; recorded as event {res.event}"
    )


@vault.command("verify")
@url_argument
@click.option("--download", is_flag=True, help="Download and re-hash every object.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Checks at once.",
)
@endpoint_option
@json_option
@case_option
def verify_cmd(
    url: str,
    download: bool,
    concurrency: int,
    endpoint_url: str | None,
    as_json: bool,
    case_dir: Path | None,
) -> None:
    """Check that every object version this case recorded as pushed to URL is there,
    with the recorded checksum and at least the recorded retention.  Exit 1 on any
    finding, as verify."""
    from custody.vault import verify_vault

    with open_case(case_dir, write=False) as ledger:
        rep = verify_vault(
            ledger, url, endpoint_url=endpoint_url, download=download, concurrency=concurrency
        )
    if as_json:
        echo_json(rep.as_json())
    else:
        for n in rep.notes:
            click.echo(f"note: {shown(n)}")
        for f in rep.findings:
            click.echo(f"FINDING [{f.kind}] {shown(f.subject)}: {shown(f.detail)}")
        verdict = "OK" if rep.ok else "FAILED"
        click.echo(
            f"{verdict}: {rep.objects_checked} object versions in {rep.pushes} recorded pushes"
            f" checked ({rep.downloaded} downloaded), {len(rep.findings)} findings"
        )
    if not rep.ok:
        raise SystemExit(IntegrityError.exit_code)


@vault.command("sync-holds")
@url_argument
@endpoint_option
@json_option
@case_option
@key_options
def sync_holds_cmd(
    url: str,
    endpoint_url: str | None,
    as_json: bool,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Make the S3 legal holds of the versions pushed to URL match the case's legal
    holds (set for held items, released when their holds are released); record
    the changes in a signed event."""
    from custody.vault import sync_holds

    with open_case(case_dir) as ledger:
        signer = load_key(key_path, passphrase_file, insecure_key)
        seq, changes = sync_holds(ledger, signer, url, endpoint_url=endpoint_url)
    if as_json:
        echo_json({"event": seq, "changes": changes})
        return
    on = sum(1 for c in changes if c["legal_hold"])
    if seq is None:
        click.echo("The vault's legal holds already match the case's; nothing recorded")
    else:
        click.echo(
            f"Set {on} and released {len(changes) - on} S3 legal holds; recorded as event {seq}"
        )


@vault.command("list")
@url_argument
@endpoint_option
@json_option
def list_cmd(url: str, endpoint_url: str | None, as_json: bool) -> None:
    """The bundles in the vault, as each bundle states them (not verified:
    'custody bundle import s3://…' verifies with the usual trust rules)."""
    from custody.vault import connect, list_bundles

    rows = list_bundles(connect(endpoint_url), url)
    if as_json:
        echo_json(rows)
        return
    click.echo("As each bundle.json states (unverified):")
    table: list[list[Any]] = [
        [
            shown(str(r.get("case", ""))),
            shown(str(r.get("host", ""))),
            shown(f"{r.get('exported_by_name', '')} {str(r.get('exported_by', ''))[:23]}"),
            str(r.get("items", "")),
            shown(str(r.get("exported", ""))),
            shown(str(r["url"])) + (f" ({shown(r['error'])})" if r.get("error") else ""),
        ]
        for r in rows
    ]
    print_table(["CASE", "HOST", "COLLECTOR KEY", "ITEMS", "EXPORTED", "BUNDLE"], table)


@click.group()
def hold() -> None:
    """Legal holds: while an item is held, its stored bytes may not be purged, and
    'vault push' sets the S3 legal hold on its object."""


@hold.command("set")
@click.argument("items", nargs=-1, type=LOOKUP)
@click.option("--all", "all_items", is_flag=True, help="Every item of the case.")
@click.option("--reason", required=True, type=TEXT, help="Why (e.g. the litigation hold notice).")
@json_option
@case_option
@key_options
def hold_set(
    items: tuple[str, ...],
    all_items: bool,
    reason: str,
    as_json: bool,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Record a legal hold on ITEMS (or --all)."""
    _hold(items, all_items, reason, as_json, case_dir, key_path, passphrase_file, insecure_key)


@hold.command("release")
@click.argument("items", nargs=-1, type=LOOKUP)
@click.option("--all", "all_items", is_flag=True, help="Every hold standing.")
@click.option("--reason", required=True, type=TEXT, help="Why the hold ends.")
@json_option
@case_option
@key_options
def hold_release(
    items: tuple[str, ...],
    all_items: bool,
    reason: str,
    as_json: bool,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Release the legal hold of ITEMS (or --all); only the key that set it or the
    case's owner may."""
    _hold(
        items,
        all_items,
        reason,
        as_json,
        case_dir,
        key_path,
        passphrase_file,
        insecure_key,
        release=True,
    )


def _hold(
    items: tuple[str, ...],
    all_items: bool,
    reason: str,
    as_json: bool,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
    *,
    release: bool = False,
) -> None:
    from custody.errors import UsageError
    from custody.writers import set_hold

    if bool(items) == all_items:
        raise UsageError("name ITEMS or give --all")
    with open_case(case_dir) as ledger:
        signer = load_key(key_path, passphrase_file, insecure_key)
        evs = set_hold(ledger, signer, list(items), reason, release=release)
    held = [ev.data["items"][0] for ev in evs]
    if as_json:
        echo_json({"events": [ev.seq for ev in evs], "items": held, "hold": evs[0].data["hold"]})
        return
    what = "Released the legal hold of" if release else "Set a legal hold on"
    click.echo(
        f"{what} {len(held)} items ({shown(evs[0].data['hold'])}), events"
        f" {evs[0].seq}-{evs[-1].seq}"
    )


@hold.command("list")
@json_option
@case_option
def hold_list(as_json: bool, case_dir: Path | None) -> None:
    """The legal holds standing, from the signed events."""
    from custody.writers import holds_standing

    with open_case(case_dir, write=False) as ledger:
        rows = holds_standing(ledger)
    if as_json:
        echo_json([{"item": i, "event": s, "by": w} for i, s, w in rows])
        return
    print_table(["ITEM", "SINCE EVENT", "BY"], [[shown(i), str(s), shown(w)] for i, s, w in rows])
