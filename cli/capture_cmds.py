"""custody capture: run a live-response command and record its output as evidence."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from custody.capture import MAX_TIMEOUT
from custody.collect import check_reason
from custody.display import shown
from custody.errors import UsageError
from custody.hashing import parse_algorithms
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
)

#: seconds a captured command may run when --timeout is not given
DEFAULT_TIMEOUT = 300.0


@click.command("capture", context_settings={"allow_interspersed_args": False})
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD [ARGS]...")
@click.option(
    "--reason",
    default=None,
    type=TEXT,
    help="Why this command is run (required; asked for on a terminal).",
)
@click.option(
    "--tools",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Run CMD from this folder of trusted binaries (the collector's media) instead"
    " of the host's PATH: looked up there only, and the command's PATH is set to it.",
)
@click.option(
    "--timeout",
    type=LOOKUP,
    default=f"{DEFAULT_TIMEOUT:g}",
    show_default=True,
    help="Seconds before the command's whole process group is killed and the capture"
    " recorded as timed out (0: no limit; at most a week).",
)
@hash_option
@no_selftest_option
@click.option("--json", "as_json", is_flag=True, help="Print the capture record as JSON.")
@case_option
@key_options
def capture(
    argv: tuple[str, ...],
    reason: str | None,
    tools: Path | None,
    timeout: str,
    hash_spec: str,
    no_selftest: bool,
    as_json: bool,
    case_dir: Path | None,
    key_path: Path | None,
    passphrase_file: Path | None,
    insecure_key: bool,
) -> None:
    """Run CMD and record it: argv, the executable's path and SHA-256, the
    environment it ran with (secrets removed, their names listed), start and end
    times, how it ended, and its stdout and stderr, streamed into the store as two
    items (outcome captured).  Put '--' before CMD.  A command that is not found
    is refused (exit 2) and nothing is recorded.  The exit status is custody's
    (0: recorded), whatever the command's; a timeout kills its process group."""
    from custody.capture import capture as run_capture

    algorithms = parse_algorithms(hash_spec)
    seconds = _seconds(timeout)
    if reason is None:
        if not sys.stdin.isatty():
            raise UsageError("--reason is required: say why this command is captured")
        reason = click.prompt("Reason for this capture", err=True, default="")
    reason = check_reason(reason or "")
    with open_case(case_dir) as ledger:
        signer = load_key(key_path, passphrase_file, insecure_key)
        result = run_capture(
            ledger,
            signer,
            list(argv),
            reason=reason,
            tools=None if tools is None else str(tools),
            timeout=seconds or None,
            algorithms=algorithms,
            selftest=not no_selftest,
        )
    if as_json:
        echo_json(result.as_json())
        return
    rec = result.capture
    exe = rec["executable"]
    ended = rec["exit"]
    how = {
        "exited": f"exit code {ended.get('code')}",
        "signaled": f"killed by {ended.get('signal')}",
        "timed-out": f"TIMED OUT after {rec['timeout_ms'] / 1000:g} s, process group killed",
    }[ended["status"]]
    click.echo(f"Captured: {shown(rec['command'])}")
    click.echo(
        f"Executable: {shown(exe['path']['display'])} ({exe['resolved_in']})"
        f" sha256 {exe['digests']['sha256']}"
    )
    click.echo(f"Ran {rec['duration_ms'] / 1000:.3f} s, {how}")
    removed = rec["environment"]["removed"]
    if removed:
        click.echo(
            f"Environment: {len(removed)} variable(s) removed before it ran: "
            + shown(", ".join(r["name"] for r in removed))
        )
    if rec.get("note"):
        click.echo(f"Note: {shown(rec['note'])}")
    for it in result.as_json()["items"]:
        click.echo(f"  {it['id']:<9} {it['stream']:<6} {it['size']:>12} bytes  {it['sha256']}")


def _seconds(text: str) -> float:
    """--timeout: seconds, 0 for none, at most a week (one error line otherwise)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= MAX_TIMEOUT:  # nan fails too
        raise UsageError(
            f"--timeout takes seconds from 0 (no limit) to {MAX_TIMEOUT:g}, got {text!r}"
        )
    return value


def capture_lines(info: dict[str, Any]) -> list[str]:
    """``custody show``'s lines for a captured item: the command, the executable and
    its digest, how it ended, the environment removed, the other stream's item."""
    rec = info.get("capture")
    if not isinstance(rec, dict):
        return []
    exe = rec.get("executable") or {}
    ended = rec.get("exit") or {}
    items = rec.get("items") or {}
    other = {"stdout": "stderr", "stderr": "stdout"}.get(str(info.get("stream")), "")
    removed = (rec.get("environment") or {}).get("removed") or []
    lines = [
        f"{'Stream:':<11}{shown(info.get('stream'))} (the {other} is {shown(items.get(other))})",
        f"{'Command:':<11}{shown(rec.get('command'))}",
        f"{'Exe:':<11}{shown((exe.get('path') or {}).get('display'))}"
        f" ({shown(exe.get('resolved_in'))}, ran by {shown(rec.get('ran'))})",
        f"{'Exe hash:':<11}sha256 {shown((exe.get('digests') or {}).get('sha256'))}",
        f"{'Ran:':<11}{shown(rec.get('started'))} .. {shown(rec.get('ended'))}",
        f"{'Ended:':<11}{shown(ended.get('status'))} code {shown(ended.get('code'))}"
        + (f" {shown(ended.get('signal'))}" if ended.get("signal") else ""),
    ]
    if removed:
        names = ", ".join(str(r.get("name")) for r in removed if isinstance(r, dict))
        lines.append(f"{'Env:':<11}removed before it ran, values not recorded: {shown(names)}")
    if rec.get("note"):
        lines.append(f"{'Note:':<11}{shown(rec.get('note'))}")
    return lines
