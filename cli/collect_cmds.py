"""`custody collect` (moved from cli/core_cmds.py; loaded on first use by cli/main.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from custody.collect import (
    CollectSummary,
    WalkRules,
    check_paths,
    check_reason,
    estimate,
    unfinished_runs,
)
from custody.collect import collect as run_collect
from custody.collect import resume as resume_collection
from custody.display import shown, shown_path
from custody.errors import UsageError
from custody.hashing import parse_algorithms
from custody_cli import profile_cmds
from custody_cli.common import (
    LOOKUP,
    TEXT,
    case_option,
    echo_json,
    hash_option,
    key_options,
    load_key,
    no_selftest_option,
    open_case,
    progress_bar,
    show_progress,
)

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
@no_selftest_option
@hash_option
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
