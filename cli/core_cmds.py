"""The commands that were defined in cli/main.py before it became a lazy group:
init, key (new, use, list, import; rotate and revoke from custody_cmds),
collect, list, log, show, verify, demo.  Loaded on first use (cli/main.py)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from custody import note
from custody.checkpoint import vkey_of
from custody.collect import (
    RUN_START_EVENT,
    CollectSummary,
    WalkRules,
    check_paths,
    check_reason,
    estimate,
    unfinished_runs,
)
from custody.collect import collect as run_collect
from custody.collect import resume as resume_collection
from custody.config import default_key, has_usable_default, remember_default_key, resolve_key_path
from custody.display import path_text, shown, shown_path
from custody.errors import CustodyError, KeyLoadError, UsageError
from custody.hashing import parse_algorithms
from custody.keys import (
    Identity,
    Signer,
    generate_key,
    load_public_key,
    load_signer,
    public_key_b64,
)
from custody.ledger import Event, Ledger
from custody.render.signers import STANDING_WORDS, attester_text, short_fp
from custody.runs import RUNNING, run_statuses
from custody.verified import record_note
from custody.verify import VerifyReport, store_bytes, verify_ledger
from custody.views import (
    KeyBook,
    KeyCard,
    case_item_view,
    case_items,
    case_keybook,
    item_log,
    metadata_lines,
    show_verdict,
    verification_lines,
)
from custody_cli import profile_cmds
from custody_cli.capture_cmds import capture_lines
from custody_cli.common import (
    LINE,
    LOOKUP,
    NAME_LINE,
    TEXT,
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
    key_revoke,
    key_rotate,
)


@click.command()
@click.argument(
    "directory", required=False, type=click.Path(file_okay=False, path_type=Path), default=Path(".")
)
@click.option("--case-id", required=True, type=NAME_LINE, help="Case identifier, e.g. 2026-017.")
@click.option("--title", required=True, type=LINE, help="Case title.")
@click.option(
    "--recovery-key",
    "recovery_key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Public key (PEM) of a recovery key, kept offline: it may only revoke or"
    " replace the owner's key.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@key_options
def init(
    directory: Path,
    case_id: str,
    title: str,
    recovery_key: Path | None,
    as_json: bool,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Create a case: DIRECTORY/custody.db and DIRECTORY/store/.  Its first record,
    signed by your key (--key, else $CUSTODY_KEY, else the key made by 'custody key
    new'), makes that key the case's owner: the only key that vouches for others
    ('custody key import'), withdraws any key, and reassigns the items of a
    withdrawn one."""
    if resolve_key_path(key_path) is None:
        raise KeyLoadError(
            "a case is made with its owner's key: run 'custody key new' first, or give --key FILE"
        )
    recovery = None
    if recovery_key is not None:
        recovery = Identity(
            name="recovery", role="recovery", public_raw=load_public_key(recovery_key)
        )
    owner = load_key(key_path, passphrase_file, insecure_key)
    if recovery is not None and recovery.fingerprint == owner.fingerprint:
        raise UsageError("the recovery key must not be the owner's own key")
    with Ledger.create(directory, case_id, title, owner=owner, recovery=recovery) as ledger:
        case = ledger.case
        book = case_keybook(ledger)
        owner_card = book.card(owner.fingerprint)
        if as_json:
            echo_json(
                {
                    "case": case.case_id,
                    "title": case.title,
                    "directory": str(directory),
                    "created": case.created,
                    "header_hash": case.hash,
                    "rules": case.rules,
                    "owner": owner.fingerprint,
                    "owner_name": owner_card.name,
                    "owner_role": owner_card.role,
                    "recovery": recovery.fingerprint if recovery is not None else None,
                }
            )
        else:
            click.echo(
                f'Created case {shown(case.case_id)} "{shown(case.title)}" in {shown(directory)}'
            )
            click.echo(f"Owner: {shown(owner_card.text())}")
            if recovery is not None:
                click.echo(f"Recovery key: {shown(book.card(recovery.fingerprint).text())}")


# -- keys -----------------------------------------------------------------------


@click.group()
def key() -> None:
    """Signing identities (Ed25519 keys)."""


@key.command("new")
@click.option("--name", required=True, type=NAME_LINE, help="The key holder's full name.")
@click.option(
    "--role", required=True, type=NAME_LINE, help="Role, e.g. collector, examiner, counsel."
)
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
    "--default",
    "make_default",
    is_flag=True,
    help="Make this key the default signing key even if there is one already.",
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
    make_default: bool,
    no_default: bool,
    as_json: bool,
) -> None:
    """Create an Ed25519 key, encrypted PKCS#8 PEM (0600), and its .pub beside it.
    It becomes the default signing key only if there is none yet (or with
    --default): a key made for someone else never replaces yours.  Switch the
    default with 'custody key use FILE'."""
    if make_default and no_default:
        raise UsageError("--default and --no-default contradict each other")
    if out is None:
        slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "key"
        out = Path(f"{slug}.pem")
    passphrase = read_passphrase(passphrase_file, confirm=True)
    signer, pub = generate_key(name, role, passphrase, out)
    became_default = make_default or (not no_default and not has_usable_default())
    if became_default:
        remember_default_key(out)
    ident = signer.identity
    current = default_key()
    if as_json:
        echo_json(
            {
                "name": ident.name,
                "role": ident.role,
                "fingerprint": ident.fingerprint,
                "public_key": ident.public_b64,
                "private_key_file": str(out),
                "public_key_file": str(pub),
                "default": became_default,
                "default_key_file": str(current) if current is not None else None,
            }
        )
    else:
        click.echo(
            f"Key for {shown(ident.name)} ({shown(ident.role)}) written to {shown(out)}"
            f" (public key: {shown(pub)})"
        )
        click.echo(f"Fingerprint: {ident.fingerprint}")
        if became_default:
            click.echo("This is now your default signing key.")
        elif current is not None:
            click.echo(
                f"Your default signing key is still {shown(current)}"
                f" (switch with 'custody key use {shown(out)}')."
            )


@key.command("use")
@click.argument("keyfile", type=click.Path(path_type=Path))
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the key passphrase from this file (else $CUSTODY_PASSPHRASE, else a prompt).",
)
@click.option(
    "--insecure-key",
    is_flag=True,
    help="Accept an unencrypted or group/world-readable private key.",
)
def key_use(keyfile: Path, passphrase_file: Path | None, insecure_key: bool) -> None:
    """Make KEYFILE the default signing key (used when neither --key nor
    $CUSTODY_KEY is given).  The key is opened first, with its passphrase, so a
    file that is not your private key is refused and the default stays as it was."""
    signer = load_signer(keyfile, read_passphrase(passphrase_file), insecure=insecure_key)
    remember_default_key(keyfile)
    ident = signer.identity
    click.echo(
        f"Default signing key is now {shown(keyfile)}: {shown(ident.name)}"
        f" ({shown(ident.role)}), {ident.fingerprint}"
    )


@key.command("list")
@case_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def key_list(case_dir: Path | None, as_json: bool) -> None:
    """Every key the case knows, from its signed records: holder, role, standing
    (owner, recovery, delegate, attested, or SELF-ASSERTED: nobody vouched for
    it), who attested it, and whether it is active, revoked or replaced."""
    with open_case(case_dir, write=False) as ledger:
        book = case_keybook(ledger)
        cards = [book.card(fp) for fp in book.fingerprints()]
        if as_json:
            echo_json([_key_json(book, c) for c in cards])
            return
        print_table(
            [
                "FINGERPRINT",
                "NAME",
                "ROLE",
                "STANDING",
                "ATTESTED BY",
                "STATUS",
                "SINCE EVENT",
                "VERIFIER KEY",
            ],
            [
                [
                    short_fp(c.fingerprint),
                    c.name or "",
                    c.role or "",
                    STANDING_WORDS.get(c.standing, c.standing),
                    attester_text(c.as_json()) or "-",
                    _key_status_text(c),
                    str(book.since.get(c.fingerprint, "")),
                    _vkey(book, c) or "",
                ]
                for c in cards
            ],
        )


def _key_status_text(card: KeyCard) -> str:
    if card.status == "revoked":
        return f"revoked at event {card.revoked_at}"
    if card.status == "rotated":
        return f"rotated to {short_fp(card.rotated_to)}"
    return "active"


def _vkey(book: KeyBook, card: KeyCard) -> str | None:
    raw = book.r.keys.get(card.fingerprint)
    if raw is None:
        return None
    try:
        return vkey_of(Identity(name=card.name or "", role=card.role or "", public_raw=raw))
    except ValueError:
        return None


def _key_json(book: KeyBook, card: KeyCard) -> dict[str, Any]:
    """One key as ``key list --json`` prints it."""
    raw = book.r.keys.get(card.fingerprint)
    b64 = public_key_b64(raw) if raw is not None else None
    return {
        "fingerprint": card.fingerprint,
        "name": card.name,
        "role": card.role,
        "public_key": b64,
        "event_seq": book.since.get(card.fingerprint),
        "public_key_pem": pem_or_none(b64),
        "vkey": _vkey(book, card),
        "standing": card.standing,
        "attested_by": card.attested_by,
        "attested_by_name": card.attested_by_name,
        "delegate": card.standing == "delegate",
        "active": card.status == "active",
        "status": card.status,
        "revoked_at": card.revoked_at,
        "rotated_to": card.rotated_to,
    }


@key.command("import")
@click.argument("pubfile", metavar="PUBFILE|VKEY")
@click.option("--name", required=True, type=NAME_LINE, help="The key holder's full name.")
@click.option("--role", required=True, type=NAME_LINE, help="The key holder's role.")
@click.option(
    "--delegate",
    is_flag=True,
    help="Let this key attest others in turn (only the case's owner may delegate).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@case_option
@key_options
def key_import(
    pubfile: str,
    name: str,
    role: str,
    delegate: bool,
    as_json: bool,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Vouch for another person's public key: record it in the ledger under NAME
    and ROLE, attested by your signature.  Only the case's owner, and the
    delegates the owner named, may attest keys; a name belongs to one active key.
    PUBFILE|VKEY is a PEM SubjectPublicKeyInfo file (what 'openssl pkey -pubout'
    writes) or a verifier-key string as 'key list' prints."""
    raw = load_public_key_or_vkey(pubfile)
    other = Identity(name=name, role=role, public_raw=raw)
    with open_case(case_dir) as ledger:
        signer = load_key(key_path, passphrase_file, insecure_key)
        ev = ledger.register_identity(signer, other, delegate=delegate)
        book = case_keybook(ledger)
        card = book.card(other.fingerprint)
    if as_json:
        echo_json({"event": ev.seq if ev is not None else None, "key": card.as_json()})
    elif ev is None:
        click.echo(f"Already known: {shown(card.text())}")
    else:
        click.echo(f"Imported {shown(card.text())} as event {ev.seq}")


# -- collect --------------------------------------------------------------------


#: Up to this many items, collect lists each one; above it, only with --verbose.
LIST_ITEMS_UP_TO = 20


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option(
    "--reason",
    default=None,
    type=TEXT,
    help="Why these items are collected (required; asked for on a terminal).",
)
@click.option(
    "--exclude",
    "exclude",
    multiple=True,
    metavar="GLOB",
    type=LOOKUP,
    help="Leave out walked paths whose name, or path relative to the named directory,"
    " matches GLOB (repeatable; recorded as excluded, not descended into).",
)
@click.option(
    "--one-file-system",
    is_flag=True,
    help="Do not cross into other file systems (mount points are recorded as excluded).",
)
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
    type=LOOKUP,
    help="Digests to compute: any of md5, sha1, sha256, sha512, blake2b (sha256 always).",
)
@click.option(
    "--verbose",
    is_flag=True,
    help=f"List every item (default: only when there are at most {LIST_ITEMS_UP_TO}).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object.")
@click.option(
    "--jsonl",
    is_flag=True,
    help='Print one JSON object per item as it is recorded, then one {"summary": ...}.',
)
@click.option("--quiet", is_flag=True, help="No progress bar and no item lines.")
@click.option("--no-describe", is_flag=True, help="Do not type the stored objects afterwards.")
@profile_cmds.profile_options
@case_option
@key_options
def collect(
    paths: tuple[str, ...],
    reason: str | None,
    exclude: tuple[str, ...],
    one_file_system: bool,
    resume: bool,
    no_selftest: bool,
    hash_spec: str,
    verbose: bool,
    as_json: bool,
    jsonl: bool,
    quiet: bool,
    no_describe: bool,
    profile: str | None,
    root: str | None,
    tools: str | None,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Hash, copy into the read-only store, and record PATHS (files, directories,
    block devices or images named explicitly).  The case's own folder is never
    collected: met in a walk (or named), it is recorded as excluded.  The summary
    line comes last; 'custody list' shows every item.  Ctrl-C stops the run with
    what it recorded kept (exit 130): 'custody collect --resume' finishes it."""
    algorithms = parse_algorithms(hash_spec)
    if as_json and jsonl:
        raise UsageError("--json and --jsonl are alternatives: give one")
    if verbose and quiet:
        raise UsageError("--verbose and --quiet are alternatives: give one")
    plan = profile_cmds.plan(profile, root, paths, resume, tools)
    paths = plan.paths if plan else paths
    if resume:
        if paths:
            raise UsageError(
                "--resume takes no paths: it finishes the interrupted collection's own"
            )
        if reason is not None or exclude or one_file_system:
            raise UsageError(
                "--resume keeps the interrupted collection's reason, --exclude and"
                " --one-file-system: give none of them"
            )
    else:
        check_paths(paths)  # bad paths are refused before anything is asked or written
        if reason is None:
            if not sys.stdin.isatty():
                raise UsageError("--reason is required: say why these items are collected")
            reason = click.prompt("Reason for this collection", err=True, default="")
        reason = check_reason(reason or "")
        WalkRules(exclude)  # a bad glob is refused before anything is asked
    on_item = None
    if jsonl:

        def on_item(item: dict[str, Any]) -> None:
            click.echo(json.dumps(item, ensure_ascii=False))

    with open_case(case_dir) as ledger:
        run = None
        if resume:
            pending = unfinished_runs(ledger)
            if not pending:
                raise UsageError("no interrupted collection to resume in this case")
            run = pending[-1]
            paths = tuple(os.fsdecode(bytes.fromhex(p["hex"])) for p in run.paths)
            exclude, one_file_system = tuple(run.exclude), run.one_file_system
        signer = load_key(key_path, passphrase_file, insecure_key)
        show = show_progress(quiet)
        rules = WalkRules(exclude, one_file_system, os.fsencode(os.path.abspath(ledger.case_dir)))
        hook = plan.hook if plan else profile_cmds.resume_hook(ledger, run) if run else None
        total = estimate(paths, rules)[0] if show and hook is None else 0
        with progress_bar(total, show, "collect") as cb:
            if run is not None:
                summary = resume_collection(
                    ledger,
                    signer,
                    run,
                    progress=cb,
                    selftest=not no_selftest,
                    on_item=on_item,
                    describe=not no_describe,
                    pre_walk=hook,
                )
            else:
                summary = run_collect(
                    ledger,
                    signer,
                    paths,
                    reason=reason or "",
                    algorithms=algorithms,
                    progress=cb,
                    selftest=not no_selftest,
                    exclude=exclude,
                    one_file_system=one_file_system,
                    on_item=on_item,
                    describe=not no_describe,
                    pre_walk=hook,
                )
    if as_json:
        echo_json(summary.as_json())
        return
    if jsonl:
        click.echo(json.dumps({"summary": summary.totals()}, ensure_ascii=False))
        return
    profile_cmds.report(hook)
    _collect_text(summary, verbose=verbose, quiet=quiet)


def _collect_text(summary: CollectSummary, *, verbose: bool, quiet: bool) -> None:
    """collect's report for people: notes, the items (a few, or all with
    --verbose), and the summary line last, where the terminal leaves it."""
    if summary.selftest is not None:
        click.echo(f"Self-test passed and recorded as event {summary.selftest}.")
    if summary.cleanup is not None:
        kept = summary.cleanup.data.get("kept") or []
        click.echo(
            f"Store tidied after an interrupted run: {summary.cleanup.data['temp_files']}"
            f" temporary file(s) removed; {len(kept)} complete object(s) no event names"
            f" KEPT as evidence (recorded as event {summary.cleanup.seq})."
        )
    if summary.resumed:
        click.echo(
            f"Resumed collection {summary.resumed}: {summary.skipped} path(s) already"
            " recorded were not collected again."
        )
    items = summary.items
    listed = verbose or (not quiet and len(items) <= LIST_ITEMS_UP_TO)
    if listed:
        for it in items:
            sha = (it["sha256"] or "")[:16]
            path = shown_path(it["path"], it.get("path_hex"))
            click.echo(f"  {shown(it['id']):<9} {shown(it['outcome']):<10} {sha:<16} {path}")
    elif not quiet:
        click.echo(
            f"  ({len(items)} items not listed: 'custody list' shows them,"
            " 'collect --verbose' lists them as they are recorded)"
        )
    for it in items:
        if (it.get("excluded_by") or {}).get("rule") == "case-folder":
            click.echo(
                f"Note: {shown_path(it['path'], it.get('path_hex'))} lies in this case's own"
                f" folder: not collected (recorded as {shown(it['id'])}, excluded)."
            )
    if summary.untyped is not None:
        click.echo(f"Note: stored objects were not typed: {shown(summary.untyped)}.")
    for p in summary.undescribed:
        click.echo(f"Note: {shown(p)}")
    counts = ", ".join(f"{n} {k}" for k, n in sorted(summary.counts.items()))
    click.echo(
        f"Recorded {len(items)} items ({counts}); {summary.bytes} bytes,"
        f" {summary.new_objects} new store objects, {summary.deduplicated} already stored."
    )


# -- list / show / log --------------------------------------------------------------


@click.command("list")
@case_option
@click.option(
    "--source",
    metavar="SOURCE",
    type=LOOKUP,
    help="Only the items of this source: a label (NC-001@3fa9c2), a source case id"
    " (every source of that case id), or '-' for the case's own items.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of items.")
def list_cmd(case_dir: Path | None, source: str | None, as_json: bool) -> None:
    """Items recorded in the case: its own, then those imported from bundles
    (SOURCE names the case each came from, by case id and case header hash)."""
    with open_case(case_dir, write=False) as ledger:
        items = case_items(ledger, source)
        if as_json:
            echo_json(items)
            return
        print_table(
            ["ITEM", "SOURCE", "OUTCOME", "SIZE", "SHA256", "MIME", "PATH"],
            [
                [
                    str(r["id"]),
                    str(r["source"] or "-"),
                    str(r["outcome"]),
                    "" if r["size"] is None else str(r["size"]),
                    str(r["sha256"] or "")[:16],
                    str(r["mime"] or ""),
                    path_text(r["path"], r.get("path_hex")),
                ]
                for r in items
            ],
        )


def _event_json(ev: Event, book: KeyBook) -> dict[str, Any]:
    """One event as ``log --json`` prints it; its signer as the custody replay of the
    signed events knows the key (never the derived identities table)."""
    card = book.card(ev.signer)
    raw = book.r.keys.get(ev.signer)
    pub = public_key_b64(raw) if raw is not None else None
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
        "signer_name": card.name,
        "signer_role": card.role,
        "signer_public_key": pub,
        "signer_public_key_pem": pem_or_none(pub),
        **card.signer_fields(),
    }


def _event_summary(ev: Event, labels: Mapping[str, str]) -> str:
    d = ev.data
    if ev.type == "collect":
        path = d.get("path") if isinstance(d.get("path"), dict) else {}
        assert isinstance(path, dict)
        return f"{d.get('outcome')} {path_text(path.get('display'), path.get('hex'))}"
    if ev.type == "identity":
        what = f"{d.get('registration')} {d.get('name')} ({d.get('role')})"
        fp = d.get("fingerprint")
        return f"{what} {short_fp(fp)}" + (" delegate" if d.get("delegate") is True else "")
    if ev.type == "case.open":
        owner = d.get("owner") if isinstance(d.get("owner"), dict) else {}
        assert isinstance(owner, dict)
        recovery = d.get("recovery") if isinstance(d.get("recovery"), dict) else None
        fp = short_fp(owner.get("fingerprint"))
        text = f"owner {owner.get('name')} ({owner.get('role')}) {fp}"
        if recovery is not None:
            text += f", recovery key {short_fp(recovery.get('fingerprint'))}"
        return text
    if ev.type in ("key.revoke", "reassign"):
        target = d.get("fingerprint") if ev.type == "key.revoke" else d.get("to")
        items = ", ".join(str(i) for i in d.get("items", []) if isinstance(i, str))
        head = f"{items} to " if items else ""
        return f"{head}{short_fp(target)} reason: '{d.get('reason')}'"
    if ev.type == "key.rotate":
        return f"{short_fp(d.get('old'))} -> {short_fp(d.get('new'))}"
    if ev.type == "collection.start":
        return f"run {str(d.get('run'))[:8]} reason: '{d.get('reason')}'"
    if ev.type == "import":
        header = d.get("source_header", d.get("bundle"))
        label = labels.get(header) if isinstance(header, str) else None
        listed = d.get("items")
        entries: list[Any] = listed if isinstance(listed, list) else []
        names = [str(i.get("source_item")) for i in entries if isinstance(i, dict)]
        if "import" in d and "source_case" not in d:  # one item's event of an import by item
            return f"{d.get('item')} ({d.get('import')})"
        if "import" in d:
            return f"{d.get('import')} from {label or d.get('source_case')}"
        return f"from {label or d.get('source_case')}: {len(names)} items ({', '.join(names)})"
    if ev.type == "collection.end":
        return f"run {str(d.get('run'))[:8]} {d.get('status')}"
    return str(d.get("reason", ""))


@click.command()
@click.argument("item", required=False, type=LOOKUP)
@case_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON array of events with body, hash, prev, signature and signer key.",
)
def log(item: str | None, case_dir: Path | None, as_json: bool) -> None:
    """The custody events, oldest first (optionally only those of ITEM; of an
    imported item, from the import that brought it into the case)."""
    with open_case(case_dir, write=False) as ledger:
        if item is not None:
            item, events = item_log(ledger, item)
        else:
            events = list(ledger.events())
        book = case_keybook(ledger)
        statuses = run_statuses(ledger)
        if as_json:
            out = [_event_json(ev, book) for ev in events]
            for e, ev in zip(out, events, strict=True):
                if ev.type == RUN_START_EVENT:
                    st = statuses.get(str(ev.data.get("run")))
                    e["run_status"] = st.status if st else RUNNING
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
                    book.card(ev.signer).text(),
                    _event_summary(ev, book.r.source_labels),
                ]
                for ev in events
            ],
        )
        for st in statuses.values():
            if st.unfinished:
                r = st.run
                click.echo(
                    f"UNFINISHED: collection {r.run} (event {r.seq}, {r.time[:19]}Z) never"
                    " ended: it was interrupted. Finish it with 'custody collect --resume'."
                )


@click.command()
@click.argument("item", type=LOOKUP)
@case_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def show(item: str, case_dir: Path | None, as_json: bool) -> None:
    """One item: what it is, its digests, its current custodian and state, every
    hand-over in the form of a paper chain-of-custody record, and its timeline.
    An imported item (NC-001@3fa9c2/ITEM-810) also shows its source and the
    source case's signed events about it, before the import.
    Each signature's status is the verdict of the signature step of a quick
    verification run now ('verify --quick': the store is not re-hashed).  If the
    item's events fail it, or the ledger's history does (case header, missing
    events, a checkpoint), the first line says so and the exit status is 1."""
    with open_case(case_dir, write=False) as ledger:
        report = verify_ledger(ledger, quick=True)
        view = case_item_view(ledger, item, verification=report)
    verdict = show_verdict(view, report)
    code = 0 if verdict.ok else 1
    if as_json:
        echo_json({**view.as_json(), "verification": verdict.as_json()})
        sys.exit(code)
    headline = verdict.headline()
    if headline is not None:
        click.echo(shown(headline))
        for f in (*verdict.findings, *verdict.history):
            click.echo(f"  [{f.kind}] {shown(f.subject)}: {shown(f.detail)}")
    info = view.as_json()
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
    info["path"] = path_text(info["path"], info.get("path_hex"))
    for k in fields:
        click.echo(f"{k.capitalize() + ':':<11}{shown(info[k])}")
    src = view.source
    if src is not None:
        click.echo(
            f"{'Source:':<11}{shown(src.label)} (case {shown(src.case_id)}, header"
            f" {shown(src.header)}), its {shown(src.source_item)}; imported at event"
            f" {src.import_seq} from bundle {shown(src.bundle[:23])}"
        )
    for alg, dig in info["digests"].items():
        click.echo(f"{shown(alg) + ':':<11}{shown(dig)}")
    for line in metadata_lines(info["metadata"]):
        click.echo(line)
    for line in capture_lines(info):
        click.echo(line)
    click.echo(f"{'State:':<11}{shown(view.state)}")
    custodian = view.custodian_key
    click.echo(f"{'Custodian:':<11}{shown(custodian.text() if custodian else '')}")
    ok = {True: "signature verified", False: "SIGNATURE INVALID", None: "not yet signed"}
    for h in view.handovers:
        released_by = h.released_by_key.text() if h.released_by_key else h.released_by
        click.echo(f"Hand-over {shown(h.transfer)} ({shown(h.status)}):")
        click.echo(
            f"  Released by: {shown(released_by)}  {shown(h.released[:10])}"
            f" {shown(h.released[11:19])} UTC  [{ok[h.release_signature_verified]}]"
        )
        if h.received:
            received_by = h.received_by_key.text() if h.received_by_key else h.received_by
            click.echo(
                f"  Received by: {shown(received_by)}  {shown(h.received[:10])}"
                f" {shown(h.received[11:19])} UTC  [{ok[h.receipt_signature_verified]}]"
            )
        else:
            to = h.to_key.text() if h.to_key else h.to
            click.echo(f"  Received by: (in transit to {shown(to)})")
        click.echo(f"  Reason:      {shown(h.reason)}")
        if h.location:
            click.echo(f"  Location:    {shown(h.location)}")
        if h.receipt_location:
            click.echo(f"  Received at: {shown(h.receipt_location)}")
        if h.mismatch:
            click.echo("  MISMATCH:    the item did not match its digests on receipt")
    if src is not None:
        click.echo(f"Source chain (the source's signed events, case {shown(src.case_id)}):")
        for e in src.events:
            mark = "" if e.signature_verified else "  [SIGNATURE INVALID]"
            by = shown(src.signer_text(e.signer))
            click.echo(
                f"  {shown(e.time)}  {shown(e.type):<16} by {by}{mark}  (source event {e.seq})"
            )
    click.echo("Timeline:")
    for e in view.events:
        mark = "" if e.signature_verified else "  [SIGNATURE INVALID]"
        by = shown(view.book.card(e.signer).text())
        click.echo(f"  {shown(e.time)}  {shown(e.type):<16} by {by}{mark}")
    sys.exit(code)


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


# -- demo -----------------------------------------------------------------------


@click.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
def demo(directory: Path | None) -> None:
    """Run the whole collector's story on built-in sample evidence, under DIRECTORY
    (default: a new temporary directory)."""
    from custody.demo import run_demo

    result = run_demo(directory, click.echo)
    sys.exit(0 if result.ok else 1)


key.add_command(key_rotate)
key.add_command(key_revoke)


def load_public_key_or_vkey(arg: str) -> bytes:
    p = Path(arg)
    if p.exists() or "+" not in arg:
        return load_public_key(p)
    try:
        return note.parse_verifier_key(arg).public_raw
    except note.NoteError as e:
        raise UsageError(f"'{arg}' is neither a public key file nor a verifier key: {e}") from e
