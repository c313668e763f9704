"""The commands that were defined in cli/main.py before it became a lazy group:
init, key (new, use, list, import; rotate and revoke from custody_cmds),
list, log, show, demo (collect and verify live in cli/collect_cmds.py and
cli/verify_cmds.py).  Loaded on first use (cli/main.py)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from custody import note
from custody.checkpoint import vkey_of
from custody.collect import (
    RUN_START_EVENT,
)
from custody.config import default_key, has_usable_default, remember_default_key, resolve_key_path
from custody.display import path_text, shown
from custody.errors import KeyLoadError, UsageError
from custody.keys import (
    Identity,
    generate_key,
    load_public_key,
    load_signer,
    public_key_b64,
)
from custody.ledger import Event, Ledger
from custody.render.signers import STANDING_WORDS, attester_text, short_fp
from custody.runs import RUNNING, run_statuses
from custody.verify import verify_ledger
from custody.views import (
    KeyBook,
    KeyCard,
    case_item_view,
    case_items,
    case_keybook,
    item_log,
    metadata_lines,
    show_verdict,
)
from custody_cli.capture_cmds import capture_lines
from custody_cli.common import (
    LINE,
    LOOKUP,
    NAME_LINE,
    case_option,
    echo_json,
    key_options,
    load_key,
    open_case,
    pem_or_none,
    print_table,
    read_passphrase,
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
