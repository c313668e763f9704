"""custody profile list|show, and collect's --profile and --root (the collect
command itself lives in cli/main.py and calls in here)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from custody.display import shown
from custody.errors import UsageError
from custody.profiles import ProfileRun, builtin_names, check_root, load_profile, profile_of_run
from custody_cli.common import LOOKUP, echo_json

if TYPE_CHECKING:
    from custody.collect import PreWalkFn, Run
    from custody.ledger import Ledger

F = TypeVar("F", bound=Callable[..., Any])


def profile_options(f: F) -> F:
    """collect's --profile and --root."""
    f = click.option(
        "--root",
        "root",
        default=None,
        metavar="DIR",
        type=LOOKUP,
        help="With --profile: the profile's globs are taken under DIR (a mounted"
        " volume); volatile steps run only when DIR is / (default).",
    )(f)
    f = click.option(
        "--profile",
        "profile",
        default=None,
        metavar="NAME|FILE",
        type=LOOKUP,
        help="Collect by a profile: volatile data first, then its files"
        " ('custody profile list' names the built-in ones; or a profile file).",
    )(f)
    return f


@dataclass
class ProfilePlan:
    paths: tuple[str, ...]  # what collection.start names: the root
    hook: ProfileRun


def plan(
    profile: str | None, root: str | None, paths: tuple[str, ...], resume: bool
) -> ProfilePlan | None:
    """Check collect's --profile/--root against its other arguments (before
    anything is asked or written) and load the profile."""
    if profile is None:
        if root is not None:
            raise UsageError("--root goes with --profile")
        return None
    if resume:
        raise UsageError(
            "--resume finishes the interrupted run with its own profile: give no --profile"
        )
    if paths:
        raise UsageError(
            "--profile collects what the profile names: give no paths (use --root DIR)"
        )
    prof = load_profile(profile)
    raw_root = check_root(root if root is not None else "/")
    return ProfilePlan((os.fsdecode(raw_root),), ProfileRun(prof, raw_root))


def resume_hook(ledger: Ledger, run: Run) -> PreWalkFn | None:
    """For ``collect --resume`` of a profile run: its profile again (files only)."""
    found = profile_of_run(ledger, run)
    if found is None:
        return None
    return ProfileRun(found[0], found[1], live=False)


def report(hook: Any) -> None:
    """collect's lines about a profile run's steps and entries."""
    if not isinstance(hook, ProfileRun):
        return
    for s in hook.steps:
        why = f": {shown(s.reason)}" if s.reason else ""
        click.echo(f"Volatile step {s.step}: {s.outcome}{why}")
    for e in hook.entries:
        click.echo(f"Profile entry {shown(e['entry'])}: {e['outcome']} ({e['matched']} path(s))")


@click.group("profile")
def profile_group() -> None:
    """Collection profiles: what 'collect --profile' takes, in which order."""


@profile_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def profile_list(as_json: bool) -> None:
    """The built-in profiles."""
    rows = []
    for name in builtin_names():
        p = load_profile(name)
        rows.append(
            {
                "name": p.name,
                "description": p.doc["description"],
                "platform": p.doc.get("platform"),
                "volatile": [s["step"] for s in p.steps],
                "entries": len(p.entries),
                "sha256": p.sha256,
            }
        )
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['name']:<16} {r['description']}")


@profile_group.command("show")
@click.argument("spec", metavar="NAME|FILE", type=LOOKUP)
@click.option("--json", "as_json", is_flag=True, help="Print the profile document.")
def profile_show(spec: str, as_json: bool) -> None:
    """A profile's volatile steps and entries (globs, reasons, caps); a FILE is
    checked as 'collect --profile' would check it."""
    from custody.profiles import iter_summary

    p = load_profile(spec)
    if as_json:
        echo_json({"name": p.name, "source": p.source, "sha256": p.sha256, "document": p.doc})
        return
    for line in iter_summary(p):
        click.echo(shown(line))
