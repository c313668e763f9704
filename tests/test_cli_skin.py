"""The CLI is a skin (issue 11): the demo story, the item view, the hand-overs and
the run status live in the library, and the CLI only prints them; ``--case``
given to the group reaches every command that takes one (``custody --case DIR
selftest`` records into DIR).

Runs the CLI in-process (conftest.invoke_here)."""

from __future__ import annotations

import ast
import json
import re
import uuid
from pathlib import Path

import click
import pytest
from conftest import PASSPHRASE, invoke_here, ok_here
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.collect import RUN_END_EVENT, RUN_START_EVENT
from custody.demo import run_demo
from custody.keys import Signer, load_signer
from custody.ledger import EventDraft, Ledger
from custody.runs import RUNNING, UNFINISHED, run_statuses
from custody.verify import verify_ledger
from custody_cli.main import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def case(custody_cwd: dict[str, str], tmp_path: Path) -> Path:
    ok_here(
        "key", "new", "--name", "Dana Reyes", "--role", "collector", "--out", tmp_path / "dana.pem"
    )
    d = tmp_path / "case"
    ok_here("init", d, "--case-id", "2026-017", "--title", "Payroll server breach")
    return d


# -- --case given to the group ---------------------------------------------------------


def test_selftest_records_into_the_case_given_to_the_group(case: Path) -> None:
    """``custody --case DIR selftest`` recorded nothing: selftest read only its own
    --case, not the group's."""
    out = json.loads(ok_here("--case", case, "selftest", "--json").stdout)
    assert out["ok"] is True
    assert isinstance(out["event"], int)
    with Ledger.open(case) as ledger:
        assert [e.type for e in ledger.events()][-1] == "selftest"
    # and the text form says so too
    text = ok_here("--case", case, "selftest").stdout
    assert "Recorded as signed event" in text


def test_group_case_reaches_commands_of_nested_groups(case: Path, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x\n")
    ok_here(
        "--case",
        case,
        "collect",
        "--reason",
        "test",
        tmp_path / "f.txt",
        "--no-selftest",
        "--quiet",
    )
    assert [i["id"] for i in json.loads(ok_here("--case", case, "list", "--json").stdout)] == [
        "ITEM-1"
    ]
    keys = json.loads(ok_here("--case", case, "key", "list", "--json").stdout)
    assert [k["name"] for k in keys] == ["Dana Reyes"]
    ok_here("--case", case, "bundle", "export", "ITEM-1", "--out", tmp_path / "bag")
    # the command's own --case wins over the group's
    other = tmp_path / "other"
    ok_here("init", other, "--case-id", "OTHER", "--title", "other")
    assert json.loads(ok_here("--case", other, "list", "--case", case, "--json").stdout) != []
    assert json.loads(ok_here("--case", case, "list", "--case", other, "--json").stdout) == []


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((prefix + name, cmd))
        if isinstance(cmd, click.Group):
            out += _commands(cmd, prefix + name + " ")
    return out


def test_every_case_option_inherits_the_group_case() -> None:
    """Every command taking --case gets the group's when it has none of its own
    (the option's callback), not only those that happen to call open_case."""
    with_case = [
        (name, p) for name, cmd in _commands(cli) for p in cmd.params if p.name == "case_dir"
    ]
    assert len(with_case) > 15
    callbacks = {p.callback for _, p in with_case}
    assert len(callbacks) == 1 and None not in callbacks, with_case


# -- the demo story ------------------------------------------------------------------


def test_demo_story_is_the_library_and_the_cli_prints_it(
    custody_cwd: dict[str, str], tmp_path: Path
) -> None:
    said: list[str] = []
    result = run_demo(tmp_path / "lib", said.append)
    assert result.ok
    assert result.case_dir == (tmp_path / "lib" / "case-DEMO-001").resolve()
    assert [p.name for p in result.checkpoints] == ["checkpoint-1.txt", "checkpoint-2.txt"]
    assert result.report is not None and result.report.read_bytes().startswith(b"<!DOCTYPE")
    numbered = [line.split(".")[0] for line in said if line[:1].isdigit()]
    assert numbered == [str(n) for n in range(1, 21)]  # collector 1-12, counsel, the lab
    assert "OK: ledger and store verified, no problems found." in "\n".join(said)
    with Ledger.open(result.case_dir) as ledger:
        assert verify_ledger(ledger, checkpoints=result.checkpoints).ok

    printed = ok_here("demo", tmp_path / "cli").stdout.splitlines()
    # the same story, told by the library: only the directory and digests differ
    assert len(printed) == len(said)

    def first(line: str) -> str:  # a source label holds the case header hash: differs
        return re.sub(r"@[0-9a-f]{6,}", "@HEX", line.split(" ")[0])

    assert [first(p) for p in printed] == [first(s) for s in said]


def test_demo_refuses_a_directory_that_holds_one(
    custody_cwd: dict[str, str], tmp_path: Path
) -> None:
    ok_here("demo", tmp_path / "d")
    again = invoke_here("demo", tmp_path / "d")
    assert again.returncode == 2
    assert "already holds a demo" in again.stderr


# -- run status --------------------------------------------------------------------


def _start_run(ledger: Ledger, signer: Signer, *, end: str | None = None) -> str:
    run = str(uuid.uuid4())
    drafts = [
        EventDraft(
            RUN_START_EVENT,
            {"run": run, "reason": "r", "paths": [], "algorithms": ["sha256"]},
        )
    ]
    if end is not None:
        drafts.append(EventDraft(RUN_END_EVENT, {"run": run, "status": end}))
    ledger.append(signer, drafts)
    return run


def test_run_status_is_the_library_and_log_shows_it(case: Path) -> None:
    signer = Signer(Ed25519PrivateKey.generate(), "Sam Ortiz", "collector")
    with Ledger.open(case) as ledger:
        # rules 2: only a key the owner vouched for may collect
        owner = load_signer(case.parent / "dana.pem", PASSPHRASE.encode())
        ledger.register_identity(owner, signer.identity)
        done = _start_run(ledger, signer, end="complete")
        killed = _start_run(ledger, signer)
        statuses = run_statuses(ledger)
    assert [s.status for s in statuses.values()] == ["complete", UNFINISHED]
    assert statuses[killed].unfinished and not statuses[done].unfinished
    assert RUNNING != UNFINISHED

    events = json.loads(ok_here("log", "--json", "--case", case).stdout)
    starts = [e for e in events if e["type"] == RUN_START_EVENT]
    got = {json.loads(e["body"])["data"]["run"]: e["run_status"] for e in starts}
    assert got == {done: "complete", killed: UNFINISHED}
    text = ok_here("log", "--case", case).stdout
    assert f"UNFINISHED: collection {killed}" in text
    assert f"UNFINISHED: collection {done}" not in text


# -- nothing computed in the CLI ---------------------------------------------------------


def test_the_cli_checks_no_signature_and_replays_nothing() -> None:
    """Signature status, hand-overs and run status come from the library: the CLI
    imports neither the signature check nor the replay, and defines no
    signature_ok or timeline of its own."""
    for path in (ROOT / "cli").glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = {a.name for a in node.names}
                assert not names & {"verify_signature", "replay_ledger", "replay", "runs"}, path
            if isinstance(node, ast.FunctionDef):
                assert node.name not in {"signature_ok", "timeline", "_print_report"}, path
