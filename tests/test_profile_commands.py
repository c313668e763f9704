"""Profiles' live-response commands (issue 17 §3: "profiles use [capture] for
live-response commands").

What a user notices: each command's ``volatile.step`` event in the profile's
order, after the /proc steps and before any file; its stdout and stderr stored
under their exact SHA-256; the executable that ran and its digest (a trojaned
``ps`` earlier on PATH shows, ``--tools`` avoids it); a command that is not there
recorded as ``not available`` while the run goes on; a timeout recorded as
``timed out`` with what was printed until then; and the three attacks: a ledger
edit without the key, a swapped bundle payload, a hostile profile entry refused
with one line and exit 2 before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import Case, cli, ok_json, one_error_line
from jsonschema import Draft202012Validator
from tampering import bypass, q

from custody import profiles

ROOT = Path(__file__).resolve().parents[1]
BODY = Draft202012Validator(json.loads((ROOT / "schemas/event-body.schema.json").read_text()))


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def bodies(case: Case) -> list[dict[str, Any]]:
    con = sqlite3.connect(case.dir / "custody.db")
    try:
        return [json.loads(b) for (b,) in con.execute("SELECT body FROM events ORDER BY seq")]
    finally:
        con.close()


def stored(case: Case, digest: str) -> bytes:
    return (case.dir / "store" / "sha256" / digest[:2] / digest).read_bytes()


def command(argv: Any, reason: str = "why", **kw: Any) -> dict[str, Any]:
    return {"step": "command", "command": argv, "reason": reason, **kw}


def write_profile(tmp_path: Path, steps: list[Any], entries: list[Any] | None = None) -> Path:
    doc = {"v": 1, "name": "live", "description": "live", "volatile": steps}
    doc["entries"] = entries or []
    p = tmp_path / "live.json"
    p.write_text(json.dumps(doc))
    return p


def bin_dir(tmp_path: Path, name: str, **scripts: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    for cmd, body in scripts.items():
        script(d / cmd, body)
    return d


def steps_of(case: Case) -> list[dict[str, Any]]:
    return [b["data"] for b in bodies(case) if b["type"] == "volatile.step"]


def test_commands_recorded_in_order_between_proc_steps_and_files(
    case: Case, tmp_path: Path
) -> None:
    host = bin_dir(
        tmp_path,
        "host",
        first="echo one; echo err1 >&2\n",
        second="printf 'two\\n%s\\n' \"$1\"; exit 3\n",
    )
    f = tmp_path / "f.txt"
    f.write_text("file")
    prof = write_profile(
        tmp_path,
        [
            {"step": "routes"},
            command(["first"], "first reason"),
            command(["not-on-this-host", "-x"], "absent"),
            command(["second", "a b"], "second reason", timeout=5),
        ],
        [{"name": "f", "reason": "a file", "paths": [str(f)]}],
    )
    out = ok_json(
        case,
        "collect",
        "--profile",
        prof,
        "--reason",
        "triage",
        "--json",
        env={"PATH": str(host)},
    )
    assert out["counts"] == {"captured": 4, "collected": 4}  # 3 route files, f.txt
    evs = bodies(case)
    kinds = [
        (b["type"], b["data"].get("step") or b["data"].get("stream") or b["data"].get("entry"))
        for b in evs
        if b["type"] in ("volatile.step", "profile.entry") or b["data"].get("stream")
    ]
    assert kinds == [
        ("volatile.step", "routes"),
        ("collect", "stdout"),
        ("collect", "stderr"),
        ("volatile.step", "command"),
        ("volatile.step", "command"),  # not available: no items
        ("collect", "stdout"),
        ("collect", "stderr"),
        ("volatile.step", "command"),
        ("profile.entry", "f"),
    ]
    steps = steps_of(case)
    assert [(s["order"], s["outcome"]) for s in steps] == [
        (1, "recorded"),
        (2, "captured"),
        (3, "not available"),
        (4, "captured"),
    ]
    first, absent, second = steps[1:]
    assert first["details"]["command"] == ["first"]
    assert first["details"]["reason"] == "first reason"
    assert first["details"]["timeout_ms"] == 30000
    assert first["details"]["executable"]["sha256"] == sha((host / "first").read_bytes())
    assert first["details"]["executable"]["path"]["display"] == str(host / "first")
    assert first["details"]["exit"] == {"status": "exited", "code": 0}
    assert absent["reason"] == "command not found on PATH: not-on-this-host"
    assert absent["captures"] == [] and absent["details"]["command"] == ["not-on-this-host", "-x"]
    assert second["details"]["exit"] == {"status": "exited", "code": 3}
    assert second["details"]["timeout_ms"] == 5000
    items = {
        (b["data"]["capture"]["command"], b["data"]["stream"]): b["data"]
        for b in evs
        if b["type"] == "collect" and "capture" in b["data"]
    }
    assert stored(case, items[("first", "stdout")]["digests"]["sha256"]) == b"one\n"
    assert stored(case, items[("first", "stderr")]["digests"]["sha256"]) == b"err1\n"
    assert stored(case, items[("second 'a b'", "stdout")]["digests"]["sha256"]) == b"two\na b\n"
    assert first["captures"] == [
        items[("first", "stdout")]["item"],
        items[("first", "stderr")]["item"],
    ]
    assert items[("first", "stdout")]["reason"] == "triage"
    # every capture is in the run; files come after every step
    run = next(b["data"]["run"] for b in evs if b["type"] == "collection.start")
    assert {d["run"] for d in items.values()} == {run}
    types = [b["type"] for b in evs]
    last_step = max(i for i, t in enumerate(types) if t == "volatile.step")
    file_ev = next(
        i for i, b in enumerate(evs) if b["data"].get("path", {}).get("display") == str(f)
    )
    assert last_step < file_ev
    end = next(b["data"] for b in evs if b["type"] == "collection.end")
    assert end["status"] == "complete" and end["counts"] == {"captured": 4, "collected": 4}
    assert [e.message for b in evs for e in BODY.iter_errors(b)] == []
    assert cli(case, "verify").returncode == 0


def test_text_report_names_each_command(case: Case, tmp_path: Path) -> None:
    host = bin_dir(tmp_path, "host", here="echo hi\n")
    prof = write_profile(
        tmp_path,
        [command(["here", "-v"]), command(["gone"]), command(["here", "\x1b[2J\rfake"])],
    )
    proc = cli(case, "collect", "--profile", prof, "--reason", "r", env={"PATH": str(host)})
    assert proc.returncode == 0, proc.stderr
    assert "Volatile step command here -v: captured\n" in proc.stdout
    assert (
        "\x1b" not in proc.stdout and "\r" not in proc.stdout
    )  # a hostile argument is shown escaped
    (hostile,) = [
        s
        for s in steps_of(case)
        if len(s["details"]["command"]) == 2 and s["details"]["command"][1].startswith("\x1b")
    ]
    assert hostile["outcome"] == "captured"
    assert "Volatile step command gone: not available: command not found on PATH: gone\n" in (
        proc.stdout
    )


def test_trojaned_ps_on_path_is_visible_and_tools_runs_the_trusted_one(
    case: Case, tmp_path: Path
) -> None:
    evil = bin_dir(tmp_path, "evil", ps="echo 'PID CMD'; echo '1 init'\n", who="echo nobody\n")
    tools = bin_dir(tmp_path, "tools", ps='echo trusted; echo "PATH=$PATH"\n')
    prof = write_profile(tmp_path, [command(["ps", "auxwwf"]), command(["who", "-a"])])
    env = {"PATH": f"{evil}:/usr/bin:/bin"}
    assert cli(case, "collect", "--profile", prof, "--reason", "r", env=env).returncode == 0
    ps, who = steps_of(case)
    assert ps["outcome"] == "captured"
    assert ps["details"]["executable"]["path"]["display"] == str(evil / "ps")
    assert ps["details"]["executable"]["resolved_in"] == "PATH"
    assert ps["details"]["executable"]["sha256"] == sha((evil / "ps").read_bytes())
    assert who["details"]["executable"]["path"]["display"] == str(evil / "who")
    n = len(bodies(case))
    # with --tools: the trusted copy alone; a command not in the folder is not
    # taken from the host's PATH
    proc = cli(case, "collect", "--profile", prof, "--reason", "r", "--tools", tools, env=env)
    assert proc.returncode == 0, proc.stderr
    new = bodies(case)[n:]
    run = next(b["data"] for b in new if b["type"] == "profile.run")
    assert run["tools"]["display"] == str(tools)
    ps, who = [b["data"] for b in new if b["type"] == "volatile.step"]
    assert ps["details"]["executable"]["resolved_in"] == "tools"
    assert ps["details"]["executable"]["sha256"] == sha((tools / "ps").read_bytes())
    assert ps["details"]["tools"]["display"] == str(tools)
    out = next(b["data"] for b in new if b["data"].get("stream") == "stdout")
    assert stored(case, out["digests"]["sha256"]) == f"trusted\nPATH={tools}\n".encode()
    assert who["outcome"] == "not available" and who["captures"] == []
    assert who["reason"] == f"command not found in the tools folder {tools}: who"


def test_timeout_is_recorded_and_the_run_goes_on(case: Case, tmp_path: Path) -> None:
    host = bin_dir(tmp_path, "host", slow="echo started\nexec sleep 60\n", after="echo after\n")
    prof = write_profile(tmp_path, [command(["slow"], timeout=2), command(["after"], timeout=5)])
    proc = cli(case, "collect", "--profile", prof, "--reason", "r", env={"PATH": f"{host}:/bin"})
    assert proc.returncode == 0, proc.stderr
    slow, after = steps_of(case)
    assert slow["outcome"] == "timed out"
    assert slow["reason"] == "killed after 2 s: what it printed until then is recorded"
    assert slow["details"]["exit"]["status"] == "timed-out"
    assert slow["details"]["timeout_ms"] == 2000
    out = next(b["data"] for b in bodies(case) if b["data"].get("item") == slow["captures"][0])
    assert out["capture"]["duration_ms"] < 30000 and out["capture"]["process_group_killed"]
    assert stored(case, out["digests"]["sha256"]) == b"started\n"
    assert after["outcome"] == "captured"


def test_root_other_than_slash_skips_commands(case: Case, tmp_path: Path) -> None:
    host = bin_dir(tmp_path, "host", mark=f"touch {tmp_path}/ran\n")
    vol = tmp_path / "vol"
    vol.mkdir()
    prof = write_profile(tmp_path, [command(["mark"])])
    proc = cli(
        case, "collect", "--profile", prof, "--root", vol, "--reason", "r", env={"PATH": str(host)}
    )
    assert proc.returncode == 0, proc.stderr
    (step,) = steps_of(case)
    assert (step["step"], step["outcome"]) == ("command", "skipped")
    assert not (tmp_path / "ran").exists()


HOSTILE: list[tuple[Any, str]] = [
    (command(["/bin/sh", "-c", "id"]), "volatile/0/command/0"),
    (command(["../../bin/sh"]), "volatile/0/command/0"),
    (command(["./ps"]), "volatile/0/command/0"),
    (command(["bin/ps"]), "volatile/0/command/0"),
    (command([".."]), "volatile/0/command/0"),
    (command([""]), "volatile/0/command/0"),
    (command(["-rf"]), "volatile/0/command/0"),
    (command(["ps", "a\x00b"]), "volatile/0/command/1"),
    (command(["ps", 7]), "volatile/0/command/1"),
    (command("ps aux"), "volatile/0/command"),
    (command([]), "volatile/0/command"),
    (command(["ps"] * 65), "volatile/0/command"),
    (command(["ps"], timeout=601), "volatile/0/timeout"),
    (command(["ps"], timeout=1e308), "volatile/0/timeout"),
    (command(["ps"], timeout=0), "volatile/0/timeout"),
    (command(["ps"], timeout=-1), "volatile/0/timeout"),
    (command(["ps"], timeout="30"), "volatile/0/timeout"),
    (command(["ps"], timeout=5.0), "volatile/0/timeout"),  # signed bodies hold no floats
    (command(["ps"], timeout=0.5), "volatile/0/timeout"),
    (command(["ps"], reason=""), "volatile/0/reason"),
    ({"step": "command", "command": ["ps"]}, "volatile/0"),
    (command(["ps"], shell=True), "volatile/0"),
    ({"step": "command", "command": ["ps"], "reason": "r", "exe": "all"}, "volatile/0"),
]


@pytest.mark.parametrize(("step", "where"), HOSTILE)
def test_hostile_command_entry_is_refused_before_anything_is_written(
    case: Case, tmp_path: Path, step: Any, where: str
) -> None:
    prof = write_profile(tmp_path, [step])
    n = len(bodies(case))
    proc = cli(case, "collect", "--profile", prof, "--reason", "r")
    assert proc.returncode == 2
    assert one_error_line(proc).startswith(f"custody: error: profile {prof}: {where}: ")
    assert len(bodies(case)) == n
    assert cli(case, "profile", "show", prof).returncode == 2


def test_commands_stand_between_the_proc_reads_and_the_slow_steps(tmp_path: Path) -> None:
    ok = [{"step": "routes"}, command(["a"]), command(["a"]), {"step": "executables"}]
    profiles.check_profile(
        {"v": 1, "name": "x", "description": "x", "volatile": ok, "entries": []}, "x"
    )
    for bad in (
        [command(["ps"]), {"step": "processes"}],
        [{"step": "executables"}, command(["ps"])],
        [{"step": "memory"}, command(["ps"])],
        [{"step": "routes"}, {"step": "routes"}, command(["ps"])],
    ):
        doc = {"v": 1, "name": "x", "description": "x", "volatile": bad, "entries": []}
        with pytest.raises(profiles.UsageError, match="not in order of volatility"):
            profiles.check_profile(doc, "x")


def test_tools_option_is_checked_first(case: Case, tmp_path: Path) -> None:
    n = len(bodies(case))
    f = tmp_path / "file"
    f.write_text("x")
    for args, want in (
        (["--tools", str(tmp_path), str(f)], "--tools goes with --profile"),
        (["--profile", "linux-triage", "--tools", str(f)], "--tools is not a directory"),
        (["--profile", "linux-triage", "--tools", str(tmp_path / "no")], "--tools is not a"),
        (["--resume", "--tools", str(tmp_path)], "--tools goes with --profile"),
    ):
        proc = cli(case, "collect", "--reason", "r", *args)
        assert proc.returncode == 2, args
        assert want in one_error_line(proc)
    assert len(bodies(case)) == n


def test_builtin_triage_profiles_carry_commands() -> None:
    lin = profiles.load_profile("linux-triage")
    names = [s["step"] for s in lin.steps]
    cmds = [s["command"][0] for s in lin.steps if s["step"] == "command"]
    assert names.index("routes") < names.index("command")
    assert max(i for i, n in enumerate(names) if n == "command") < names.index("executables")
    assert {"ps", "ss", "who", "last", "lsmod", "ip", "mount", "df"} <= set(cmds)
    assert all(s.get("timeout", 30) <= 30 for s in lin.steps if s["step"] == "command")
    mac = profiles.load_profile("macos-triage")
    cmds = [s["command"][0] for s in mac.steps]
    assert {"ps", "netstat", "who", "last", "ifconfig", "mount", "launchctl"} <= set(cmds)


def test_ledger_edit_and_swapped_bundle_payload_are_found(case: Case, tmp_path: Path) -> None:
    host = bin_dir(tmp_path, "host", ps="echo original\n")
    prof = write_profile(tmp_path, [command(["ps"])])
    assert (
        cli(case, "collect", "--profile", prof, "--reason", "r", env={"PATH": str(host)}).returncode
        == 0
    )
    (step,) = steps_of(case)
    stdout_item = step["captures"][0]
    bag = tmp_path / "bag"
    assert cli(case, "bundle", "export", stdout_item, "--out", bag).returncode == 0
    assert (
        cli(case, "bundle", "verify", bag, "--trust", case.key.with_suffix(".pub")).returncode == 0
    )
    payload = next((bag / "data" / stdout_item).iterdir())
    assert payload.read_bytes() == b"original\n"
    payload.chmod(0o600)
    payload.write_bytes(b"forged!!\n")
    assert (
        cli(case, "bundle", "verify", bag, "--trust", case.key.with_suffix(".pub")).returncode == 1
    )
    # someone with write access but no key makes the step claim a clean digest
    real = step["details"]["executable"]["sha256"]
    seq = next(b["seq"] for b in bodies(case) if b["type"] == "volatile.step")
    bypass(
        case.dir / "custody.db",
        "events",
        f"UPDATE events SET body = replace(body, {q(real)}, {q('0' * 64)}) WHERE seq = {seq};",
    )
    report = json.loads(cli(case, "verify", "--json").stdout)
    assert report["ok"] is False
    assert "event-hash" in {f["kind"] for f in report["findings"]}


def test_commands_run_with_secrets_scrubbed(case: Case, tmp_path: Path) -> None:
    """The command runs with the scrubbed environment: no passphrase, no token."""
    host = bin_dir(tmp_path, "host", envdump="env\n")
    prof = write_profile(tmp_path, [command(["envdump"])])
    env = {"PATH": f"{host}:/usr/bin:/bin", "API_TOKEN": "s3cr3t-token"}
    assert cli(case, "collect", "--profile", prof, "--reason", "r", env=env).returncode == 0
    (step,) = steps_of(case)
    out = next(b["data"] for b in bodies(case) if b["data"].get("item") == step["captures"][0])
    text = stored(case, out["digests"]["sha256"])
    assert b"s3cr3t-token" not in text and b"CUSTODY_PASSPHRASE" not in text
    assert f"PATH={host}:/usr/bin:/bin".encode() in text
    removed = {r["name"] for r in out["capture"]["environment"]["removed"]}
    assert {"API_TOKEN", "CUSTODY_PASSPHRASE"} <= removed
