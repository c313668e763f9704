"""Custody lifecycle commands: hand-overs, lifecycle events, checkpoints, proofs,
key rotation and revocation."""

from __future__ import annotations

from pathlib import Path

import click

from custody.checkpoint import (
    load_for_ledger,
    make_checkpoint,
    prove_consistency,
    prove_inclusion,
    timestamp_checkpoint,
)
from custody.display import shown
from custody.errors import UsageError
from custody.ledger import Event, Ledger
from custody.lifecycle import LIFECYCLE_EVENTS, transfer_id
from custody.safeio import check_output, write_atomic
from custody.views import case_keybook, item_log
from custody.writers import (
    lifecycle_event,
    reassign,
    receive_events,
    replace_owner,
    revoke_key,
    rotate_key,
    transfer_events,
)
from custody_cli.common import (
    LINE,
    LOOKUP,
    TEXT,
    case_option,
    echo_json,
    key_options,
    load_key,
    open_case,
)

location_option = click.option("--location", default="", type=LINE, help="Where this happens.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.command("transfer")
@click.argument("items", nargs=-1, required=True, type=LOOKUP)
@click.option(
    "--to",
    "to",
    required=True,
    type=LOOKUP,
    help="Receiver: an attested key's name or fingerprint.",
)
@click.option("--reason", required=True, type=TEXT, help="Why the items change hands.")
@location_option
@json_option
@case_option
@key_options
def transfer_cmd(
    items: tuple[str, ...],
    to: str,
    reason: str,
    location: str,
    as_json: bool,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Release ITEMS to another custodian (signed by you, the current custodian).
    The items are in transit until the receiver runs 'custody receive'."""
    with open_case(case_dir) as ledger:
        signer = load_key(key_path, passphrase_file, insecure_key)
        evs = transfer_events(ledger, signer, list(items), to, reason, location)
        ev = evs[0]  # the hand-over's id is its first transfer's
        receiver = case_keybook(ledger).card(ev.data["to"])
        out = {
            "id": transfer_id(ev.seq),
            "event": ev.seq,
            "hash": ev.hash,
            "events": [
                {"id": transfer_id(e.seq), "hash": e.hash, "item": e.data["items"][0]} for e in evs
            ],
            "items": [i for e in evs for i in e.data["items"]],
            "to": ev.data["to"],
            "to_name": ev.data["to_name"],
            "to_key": receiver.as_json(),
        }
    if as_json:
        echo_json(out)
    else:
        click.echo(
            f"{shown(out['id'])}: {shown(', '.join(out['items']))}"
            f" released to {shown(receiver.text())}"
            f" (in transit until received)"
        )


@click.command("receive")
@click.argument("transfer_id", type=LOOKUP)
@location_option
@click.option("--note", default="", type=TEXT, help="A remark for the receipt.")
@json_option
@case_option
@key_options
def receive_cmd(
    transfer_id: str,
    location: str,
    note: str,
    as_json: bool,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Receive a transfer addressed to you: every item is re-hashed and the receipt,
    with any mismatch, is signed by you.  Exit 1 if an item does not match."""
    with open_case(case_dir) as ledger:
        signer = load_key(key_path, passphrase_file, insecure_key)
        evs = receive_events(ledger, signer, transfer_id, location, note)
    ev = evs[0]
    checks = {i: c for e in evs for i, c in e.data["items"].items()}
    bad = sorted(i for i, c in checks.items() if not c["match"])
    if as_json:
        echo_json(
            {
                "transfer": ev.data.get("handover", ev.data["transfer_id"]),
                "event": ev.seq,
                "hash": ev.hash,
                "events": [
                    {"event": e.seq, "hash": e.hash, "transfer": e.data["transfer_id"]} for e in evs
                ],
                "items": checks,
                "ok": not bad,
            }
        )
    else:
        seqs = ", ".join(str(e.seq) for e in evs)
        click.echo(
            f"Received {shown(ev.data.get('handover', ev.data['transfer_id']))}"
            f" as event{'s' if len(evs) > 1 else ''} {seqs}:"
        )
        for item, c in sorted(checks.items()):
            click.echo(f"  {shown(item)}: {'digests match' if c['match'] else 'MISMATCH'}")
    if bad:
        click.echo(
            f"custody: integrity problem: {shown(', '.join(bad))} did not match on receipt"
            " (recorded in the receipt)",
            err=True,
        )
        raise SystemExit(1)


@click.command("event")
@click.argument("action", type=click.Choice(LIFECYCLE_EVENTS))
@click.argument("items", nargs=-1, required=True, type=LOOKUP)
@click.option("--reason", required=True, type=TEXT, help="Why (recorded and signed).")
@location_option
@click.option("--purge", is_flag=True, help="dispose only: also delete the stored bytes.")
@click.option("--yes", is_flag=True, help="Confirm --purge without a prompt.")
@json_option
@case_option
@key_options
def event_cmd(
    action: str,
    items: tuple[str, ...],
    reason: str,
    location: str,
    purge: bool,
    yes: bool,
    as_json: bool,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Record a lifecycle event (access, analysis, note, seal, release, dispose) on
    ITEMS.  dispose keeps the stored bytes unless --purge is given and confirmed;
    the record stays forever."""
    if purge and action != "dispose":
        raise UsageError("--purge only applies to 'dispose'")
    if purge and not yes:
        click.confirm(
            f"Permanently delete the stored bytes of {shown(', '.join(items))}?",
            abort=True,
            err=True,
        )
    with open_case(case_dir) as ledger:
        signer = load_key(key_path, passphrase_file, insecure_key)
        ev = lifecycle_event(ledger, signer, action, list(items), reason, location, purge)
    if as_json:
        echo_json({"event": ev.seq, "hash": ev.hash, "type": ev.type, "items": ev.data["items"]})
    else:
        listed = shown(", ".join(ev.data["items"]))
        click.echo(f"Recorded {shown(action)} of {listed} as event {ev.seq}")


@click.command("checkpoint")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the signed checkpoint to this file.",
)
@click.option(
    "--tsa",
    "tsa_url",
    metavar="URL",
    type=LINE,
    help="Also get an RFC 3161 time-stamp token over it from this authority.",
)
@json_option
@case_option
@key_options
def checkpoint_cmd(
    out: Path | None,
    tsa_url: str | None,
    as_json: bool,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Sign a checkpoint (C2SP tlog-checkpoint in a signed note) of the ledger as it
    is now, record it, and print it.  With --tsa, a trusted time-stamp over it is
    recorded too (if the authority fails, the checkpoint stays recorded: exit 3)."""
    stamp = None
    if out is not None:
        check_output(out, "checkpoint file")  # refused before anything is signed
    with open_case(case_dir) as ledger:
        signer = load_key(key_path, passphrase_file, insecure_key)
        text, ev = make_checkpoint(ledger, signer)
        if out is not None:
            write_atomic(out, text.encode("utf-8"), mode=0o644, what="checkpoint file")
        if tsa_url:
            stamp = timestamp_checkpoint(ledger, signer, ev, text, tsa_url)
    if as_json:
        echo_json(
            {
                "event": ev.seq,
                "origin": ev.data["origin"],
                "size": ev.data["size"],
                "root": ev.data["root"],
                "vkey": ev.data["vkey"],
                "note": text,
                "timestamp_event": stamp.seq if stamp else None,
            }
        )
    else:
        click.echo(text, nl=False)
        if stamp is not None:
            click.echo(f"RFC 3161 time-stamp from {tsa_url} recorded as event {stamp.seq}")


@click.group("prove")
def prove() -> None:
    """Merkle proofs against signed checkpoints."""


def _events_for(ledger: Ledger, what: str) -> list[Event]:
    w = what.strip()
    events = list(ledger.events())
    if w.isascii() and w.isdigit() and len(w) <= 19:  # not "²", nor 4300+ digits
        found = [e for e in events if e.seq == int(w)]
    elif w.startswith("sha256:"):
        found = [e for e in events if e.hash == w]
    else:
        _, found = item_log(ledger, w)  # an imported item: from its import event
    if not found:
        raise UsageError(f"no such item or event: {what}")
    return found


@prove.command("inclusion")
@click.argument("what", metavar="ITEM|EVENT", type=LOOKUP)
@click.option(
    "--checkpoint",
    "cp_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Signed checkpoint file.",
)
@json_option
@case_option
def prove_inclusion_cmd(what: str, cp_path: Path, as_json: bool, case_dir: Path | None) -> None:
    """Prove that an item's events (or one event, by seq or hash) are in the tree a
    checkpoint signs.  The tree is recomputed from the event bodies; a ledger whose
    events or stored tree fail that is refused (exit 1).  Every proof printed has
    been verified."""
    with open_case(case_dir, write=False) as ledger:
        cp = load_for_ledger(ledger, cp_path)
        proofs = prove_inclusion(ledger, cp, _events_for(ledger, what))
    if as_json:
        echo_json({"checkpoint": cp.describe(), "proofs": proofs})
        return
    d = cp.describe()
    click.echo(
        f"Checkpoint {shown(d['origin'])} size {d['size']} root {shown(d['root'])}"
        f" signed by {shown(', '.join(d['signed_by']))}"
    )
    for p in proofs:
        if not p["included"]:
            click.echo(f"  event {p['seq']}: {shown(p['detail'])}")
            continue
        click.echo(
            f"  event {p['seq']} ({p['type']}) leaf {p['leaf_hash']}: included,"
            f" verified with {len(p['proof'])} hashes"
        )
        for h in p["proof"]:
            click.echo(f"    {h}")


@prove.command("consistency")
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@case_option
def prove_consistency_cmd(old: Path, new: Path, as_json: bool, case_dir: Path | None) -> None:
    """Prove that checkpoint NEW extends checkpoint OLD (history only grew), from
    the tree recomputed from the event bodies.  Exit 1 if it does not, or if the
    ledger's events or stored tree fail that recomputation."""
    with open_case(case_dir, write=False) as ledger:
        result = prove_consistency(
            ledger, load_for_ledger(ledger, old), load_for_ledger(ledger, new)
        )
    if as_json:
        echo_json(result)
        return
    click.echo(
        f"Consistent: the tree of size {result['new']['size']} extends the tree of size"
        f" {result['old']['size']} (proof of {len(result['proof'])} hashes, verified)"
    )
    for h in result["proof"]:
        click.echo(f"  {h}")


@click.command("rotate")
@click.option(
    "--new-key",
    "new_key",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The new private key (made with 'custody key new').",
)
@click.option(
    "--new-passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Passphrase of the new key (default: the same source as --key's).",
)
@case_option
@key_options
def key_rotate(
    new_key: Path,
    new_passphrase_file: Path | None,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Replace your key: a rotation event signed by the old key and co-signed by the
    new one.  The new key takes the old one's name and standing, and the items it
    holds.  Signed with the case's recovery key (--key), it replaces the owner's
    key instead (a lost or compromised owner key)."""
    with open_case(case_dir) as ledger:
        old = load_key(key_path, passphrase_file, insecure_key)
        new = load_key(new_key, new_passphrase_file or passphrase_file, insecure_key)
        r = ledger.rules().current()
        if r.recovery is not None and old.fingerprint == r.recovery:
            ev = replace_owner(ledger, old, new)
        else:
            ev = rotate_key(ledger, old, new)
    click.echo(f"Rotated {ev.data['old']} -> {ev.data['new']} as event {ev.seq}")


@click.command("revoke")
@click.argument("who", metavar="FINGERPRINT|NAME", type=LOOKUP)
@click.option("--reason", required=True, type=TEXT, help="Why the key is revoked.")
@case_option
@key_options
def key_revoke(
    who: str,
    reason: str,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Revoke a key: events it signs after this one fail verification.  A key is
    revoked by itself or by the case's owner (the owner's key also by the recovery
    key); the items it holds stay with it until the owner reassigns them."""
    with open_case(case_dir) as ledger:
        signer = load_key(key_path, passphrase_file, insecure_key)
        ev = revoke_key(ledger, signer, who, reason)
    click.echo(f"Revoked {ev.data['fingerprint']} as event {ev.seq}")


@click.command("reassign")
@click.argument("items", nargs=-1, required=True, type=LOOKUP)
@click.option(
    "--to",
    "to",
    required=True,
    type=LOOKUP,
    help="The new custodian: an attested key's name or fingerprint.",
)
@click.option("--reason", required=True, type=TEXT, help="Why (recorded and signed).")
@json_option
@case_option
@key_options
def reassign_cmd(
    items: tuple[str, ...],
    to: str,
    reason: str,
    as_json: bool,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Give ITEMS held by a revoked key, or in transit to one, to an attested key
    (the case's owner only, with a signed reason that stays in the record).  An
    item in transit returns to the state it had; its transfer stays unreceived."""
    with open_case(case_dir) as ledger:
        signer = load_key(key_path, passphrase_file, insecure_key)
        ev = reassign(ledger, signer, list(items), to, reason)
        card = case_keybook(ledger).card(ev.data["to"])
    if as_json:
        echo_json(
            {
                "event": ev.seq,
                "hash": ev.hash,
                "items": ev.data["items"],
                "to": ev.data["to"],
                "to_key": card.as_json(),
            }
        )
    else:
        listed = shown(", ".join(ev.data["items"]))
        click.echo(f"Reassigned {listed} to {shown(card.text())} as event {ev.seq}")
