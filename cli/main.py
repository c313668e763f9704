"""custody - evidence preservation and chain of custody.

Exit codes:

\b
  0  success, nothing wrong found
  1  integrity problem found (verification failed, ledger corrupt)
  2  usage error or bad input (missing path, wrong passphrase, not a case)
  3  operational failure (I/O error, disk full, ledger locked past the timeout)
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from custody import __version__, note
from custody.checkpoint import (
    load_for_ledger,
    make_checkpoint,
    prove_consistency,
    vkey_of,
)
from custody.collect import RUN_START_EVENT, check_paths, estimate, runs, unfinished_runs
from custody.collect import collect as run_collect
from custody.collect import resume as resume_collection
from custody.config import remember_default_key
from custody.demo import DEMO_PASSPHRASE, make_sample_evidence
from custody.errors import UsageError
from custody.hashing import parse_algorithms
from custody.keys import (
    Identity,
    generate_key,
    load_public_key,
    short_fingerprint,
    verify_signature,
)
from custody.ledger import Ledger
from custody.lifecycle import lifecycle_event, receive, transfer, transfer_id
from custody.verify import store_bytes, verify_ledger
from custody_cli.bundle_cmds import bundle
from custody_cli.common import (
    CustodyGroup,
    case_option,
    echo_json,
    key_options,
    load_key,
    open_case,
    pem_or_none,
    print_table,
    progress_bar,
    read_passphrase,
    read_tsa_roots,
    show_progress,
    tsa_cert_option,
)
from custody_cli.custody_cmds import (
    checkpoint_cmd,
    event_cmd,
    key_revoke,
    key_rotate,
    prove,
    receive_cmd,
    timeline,
    transfer_cmd,
)
from custody_cli.report_cmds import report as report_cmd
from custody_cli.selftest_cmd import selftest as selftest_cmd

# -- the group ------------------------------------------------------------------


@click.group(cls=CustodyGroup, help=__doc__)
@click.version_option(__version__, prog_name="custody")
@case_option
def cli(case_dir: Path | None) -> None:
    pass


@cli.command()
@click.argument(
    "directory", required=False, type=click.Path(file_okay=False, path_type=Path), default=Path(".")
)
@click.option("--case-id", required=True, help="Case identifier, e.g. 2026-017.")
@click.option("--title", required=True, help="Case title.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def init(directory: Path, case_id: str, title: str, as_json: bool) -> None:
    """Create a case: DIRECTORY/custody.db and DIRECTORY/store/."""
    with Ledger.create(directory, case_id, title) as ledger:
        case = ledger.case
        if as_json:
            echo_json(
                {
                    "case": case.case_id,
                    "title": case.title,
                    "directory": str(directory),
                    "created": case.created,
                    "header_hash": case.hash,
                }
            )
        else:
            click.echo(f'Created case {case.case_id} "{case.title}" in {directory}')


# -- keys -----------------------------------------------------------------------


@cli.group()
def key() -> None:
    """Signing identities (Ed25519 keys)."""


@key.command("new")
@click.option("--name", required=True, help="The key holder's full name.")
@click.option("--role", required=True, help="Role, e.g. collector, examiner, counsel.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key file to write (default: ./NAME.pem).",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the new passphrase from this file (else $CUSTODY_PASSPHRASE, else a prompt).",
)
@click.option(
    "--no-default", is_flag=True, help="Do not remember this key as the default signing key."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def key_new(
    name: str,
    role: str,
    out: Path | None,
    passphrase_file: Path | None,
    no_default: bool,
    as_json: bool,
) -> None:
    """Create an Ed25519 key, encrypted PKCS#8 PEM (0600), and its .pub beside it."""
    if out is None:
        slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "key"
        out = Path(f"{slug}.pem")
    passphrase = read_passphrase(passphrase_file, confirm=True)
    signer, pub = generate_key(name, role, passphrase, out)
    if not no_default:
        remember_default_key(out)
    ident = signer.identity
    if as_json:
        echo_json(
            {
                "name": ident.name,
                "role": ident.role,
                "fingerprint": ident.fingerprint,
                "public_key": ident.public_b64,
                "private_key_file": str(out),
                "public_key_file": str(pub),
            }
        )
    else:
        click.echo(f"Key for {ident.name} ({ident.role}) written to {out} (public key: {pub})")
        click.echo(f"Fingerprint: {ident.fingerprint}")


@key.command("list")
@case_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def key_list(case_dir: Path | None, as_json: bool) -> None:
    """Identities known to the case ledger."""
    with open_case(case_dir) as ledger:
        rows = sorted(ledger.identities().values(), key=lambda r: r["event_seq"])
        if as_json:
            echo_json(
                [
                    {
                        **r,
                        "public_key_pem": pem_or_none(r["public_key"]),
                        "vkey": vkey_or_none(r),
                    }
                    for r in rows
                ]
            )
            return
        print_table(
            ["FINGERPRINT", "NAME", "ROLE", "SINCE EVENT", "VERIFIER KEY"],
            [
                [
                    short_fingerprint(r["fingerprint"]),
                    r["name"],
                    r["role"],
                    str(r["event_seq"]),
                    vkey_or_none(r) or "",
                ]
                for r in rows
            ],
        )


@key.command("import")
@click.argument("pubfile", metavar="PUBFILE|VKEY")
@click.option("--name", required=True, help="The key holder's full name.")
@click.option("--role", required=True, help="The key holder's role.")
@case_option
@key_options
def key_import(
    pubfile: str,
    name: str,
    role: str,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Record another person's public key in the ledger, attested by your
    signature.  PUBFILE|VKEY is a PEM SubjectPublicKeyInfo file (what
    'openssl pkey -pubout' writes) or a verifier-key string as 'key list' prints."""
    raw = load_public_key_or_vkey(pubfile)
    other = Identity(name=name, role=role, public_raw=raw)
    with open_case(case_dir) as ledger:
        signer = load_key(key_path, passphrase_file, insecure_key)
        ev = ledger.register_identity(signer, other)
        if ev is None:
            click.echo(f"Already known: {other.fingerprint}")
        else:
            click.echo(f"Imported {name} ({role}) {other.fingerprint} as event {ev.seq}")


# -- collect --------------------------------------------------------------------


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--reason", default="", help="Why these items are collected.")
@click.option(
    "--resume",
    is_flag=True,
    help="Finish the last interrupted collection (killed, crashed, unplugged): its paths"
    " again, without recollecting what it already recorded.",
)
@click.option(
    "--no-selftest",
    is_flag=True,
    help="Skip the self-test the first collection of a case runs and records.",
)
@click.option(
    "--hash",
    "hash_spec",
    default="md5,sha1,sha256",
    show_default=True,
    help="Digests to compute: any of md5, sha1, sha256, sha512, blake2b (sha256 always).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@case_option
@key_options
def collect(
    paths: tuple[str, ...],
    reason: str,
    resume: bool,
    no_selftest: bool,
    hash_spec: str,
    as_json: bool,
    quiet: bool,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Hash, copy into the read-only store, and record PATHS (files, directories,
    block devices or images named explicitly)."""
    algorithms = parse_algorithms(hash_spec)
    if resume and paths:
        raise UsageError("--resume takes no paths: it finishes the interrupted collection's own")
    if not resume:
        check_paths(paths)  # bad paths are refused before anything is asked or written
    with open_case(case_dir) as ledger:
        run = None
        if resume:
            pending = unfinished_runs(ledger)
            if not pending:
                raise UsageError("no interrupted collection to resume in this case")
            run = pending[-1]
            paths = tuple(os.fsdecode(bytes.fromhex(p["hex"])) for p in run.paths)
        signer = load_key(key_path, passphrase_file, insecure_key)
        show = show_progress(quiet)
        total = estimate(paths)[0] if show else 0
        with progress_bar(total, show, "collect") as cb:
            if run is not None:
                summary = resume_collection(
                    ledger, signer, run, progress=cb, selftest=not no_selftest
                )
            else:
                summary = run_collect(
                    ledger,
                    signer,
                    paths,
                    reason=reason,
                    algorithms=algorithms,
                    progress=cb,
                    selftest=not no_selftest,
                )
    if as_json:
        echo_json(summary.as_json())
        return
    if summary.selftest is not None:
        click.echo(f"Self-test passed and recorded as event {summary.selftest}.")
    if summary.cleanup is not None:
        removed = summary.cleanup.data["removed"]
        click.echo(
            f"Cleaned up after an interrupted run: {len(removed)} unrecorded store object(s),"
            f" {summary.cleanup.data['temp_files']} temporary file(s) removed"
            f" (recorded as event {summary.cleanup.seq})."
        )
    if summary.resumed:
        click.echo(
            f"Resumed collection {summary.resumed}: {summary.skipped} path(s) already"
            " recorded were not collected again."
        )
    counts = ", ".join(f"{n} {k}" for k, n in sorted(summary.counts.items()))
    click.echo(
        f"Recorded {len(summary.items)} items ({counts}); {summary.bytes} bytes,"
        f" {summary.new_objects} new store objects, {summary.deduplicated} already stored."
    )
    for it in summary.items:
        sha = (it["sha256"] or "")[:16]
        click.echo(f"  {it['id']:<9} {it['outcome']:<10} {sha:<16} {it['path']}")


# -- list / show / log --------------------------------------------------------------


def _item_json(ledger: Ledger, row: dict[str, Any]) -> dict[str, Any]:
    ev = next(
        iter(ledger.conn.execute("SELECT body FROM events WHERE seq = ?", (row["event_seq"],)))
    )
    data = json.loads(ev[0])["data"]
    return {
        "id": row["id"],
        "outcome": row["outcome"],
        "kind": row["kind"],
        "path": row["display_path"],
        "path_hex": row["path_hex"],
        "size": row["size"],
        "sha256": row["sha256"],
        "digests": data.get("digests", {}),
        "mime": row["mime"],
        "magic": data.get("magic"),
        "store": data.get("store"),
        "event_seq": row["event_seq"],
        "collected": json.loads(ev[0])["time"],
        "host": data.get("host"),
        "reason": data.get("reason"),
    }


@cli.command("list")
@case_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of items.")
def list_cmd(case_dir: Path | None, as_json: bool) -> None:
    """Items recorded in the case."""
    with open_case(case_dir) as ledger:
        rows = ledger.artifacts()
        if as_json:
            echo_json([_item_json(ledger, r) for r in rows])
            return
        print_table(
            ["ITEM", "OUTCOME", "SIZE", "SHA256", "MIME", "PATH"],
            [
                [
                    r["id"],
                    r["outcome"],
                    "" if r["size"] is None else str(r["size"]),
                    (r["sha256"] or "")[:16],
                    r["mime"] or "",
                    r["display_path"],
                ]
                for r in rows
            ],
        )


def _event_json(ev: Any, identities: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ident = identities.get(ev.signer, {})
    pub = ident.get("public_key")
    return {
        "seq": ev.seq,
        "type": ev.type,
        "time": ev.time,
        "item": ev.item,
        "hash": ev.hash,
        "prev": ev.prev,
        "body": ev.body,
        "signature": ev.signature,
        "signer": ev.signer,
        "signer_name": ident.get("name"),
        "signer_role": ident.get("role"),
        "signer_public_key": pub,
        "signer_public_key_pem": pem_or_none(pub),
    }


def _event_summary(ev: Any) -> str:
    d = ev.data
    if ev.type == "collect":
        return f"{d.get('outcome')} {d.get('path', {}).get('display')}"
    if ev.type == "identity":
        return f"{d.get('registration')} {d.get('name')} ({d.get('role')})"
    if ev.type == "collection.start":
        return f"run {str(d.get('run'))[:8]} reason: {d.get('reason')!r}"
    if ev.type == "import":
        return f"bundle of case {d.get('source_case')}: {len(d.get('items', []))} items"
    if ev.type == "collection.end":
        return f"run {str(d.get('run'))[:8]} {d.get('status')}"
    return str(d.get("reason", ""))


@cli.command()
@click.argument("item", required=False)
@case_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON array of events with body, hash, prev, signature and signer key.",
)
def log(item: str | None, case_dir: Path | None, as_json: bool) -> None:
    """The custody events, oldest first (optionally only those of ITEM)."""
    with open_case(case_dir) as ledger:
        if item is not None:
            item = ledger.artifact(item)["id"]
        idents = ledger.identities()
        events = list(ledger.events(item))
        all_runs = runs(ledger)
        status = {r.run: r.status for r in all_runs}
        unfinished = {r.run for r in unfinished_runs(ledger, all_runs)}
        if as_json:
            out = [_event_json(ev, idents) for ev in events]
            for e, ev in zip(out, events, strict=True):
                if ev.type == RUN_START_EVENT:
                    run = str(ev.data.get("run"))
                    e["run_status"] = (
                        "unfinished" if run in unfinished else status.get(run) or "running"
                    )
            echo_json(out)
            return
        print_table(
            ["SEQ", "TIME (UTC)", "TYPE", "ITEM", "BY", "WHAT"],
            [
                [
                    str(ev.seq),
                    ev.time[:23] + "Z",
                    ev.type,
                    ev.item or "",
                    idents.get(ev.signer, {}).get("name", short_fingerprint(ev.signer)),
                    _event_summary(ev),
                ]
                for ev in events
            ],
        )
        for r in all_runs:
            if r.run in unfinished:
                click.echo(
                    f"UNFINISHED: collection {r.run} (event {r.seq}, {r.time[:19]}Z) never"
                    " ended: it was interrupted. Finish it with 'custody collect --resume'."
                )


@cli.command()
@click.argument("item")
@case_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def show(item: str, case_dir: Path | None, as_json: bool) -> None:
    """One item: what it is, its digests, its current custodian and state, every
    hand-over in the form of a paper chain-of-custody record, and its timeline."""
    with open_case(case_dir) as ledger:
        row = ledger.artifact(item)
        info = _item_json(ledger, row)
        idents = ledger.identities()
        events = [_event_json(ev, idents) for ev in ledger.events(row["id"])]
        for e in events:
            e["signature_verified"] = signature_ok(e)
        custody = timeline(ledger, row["id"])
        for h in custody["handovers"]:
            by_seq = {e["seq"]: e for e in events}
            h["release_signature_verified"] = by_seq[h["release_event"]]["signature_verified"]
            rec = by_seq.get(h["receipt_event"]) if h["receipt_event"] is not None else None
            h["receipt_signature_verified"] = rec["signature_verified"] if rec else None
    if as_json:
        echo_json({**info, **custody, "events": events})
        return
    fields = (
        "id",
        "outcome",
        "kind",
        "path",
        "size",
        "mime",
        "magic",
        "collected",
        "host",
        "reason",
        "store",
    )
    for k in fields:
        click.echo(f"{k.capitalize() + ':':<11}{info[k] if info[k] is not None else ''}")
    for alg, dig in info["digests"].items():
        click.echo(f"{alg + ':':<11}{dig}")
    click.echo(f"{'State:':<11}{custody['state']}")
    click.echo(f"{'Custodian:':<11}{custody['custodian']}")
    for h in custody["handovers"]:
        ok = {True: "signature verified", False: "SIGNATURE INVALID", None: "not yet signed"}
        click.echo(f"Hand-over {h['transfer']} ({h['status']}):")
        click.echo(
            f"  Released by: {h['released_by']}  {h['released'][:10]}"
            f" {h['released'][11:19]} UTC  [{ok[h['release_signature_verified']]}]"
        )
        if h["received"]:
            click.echo(
                f"  Received by: {h['received_by']}  {h['received'][:10]}"
                f" {h['received'][11:19]} UTC  [{ok[h['receipt_signature_verified']]}]"
            )
        else:
            click.echo(f"  Received by: (in transit to {h['to']})")
        click.echo(f"  Reason:      {h['reason']}")
        if h["location"]:
            click.echo(f"  Location:    {h['location']}")
        if h["mismatch"]:
            click.echo("  MISMATCH:    the item did not match its digests on receipt")
    click.echo("Timeline:")
    for e in events:
        mark = "" if e["signature_verified"] else "  [SIGNATURE INVALID]"
        click.echo(
            f"  {e['time']}  {e['type']:<16} by {e['signer_name']} ({e['signer_role']}){mark}"
        )


def signature_ok(e: dict[str, Any]) -> bool:
    """Does this event's signature verify with its signer's recorded key?"""
    try:
        pub = base64.b64decode(e["signer_public_key"] or "", validate=True)
        sig = base64.b64decode(e["signature"], validate=True)
    except ValueError:
        return False
    return verify_signature(pub, sig, e["body"].encode("utf-8"))


# -- verify ---------------------------------------------------------------------


@cli.command()
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
@tsa_cert_option
@case_option
def verify(
    quick: bool,
    as_json: bool,
    quiet: bool,
    checkpoints: tuple[Path, ...],
    tsa_certs: tuple[Path, ...],
    case_dir: Path | None,
) -> None:
    """Re-hash the store, recompute every event hash and the chain, check every
    signature; report every problem found.  Exit 0 if all is well, 1 if not."""
    with open_case(case_dir) as ledger:
        show = show_progress(quiet) and not quick
        with progress_bar(store_bytes(ledger) if show else 0, show, "verify") as cb:
            report = verify_ledger(
                ledger,
                quick=quick,
                progress=cb,
                checkpoints=checkpoints,
                tsa_roots=read_tsa_roots(tsa_certs),
            )
    if as_json:
        echo_json(report.as_json())
    else:
        _print_report(report)
    sys.exit(0 if report.ok else 1)


def _print_report(report: Any) -> None:
    what = "ledger (store not re-hashed)" if report.quick else "ledger and store"
    click.echo(
        f"Case {report.case_id}: {report.events} events, {report.artifacts} items,"
        f" {report.objects_checked} store objects re-hashed ({report.bytes_checked} bytes),"
        f" {report.checkpoints} checkpoints checked."
    )
    for n in report.notes:
        click.echo(f"Note: {n}")
    if report.ok:
        click.echo(f"OK: {what} verified, no problems found. Head {report.head}")
        return
    click.echo(f"FAILED: {len(report.findings)} problem(s) found:")
    for f in report.findings:
        click.echo(f"  [{f.kind}] {f.subject}: {f.detail}")


# -- demo -----------------------------------------------------------------------


@cli.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
def demo(directory: Path | None) -> None:
    """Run the whole collector's story on built-in sample evidence, under DIRECTORY
    (default: a new temporary directory)."""
    from custody.render import render
    from custody.report import case_report, document_digest
    from custody.selftest import record_selftest, run_selftest

    root = (directory or Path(tempfile.mkdtemp(prefix="custody-demo-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    case_dir = root / "case-DEMO-001"
    key_file = root / "demo-collector.pem"
    if (case_dir / "custody.db").exists() or key_file.exists():
        raise UsageError(f"{root} already holds a demo; give an empty or new directory")
    click.echo(f"custody {__version__} demo in {root}")
    click.echo("1. Sample evidence: a breached payroll server's files")
    paths = make_sample_evidence(root / "evidence")
    click.echo("2. custody key new --name 'Demo Collector' --role collector")
    signer, _pub = generate_key("Demo Collector", "collector", DEMO_PASSPHRASE.encode(), key_file)
    click.echo(
        f"   key {key_file} (passphrase: {DEMO_PASSPHRASE!r}), fingerprint {signer.fingerprint}"
    )
    click.echo("3. custody init --case-id DEMO-001")
    with Ledger.create(case_dir, "DEMO-001", "Demo: payroll server breach") as ledger:
        click.echo(f"   case in {case_dir}")
        click.echo("4. custody collect ... --reason 'suspected credential theft'")
        summary = run_collect(
            ledger,
            signer,
            [str(p) for p in paths],
            reason="suspected credential theft",
            algorithms=parse_algorithms(None),
            selftest=False,  # run as step 11, after the story the docs number
        )
        counts = ", ".join(f"{n} {k}" for k, n in sorted(summary.counts.items()))
        click.echo(f"   {len(summary.items)} items recorded ({counts})")
        click.echo("5. custody list")
        rows = ledger.artifacts()
        print_table(
            ["ITEM", "OUTCOME", "SHA256", "MIME", "PATH"],
            [
                [
                    r["id"],
                    r["outcome"],
                    (r["sha256"] or "")[:16],
                    r["mime"] or "",
                    os.path.relpath(r["display_path"], root),
                ]
                for r in rows
            ],
        )
        click.echo("6. custody checkpoint --out checkpoint-1.txt   (give it to counsel)")
        cp1_text, _ = make_checkpoint(ledger, signer)
        cp1 = root / "checkpoint-1.txt"
        cp1.write_text(cp1_text)
        counsel_file = root / "demo-counsel.pem"
        counsel, _ = generate_key("Demo Counsel", "counsel", DEMO_PASSPHRASE.encode(), counsel_file)
        ledger.register_identity(signer, counsel.identity)
        first = rows[0]["id"]
        click.echo(f"7. custody transfer {first} --to 'Demo Counsel'; custody receive (counsel)")
        t = transfer(
            ledger, signer, [first], "Demo Counsel", "hand-over to outside counsel", "incident room"
        )
        rec = receive(ledger, counsel, transfer_id(t.seq), "counsel's office")
        ok = all(c["match"] for c in rec.data["items"].values())
        click.echo(
            f"   {transfer_id(t.seq)}: released by Demo Collector, received by Demo"
            f" Counsel, digests {'match' if ok else 'DO NOT MATCH'}"
        )
        lifecycle_event(ledger, counsel, "seal", [first], "sealed in evidence bag 0042")
        click.echo(f"8. custody event seal {first}; custody checkpoint --out checkpoint-2.txt")
        cp2_text, _ = make_checkpoint(ledger, counsel)
        cp2 = root / "checkpoint-2.txt"
        cp2.write_text(cp2_text)
        old, new = load_for_ledger(ledger, cp1), load_for_ledger(ledger, cp2)
        proof = prove_consistency(ledger, old, new)
        click.echo(
            f"9. custody prove consistency: the ledger at size {new.size} extends the one"
            f" at size {old.size} ({len(proof['proof'])} hashes, verified)"
        )
        click.echo("10. custody verify --checkpoint checkpoint-1.txt")
        report = verify_ledger(ledger, checkpoints=[cp1])
        _print_report(report)
        click.echo("11. custody selftest   (known answers of every algorithm, recorded)")
        st = run_selftest()
        st_event = record_selftest(ledger, signer, st)
        click.echo(
            f"   {len(st.checks) - len(st.failed)}/{len(st.checks)} checks passed,"
            f" recorded as event {st_event.seq if st_event else '-'}"
        )
        if not st.ok:
            sys.exit(1)
        report = verify_ledger(ledger, checkpoints=[cp1])
        click.echo("12. custody report --format html --out report.html   (for the auditor)")
        html = render(case_report(ledger, verify=report), "html")
        (root / "report.html").write_bytes(html)
        click.echo(f"   {root / 'report.html'}  SHA-256 {document_digest(html)}")
    click.echo("")
    click.echo("Try it yourself:")
    click.echo(
        f"  export CUSTODY_CASE={case_dir} CUSTODY_KEY={key_file}"
        f" CUSTODY_PASSPHRASE={DEMO_PASSPHRASE}"
    )
    click.echo("  custody log; custody show ITEM-1; custody verify --json")
    click.echo(f"  custody prove inclusion ITEM-1 --checkpoint {root / 'checkpoint-2.txt'}")
    if not report.ok:
        sys.exit(1)


cli.add_command(transfer_cmd)
cli.add_command(receive_cmd)
cli.add_command(event_cmd)
cli.add_command(checkpoint_cmd)
cli.add_command(prove)
cli.add_command(bundle)
cli.add_command(report_cmd)
cli.add_command(selftest_cmd)
key.add_command(key_rotate)
key.add_command(key_revoke)


def vkey_or_none(row: dict[str, Any]) -> str | None:
    try:
        raw = base64.b64decode(row["public_key"], validate=True)
        return vkey_of(Identity(name=row["name"], role=row["role"], public_raw=raw))
    except ValueError:
        return None


def load_public_key_or_vkey(arg: str) -> bytes:
    p = Path(arg)
    if p.exists() or "+" not in arg:
        return load_public_key(p)
    try:
        return note.parse_verifier_key(arg).public_raw
    except note.NoteError as e:
        raise UsageError(f"{arg!r} is neither a public key file nor a verifier key: {e}") from e


def main() -> None:
    cli(prog_name="custody")


if __name__ == "__main__":
    main()
