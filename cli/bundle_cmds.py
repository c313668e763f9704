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
    help="A new folder, or a file ending in .tar, .tar.gz, .tgz or .zip (any case).",
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
    metavar="PUBFILE|VKEY|FINGERPRINT",
    help="A key you trust, as a public key file, a verifier key or sha256:FINGERPRINT"
    " (repeatable). Every event signer must then be such a key, or attested under a"
    " trusted owner of the source case; any other signer fails the bundle"
    " (untrusted-key). Without it the bundle is at best INTACT, SIGNERS UNCONFIRMED.",
)
@click.option(
    "--require-trusted",
    is_flag=True,
    help="Without --trust: list each signer's key that came only with the bundle as a"
    " finding (untrusted-key).",
)
@click.option(
    "--accept-self-asserted",
    is_flag=True,
    help="Exit 0 for an intact bundle whose signers no key you trust vouches for"
    " (it is still reported as INTACT, SIGNERS UNCONFIRMED, never VERIFIED).",
)
@tsa_cert_option
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def bundle_verify(
    path: Path,
    trust: tuple[str, ...],
    require_trusted: bool,
    accept_self_asserted: bool,
    tsa_certs: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Verify a bundle offline: bag completeness and every payload digest, every
    event signature and inclusion proof, the checkpoint, the hand-overs, and that
    a key you trust (--trust) vouches for every signer.  Exit 0 verified, 1
    integrity problem or (without --accept-self-asserted) signers unconfirmed, 2 not
    a bundle or unreadable."""
    from custody.bundle import verify_bundle

    report = verify_bundle(
        path,
        trust=trust,
        require_trusted=require_trusted,
        tsa_roots=read_tsa_roots(tsa_certs),
    )
    from custody.trust import UNCONFIRMED, VERIFIED

    code = 0 if report.verdict == VERIFIED else 1
    if report.verdict == UNCONFIRMED and accept_self_asserted:
        code = 0
    if as_json:
        echo_json(report.as_json())
        sys.exit(code)
    counts = (
        f" {len(report.items)} items, {report.payload_files} files, {report.events}"
        " signed events, each proven to be in the signed checkpoint."
    )
    if report.verdict == VERIFIED:
        click.echo(
            f"VERIFIED: this bundle of case {shown(report.case_id)} is complete and unaltered,"
            f" and keys you trust vouch for every signer.{counts}"
        )
    elif report.verdict == UNCONFIRMED:
        click.echo(
            f"INTACT, SIGNERS UNCONFIRMED: this bundle of case {shown(report.case_id)} is"
            " complete and unaltered as its own keys say, but no key you trust vouches for"
            f" its signers (give --trust with the case owner's public key).{counts}"
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
    for item, t in report.types.items():  # from signed describe events checked here
        click.echo(
            f"  {shown(item)}: type {shown(t['mime'])} ({shown(t['description'])}),"
            f" describe event {t['describe_event']}"
        )
    for w in report.warnings:
        click.echo(f"Warning: {shown(w)}")
    sys.exit(code)


@bundle.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--trust",
    multiple=True,
    metavar="PUBFILE|VKEY|FINGERPRINT",
    help="A key you trust, as a public key file, a verifier key or sha256:FINGERPRINT"
    " (repeatable), besides the case's own anchors ('custody trust add'). Every signer"
    " of the bundle must be such a key or attested under a trusted owner of its case.",
)
@click.option(
    "--accept-self-asserted",
    is_flag=True,
    help="Import even when no key you trust vouches for a signer; the signed import"
    " event records that you accepted them on their own word.",
)
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
    trust: tuple[str, ...],
    accept_self_asserted: bool,
    as_json: bool,
    endpoint_url: str | None,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Verify, then merge collectors' bundles into this case: payload into the
    store, their signed events kept byte for byte, import events signed by you
    (one for the bundle, one per item).  Each bundle is copied into private
    staging (a .import-* folder in the case folder; one an interrupted import left
    is named on stderr, never deleted) and the staged bytes are verified and
    imported.  A bundle that fails verification, whose signers no key you trust
    vouches for, or that is not proven consistent with what an earlier import of
    its source pinned, is refused (exit 1) and nothing is written.  A path
    s3://BUCKET/PREFIX/bundles/… imports a bundle from an evidence vault."""
    from custody.bundle import import_bundle
    from custody.bundle.importer import stale_staging
    from custody.vault import staged_bundle, vault_url_of

    out = []
    with open_case(case_dir) as ledger:
        for stale in stale_staging(ledger.case_dir):
            click.echo(
                f"Warning: {shown(str(stale))} is a staging folder left by an interrupted"
                " import (or one running now); custody does not delete it: look at it and"
                " remove it yourself",
                err=True,
            )
        signer = load_key(key_path, passphrase_file, insecure_key)
        for p in paths:
            url = vault_url_of(str(p))
            accept = accept_self_asserted
            if url is None:
                r = import_bundle(ledger, signer, p, trust=trust, accept_self_asserted=accept)
            else:
                with staged_bundle(ledger.case_dir, url, endpoint_url) as staged:
                    r = import_bundle(
                        ledger, signer, staged, trust=trust, accept_self_asserted=accept
                    )
            out.append(
                {
                    "bundle": url or str(p),
                    "id": r.bundle,
                    "already_imported": r.already,
                    "source": r.label,
                    "signers": r.signers,
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
                    loose = sorted(fp for fp, s in (r.signers or {}).items() if s != "trusted")
                    click.echo(
                        f"{shown(url or p)}: imported {len(r.items)} items of {shown(r.label)}"
                        f" and {r.events} signed events as event {r.event_seq}"
                        + (
                            f"; accepted self-asserted signer(s) {', '.join(loose)}"
                            if loose
                            else "; every signer trusted"
                        )
                    )
    if as_json:
        echo_json(out)
