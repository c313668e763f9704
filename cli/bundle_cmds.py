"""`custody bundle`: evidence bundles for counsel (BagIt bags with the custody log)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from custody.display import shown
from custody.errors import UsageError
from custody_cli.common import (
    LINE,
    LOOKUP,
    NAME_LINE,
    case_option,
    echo_json,
    key_options,
    load_key,
    open_case,
    read_tsa_roots,
    tsa_cert_option,
)


@click.group("bundle")
def bundle() -> None:
    """Evidence bundles: export for counsel, verify offline."""


@bundle.command("export")
@click.argument("items", nargs=-1, type=LOOKUP)
@click.option("--all", "all_items", is_flag=True, help="Export every item of the case.")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="A new folder, or a file ending in .tar, .tar.gz or .zip.",
)
@click.option(
    "--organization", default="custody", type=NAME_LINE, help="bag-info.txt Source-Organization."
)
@click.option(
    "--tsa",
    "tsa_url",
    metavar="URL",
    type=LINE,
    help="Also get an RFC 3161 time-stamp on the export's checkpoint from this"
    " authority; it is recorded in the ledger and carried in the bundle.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@case_option
@key_options
def bundle_export(
    items: tuple[str, ...],
    all_items: bool,
    out: Path,
    organization: str,
    tsa_url: str | None,
    as_json: bool,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Export ITEMS (or --all) with their signed events, a fresh signed checkpoint
    and inclusion proofs, as a BagIt bag.  Only the named items' events leave."""
    if bool(items) == all_items:
        raise UsageError("name the items to export, or give --all (not both)")
    with open_case(case_dir) as ledger:
        signer = load_key(key_path, passphrase_file, insecure_key)
        from custody.bundle import export_bundle

        result = export_bundle(
            ledger, signer, list(items), out, organization=organization, tsa=tsa_url
        )
    summary = {
        "out": str(result.out),
        "items": result.items,
        "events": result.events,
        "bytes": result.bytes,
        "checkpoint_size": result.checkpoint_size,
        "warnings": result.warnings,
    }
    for w in result.warnings:
        click.echo(f"Warning: {shown(w)}", err=True)
    if as_json:
        echo_json(summary)
    else:
        click.echo(
            f"Bundle {shown(out)}: {len(result.items)} items, {result.events} events,"
            f" {result.bytes} payload bytes, checkpoint of {result.checkpoint_size} events"
        )


@bundle.command("verify")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--trust",
    multiple=True,
    metavar="PUBFILE|FINGERPRINT",
    help="A key you trust, as a public key file or sha256:FINGERPRINT (repeatable). Every"
    " event signer must then be such a key, or attested under a trusted owner of the"
    " source case; any other signer fails the bundle (untrusted-key).",
)
@click.option(
    "--require-trusted",
    is_flag=True,
    help="Without --trust: fail if any signer's key came only with the bundle.",
)
@tsa_cert_option
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def bundle_verify(
    path: Path,
    trust: tuple[str, ...],
    require_trusted: bool,
    tsa_certs: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Verify a bundle offline: bag completeness and every payload digest, every
    event signature and inclusion proof, the checkpoint, the hand-overs.
    Exit 0 ok, 1 integrity problem, 2 not a bundle or unreadable."""
    from custody.bundle import verify_bundle

    report = verify_bundle(
        path,
        trust=trust,
        require_trusted=require_trusted,
        tsa_roots=read_tsa_roots(tsa_certs),
    )
    if as_json:
        echo_json(report.as_json())
        sys.exit(0 if report.ok else 1)
    if report.ok:
        click.echo(
            f"VERIFIED: this bundle of case {shown(report.case_id)} is complete and unaltered."
            f" {len(report.items)} items, {report.payload_files} files, {report.events}"
            " signed events, each proven to be in the signed checkpoint."
        )
    else:
        click.echo(
            f"NOT VERIFIED: {len(report.findings)} problem(s) found in this bundle of"
            f" case {shown(report.case_id)}; do not rely on it without explanation:"
        )
        for f in report.findings:
            click.echo(f"  [{shown(f.kind)}] {shown(f.subject)}: {shown(f.detail)}")
    if report.timestamp:
        click.echo(
            f"The checkpoint existed at {shown(report.timestamp['time'])}, per the RFC 3161"
            f" time-stamp of {shown(report.timestamp['tsa'])} (verified)."
        )
    for item, chain in report.handovers.items():
        for h in chain:
            click.echo(
                f"  {shown(item)}: released by {shown(h['released_by'])}"
                f" {shown(h['released'])},"
                f" received by {shown(h['received_by'] or '(not received)')}"
                f" {shown(h['received'])} - {shown(h['reason'])}"
            )
    for w in report.warnings:
        click.echo(f"Warning: {shown(w)}")
    sys.exit(0 if report.ok else 1)


@bundle.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.option(
    "--endpoint-url",
    type=LINE,
    default=None,
    help="The S3 server of s3:// bundles (docs/vault.md), for servers other than AWS.",
)
@case_option
@key_options
def bundle_import(
    paths: tuple[Path, ...],
    as_json: bool,
    endpoint_url: str | None,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Verify, then merge collectors' bundles into this case: payload into the
    store, their signed events kept byte for byte, an import event signed by you.
    A bundle that fails verification is refused and nothing is written.  A path
    s3://BUCKET/PREFIX/bundles/… imports a bundle from an evidence vault."""
    from custody.bundle import import_bundle
    from custody.vault import staged_bundle, vault_url_of

    out = []
    with open_case(case_dir) as ledger:
        signer = load_key(key_path, passphrase_file, insecure_key)
        for p in paths:
            url = vault_url_of(str(p))
            if url is None:
                r = import_bundle(ledger, signer, p)
            else:
                with staged_bundle(ledger.case_dir, url, endpoint_url) as staged:
                    r = import_bundle(ledger, signer, staged)
            out.append(
                {
                    "bundle": url or str(p),
                    "id": r.bundle,
                    "already_imported": r.already,
                    "items": r.items,
                    "events": r.events,
                    "event": r.event_seq,
                }
            )
            if not as_json:
                if r.already:
                    click.echo(
                        f"{shown(url or p)}: already imported ({shown(r.bundle)}); nothing changed"
                    )
                else:
                    click.echo(
                        f"{shown(url or p)}: imported {len(r.items)} items and {r.events}"
                        f" signed events as event {r.event_seq}"
                    )
    if as_json:
        echo_json(out)
