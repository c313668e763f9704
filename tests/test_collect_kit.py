"""Issue 17 §4-§5 and issue 16 §2: a quiet, safe collect.

Walk control (the case's own folder always excluded, ``--exclude``,
``--one-file-system``: every path left out is recorded with outcome
``excluded``), a required ``--reason``, the default key kept by ``key new`` and
switched by ``key use``, collect without libmagic, Ctrl-C naming
``collect --resume``, and the quiet text output (items listed only up to 20,
summary last), ``--jsonl`` and the moving-window ETA.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Case, Run, cli, new_key, ok_json, one_error_line
from jsonschema import Draft202012Validator

import custody.collect as collect_mod
from custody.ledger import Ledger
from custody_cli.common import EtaMeter

ROOT = Path(__file__).resolve().parents[1]
BODY = Draft202012Validator(json.loads((ROOT / "schemas/event-body.schema.json").read_text()))


def bodies(case: Case) -> list[dict[str, Any]]:
    with Ledger.open(case.dir) as ledger:
        return [json.loads(ev.body) for ev in ledger.events()]


def collects(case: Case) -> dict[str, dict[str, Any]]:
    """Every collect event's data, by path."""
    return {b["data"]["path"]["display"]: b["data"] for b in bodies(case) if b["type"] == "collect"}


def assert_bodies_match_schema(case: Case) -> None:
    for b in bodies(case):
        errors = [e.message for e in BODY.iter_errors(b)]
        assert not errors, (b["type"], errors)


def tree(root: Path) -> Path:
    """ev/{a.txt, app.log, sub/b.log, sub/keep.txt, skip/c.txt}"""
    ev = root / "ev"
    (ev / "sub").mkdir(parents=True)
    (ev / "skip").mkdir()
    (ev / "a.txt").write_text("a\n")
    (ev / "app.log").write_text("log\n")
    (ev / "sub" / "b.log").write_text("b\n")
    (ev / "sub" / "keep.txt").write_text("keep\n")
    (ev / "skip" / "c.txt").write_text("c\n")
    return ev


# -- the case's own folder ----------------------------------------------------------


def test_collect_dot_inside_the_case_collects_nothing_of_it(case: Case) -> None:
    summary = ok_json(case, "collect", "--reason", "triage", ".", "--json")
    assert [(it["path"], it["outcome"]) for it in summary["items"]] == [(str(case.dir), "excluded")]
    assert summary["items"][0]["excluded_by"] == {"rule": "case-folder"}
    assert summary["new_objects"] == 0 and summary["bytes"] == 0
    assert summary["counts"] == {"excluded": 1}
    assert cli(case, "verify").returncode == 0
    assert_bodies_match_schema(case)


def test_a_walk_that_meets_the_case_records_it_excluded_and_does_not_descend(
    case: Case, tmp_path: Path
) -> None:
    tree(tmp_path)
    summary = ok_json(case, "collect", "--reason", "triage", tmp_path, "--json")
    by_path = {it["path"]: it for it in summary["items"]}
    assert by_path[str(case.dir)]["outcome"] == "excluded"
    assert by_path[str(case.dir)]["excluded_by"] == {"rule": "case-folder"}
    inside = [p for p in by_path if p.startswith(str(case.dir) + "/")]
    assert inside == []  # ledger, WAL, store, locks: none reached
    assert by_path[str(tmp_path / "ev" / "a.txt")]["outcome"] == "collected"
    text = cli(case, "collect", "--reason", "again", tmp_path)
    assert text.returncode == 0
    assert f"Note: {case.dir} lies in this case's own folder: not collected" in text.stdout


@pytest.mark.parametrize("inside", ["store", "custody.db", "store/../custody.db"])
def test_a_path_in_the_case_named_directly_is_excluded(case: Case, inside: str) -> None:
    summary = ok_json(case, "collect", "--reason", "r", case.dir / inside, "--json")
    assert [it["outcome"] for it in summary["items"]] == ["excluded"]
    assert summary["new_objects"] == 0


def test_the_case_reached_through_a_symlinked_name_is_still_excluded(
    case: Case, tmp_path: Path
) -> None:
    """Attack: name the case's store through another name for its folder."""
    alias = tmp_path / "alias"
    alias.symlink_to(case.dir)
    summary = ok_json(case, "collect", "--reason", "r", alias / "store", "--json")
    assert [it["outcome"] for it in summary["items"]] == ["excluded"]
    assert summary["new_objects"] == 0
    # the symlink itself, met in a walk, is recorded as a symlink and never followed
    summary = ok_json(case, "collect", "--reason", "r", alias, "--json")
    assert [it["outcome"] for it in summary["items"]] == ["symlink"]


def test_the_case_under_another_name_met_in_a_walk_is_excluded(case: Case, tmp_path: Path) -> None:
    """A bind-like second name (a hard-to-spot path) is matched by device and inode."""
    other = tmp_path / "walk"
    other.mkdir()
    with Ledger.open(case.dir) as ledger:
        rules = collect_mod.WalkRules(case_dir=os.fsencode(ledger.case_dir))
    st = os.stat(case.dir)
    assert rules.excluded(b"x", b"x", st, st.st_dev) == {"rule": "case-folder"}


# -- --exclude ------------------------------------------------------------------


def test_exclude_matches_names_and_paths_relative_to_the_named_directory(
    case: Case, tmp_path: Path
) -> None:
    ev = tree(tmp_path)
    summary = ok_json(
        case,
        "collect",
        "--reason",
        "r",
        ev,
        "--exclude",
        "*.log",
        "--exclude",
        "skip",
        "--json",
    )
    out = {it["path"].removeprefix(str(ev)): it for it in summary["items"]}
    assert {k: v["outcome"] for k, v in out.items()} == {
        "": "directory",
        "/a.txt": "collected",
        "/app.log": "excluded",
        "/skip": "excluded",  # not descended into: skip/c.txt is not reached
        "/sub": "directory",
        "/sub/b.log": "excluded",
        "/sub/keep.txt": "collected",
    }
    assert out["/skip"]["excluded_by"] == {"rule": "exclude", "pattern": "skip"}
    assert out["/app.log"]["excluded_by"] == {"rule": "exclude", "pattern": "*.log"}
    (start,) = [b["data"] for b in bodies(case) if b["type"] == "collection.start"]
    assert start["exclude"] == ["*.log", "skip"]
    assert cli(case, "verify").returncode == 0
    assert_bodies_match_schema(case)


def test_exclude_with_a_slash_matches_the_relative_path_only(case: Case, tmp_path: Path) -> None:
    ev = tree(tmp_path)
    summary = ok_json(case, "collect", "--reason", "r", ev, "--exclude", "sub/*.log", "--json")
    out = {it["path"].removeprefix(str(ev)): it["outcome"] for it in summary["items"]}
    assert out["/sub/b.log"] == "excluded"
    assert out["/app.log"] == "collected"


def test_a_named_path_is_never_excluded_by_a_glob(case: Case, tmp_path: Path) -> None:
    ev = tree(tmp_path)
    summary = ok_json(
        case, "collect", "--reason", "r", ev / "app.log", "--exclude", "*.log", "--json"
    )
    assert [it["outcome"] for it in summary["items"]] == ["collected"]


@pytest.mark.parametrize("glob", ["", "a\x00b"])
def test_a_bad_exclude_glob_is_refused_before_anything_is_written(
    case: Case, tmp_path: Path, glob: str
) -> None:
    ev = tree(tmp_path)
    if "\x00" in glob:  # argv cannot carry NUL: the library refuses it
        with pytest.raises(collect_mod.UsageError):
            collect_mod.WalkRules((glob,))
        return
    proc = cli(case, "collect", "--reason", "r", ev, "--exclude", glob)
    assert proc.returncode == 2
    assert "--exclude needs a non-empty glob" in one_error_line(proc)
    assert not [b for b in bodies(case) if b["type"].startswith("collect")]


def test_hostile_names_are_matched_as_bytes(case: Case, tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    bad = os.fsencode(str(ev)) + b"/caf\xe9[1].log"
    with open(bad, "wb") as f:
        f.write(b"x")
    (ev / "-rf *").write_text("y")
    summary = ok_json(
        case, "collect", "--reason", "r", ev, "--exclude", "*.log", "--exclude", "-rf [*]", "--json"
    )
    outcomes = sorted(it["outcome"] for it in summary["items"])
    assert outcomes == ["directory", "excluded", "excluded"]


# -- --one-file-system ---------------------------------------------------------------


def test_one_file_system_does_not_cross_a_mount_point(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory on another device (a mount point, simulated by its lstat) is
    recorded as excluded and not descended into; without the option it is walked."""
    ev = tree(tmp_path)
    real = os.lstat
    hidden = ["st_atime", "st_mtime", "st_ctime", "st_atime_ns", "st_mtime_ns", "st_ctime_ns"]
    hidden += ["st_blksize", "st_blocks", "st_rdev"]

    def lstat(path: Any, *, dir_fd: int | None = None) -> os.stat_result:
        st = real(path, dir_fd=dir_fd)
        if path in (b"sub", "sub"):
            seq = list(st)
            seq[2] = st.st_dev + 1
            return os.stat_result(seq, {k: getattr(st, k) for k in hidden})
        return st

    monkeypatch.setattr(os, "lstat", lstat)
    summary = ok_json(case, "collect", "--reason", "r", ev, "--one-file-system", "--json")
    out = {it["path"].removeprefix(str(ev)): it for it in summary["items"]}
    assert out["/sub"]["outcome"] == "excluded"
    assert out["/sub"]["excluded_by"] == {"rule": "one-file-system"}
    assert "/sub/b.log" not in out and out["/a.txt"]["outcome"] == "collected"
    (start,) = [b["data"] for b in bodies(case) if b["type"] == "collection.start"]
    assert start["one_file_system"] is True
    summary = ok_json(case, "collect", "--reason", "r", ev, "--json")
    assert {it["outcome"] for it in summary["items"]} == {"directory", "collected"}
    assert_bodies_match_schema(case)


# -- --reason ---------------------------------------------------------------------


@pytest.mark.parametrize("reason", [None, "", "   ", "\t"])
def test_collect_without_a_reason_is_refused(
    case: Case, tmp_path: Path, reason: str | None
) -> None:
    ev = tree(tmp_path)
    args = [] if reason is None else ["--reason", reason]
    proc = cli(case, "collect", ev, *args)
    assert proc.returncode == 2
    assert one_error_line(proc) == (
        "custody: error: --reason is required: say why these items are collected"
    )
    assert not [b for b in bodies(case) if b["type"].startswith("collect")]


def test_the_library_refuses_a_blank_reason(case: Case, tmp_path: Path) -> None:
    from custody.keys import load_signer

    signer = load_signer(case.key, os.environ["CUSTODY_PASSPHRASE"].encode())
    with Ledger.open(case.dir) as ledger, pytest.raises(collect_mod.UsageError):
        collect_mod.collect(
            ledger, signer, [str(tree(tmp_path))], reason=" ", algorithms=["sha256"]
        )


def test_resume_takes_no_reason_nor_walk_options(case: Case) -> None:
    for extra in (["--reason", "x"], ["--exclude", "*"], ["--one-file-system"]):
        proc = cli(case, "collect", "--resume", *extra)
        assert proc.returncode == 2
        assert "--resume keeps the interrupted collection's reason" in one_error_line(proc)


# -- Ctrl-C -------------------------------------------------------------------------


def test_ctrl_c_names_collect_resume_and_resume_keeps_the_walk_rules(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ev = tree(tmp_path)
    real_one = collect_mod.Collector._one
    calls = {"n": 0}

    def one(self: collect_mod.Collector, e: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real_one(self, e)

    monkeypatch.setattr(collect_mod.Collector, "_one", one)
    proc = cli(case, "collect", "--reason", "r", ev, "--exclude", "*.log")
    assert proc.returncode == 130
    line = one_error_line(proc)
    assert line.startswith("custody: error: interrupted: collection ")
    assert line.endswith(
        "stopped after 2 item(s), all recorded; run 'custody collect --resume' to finish it"
    )
    monkeypatch.setattr(collect_mod.Collector, "_one", real_one)
    summary = ok_json(case, "collect", "--resume", "--json")
    assert summary["skipped"] == 2
    every = collects(case)
    assert every[str(ev / "sub" / "b.log")]["outcome"] == "excluded"  # the run's own rules
    assert every[str(ev / "sub" / "b.log")]["excluded_by"]["pattern"] == "*.log"
    assert cli(case, "verify").returncode == 0


# -- no libmagic ----------------------------------------------------------------------


def test_collect_without_libmagic_records_a_skipped_check_and_untyped_items(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "magic", None)  # import magic raises ImportError
    ev = tree(tmp_path)
    proc = cli(case, "collect", "--reason", "r", ev)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1].startswith("Recorded 8 items (5 collected, 3 directory)")
    assert any(
        "libmagic1" in ln and ln.startswith("Note: stored objects were not typed") for ln in lines
    )
    (st,) = [b["data"] for b in bodies(case) if b["type"] == "selftest"]
    assert st["ok"] is True and st["failed"] == 0 and st["skipped"] >= 1
    skipped = [c for c in st["checks"] if c.get("skipped")]
    assert skipped and all(c["name"].startswith("magic.") for c in skipped)
    assert all("libmagic1" in c["detail"] and c["ok"] is False for c in skipped)
    data = collects(case)[str(ev / "a.txt")]
    assert data["outcome"] == "collected" and "mime" not in data and "magic" not in data
    (end,) = [b["data"] for b in bodies(case) if b["type"] == "collection.end"]
    assert "libmagic1" in end["untyped"]
    assert cli(case, "verify").returncode == 0
    assert_bodies_match_schema(case)
    listed = ok_json(case, "list", "--json")
    assert {it["mime"] for it in listed} == {None}
    out = tmp_path / "b.zip"
    assert cli(case, "bundle", "export", "--out", out, "ITEM-2").returncode == 0
    assert (
        cli(case, "bundle", "verify", out, "--trust", case.key.with_suffix(".pub")).returncode == 0
    )


def test_selftest_command_without_libmagic_passes_with_skips(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "magic", None)
    proc = run("selftest")
    assert proc.returncode == 0, proc.stdout
    assert "  skip magic." in proc.stdout
    assert "PASSED (" in proc.stdout and "skipped)" in proc.stdout


# -- keys: default kept, key use ----------------------------------------------------------


def test_key_new_keeps_the_existing_default(case: Case, tmp_path: Path) -> None:
    lee = tmp_path / "lee.pem"
    proc = case.run("key", "new", "--name", "Lee Okafor", "--role", "counsel", "--out", lee)
    assert proc.returncode == 0
    assert "Your default signing key is still" in proc.stdout
    proc = case("collect", "--reason", "r", tree(tmp_path), "--json", env={"CUSTODY_KEY": ""})
    # still Dana's key: Lee's key is not attested in the case and was not made the default
    assert proc.returncode == 0, proc.stderr
    signers = {b["signer"] for b in bodies(case) if b["type"] == "collect"}
    assert len(signers) == 1


def test_key_new_default_flag_and_key_use_switch_the_default(run: Run, tmp_path: Path) -> None:
    new_key(run, tmp_path / "dana.pem", "Dana Reyes", "collector")
    made = json.loads(
        run(
            "key",
            "new",
            "--name",
            "Lee",
            "--role",
            "counsel",
            "--out",
            tmp_path / "lee.pem",
            "--json",
            check=True,
        ).stdout
    )
    assert made["default"] is False and made["default_key_file"] == str(tmp_path / "dana.pem")
    made = json.loads(
        run(
            "key",
            "new",
            "--name",
            "Sam",
            "--role",
            "examiner",
            "--out",
            tmp_path / "sam.pem",
            "--default",
            "--json",
            check=True,
        ).stdout
    )
    assert made["default"] is True and made["default_key_file"] == str(tmp_path / "sam.pem")
    proc = run("key", "use", tmp_path / "dana.pem", check=True)
    assert proc.stdout.startswith(f"Default signing key is now {tmp_path / 'dana.pem'}: Dana Reyes")
    cfg = Path(run.env["CUSTODY_CONFIG_DIR"]) / "default-key"
    assert cfg.read_text().strip() == str(tmp_path / "dana.pem")


def test_key_new_replaces_a_default_whose_file_is_gone(run: Run, tmp_path: Path) -> None:
    new_key(run, tmp_path / "old.pem", "Old", "collector")
    (tmp_path / "old.pem").unlink()
    proc = run("key", "new", "--name", "New", "--role", "collector", "--out", tmp_path / "n.pem")
    assert "This is now your default signing key." in proc.stdout


@pytest.mark.parametrize("what", ["public", "garbage", "missing", "wrong-passphrase", "dir"])
def test_key_use_refuses_what_is_not_your_key_and_keeps_the_default(
    run: Run, tmp_path: Path, what: str
) -> None:
    new_key(run, tmp_path / "dana.pem", "Dana Reyes", "collector")
    cfg = Path(run.env["CUSTODY_CONFIG_DIR"]) / "default-key"
    before = cfg.read_text()
    target = {
        "public": tmp_path / "dana.pub",
        "garbage": tmp_path / "garbage.pem",
        "missing": tmp_path / "nope.pem",
        "wrong-passphrase": tmp_path / "dana.pem",
        "dir": tmp_path,
    }[what]
    (tmp_path / "garbage.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n")
    (tmp_path / "garbage.pem").chmod(0o600)
    env = {"CUSTODY_PASSPHRASE": "wrong horse"} if what == "wrong-passphrase" else None
    proc = run("key", "use", target, env=env)
    assert proc.returncode == 2, proc.stdout
    one_error_line(proc)
    assert cfg.read_text() == before


def test_key_new_default_and_no_default_contradict(run: Run, tmp_path: Path) -> None:
    proc = run(
        "key",
        "new",
        "--name",
        "X",
        "--role",
        "r",
        "--out",
        tmp_path / "x.pem",
        "--default",
        "--no-default",
    )
    assert proc.returncode == 2
    assert one_error_line(proc) == (
        "custody: error: --default and --no-default contradict each other"
    )
    assert not (tmp_path / "x.pem").exists()


# -- quiet output, --jsonl ---------------------------------------------------------------


def many(root: Path, n: int) -> Path:
    d = root / "many"
    d.mkdir()
    for i in range(n):
        (d / f"f{i:03d}").write_text(str(i))
    return d


def test_few_items_are_listed_and_the_summary_comes_last(case: Case, tmp_path: Path) -> None:
    proc = cli(case, "collect", "--reason", "r", many(tmp_path, 5), "--no-selftest")
    lines = proc.stdout.splitlines()
    assert len([ln for ln in lines if ln.startswith("  ITEM-")]) == 6
    assert lines[-1].startswith("Recorded 6 items (5 collected, 1 directory)")


def test_many_items_are_not_listed_unless_verbose(case: Case, tmp_path: Path) -> None:
    d = many(tmp_path, 25)
    proc = cli(case, "collect", "--reason", "r", d, "--no-selftest")
    lines = proc.stdout.splitlines()
    assert not [ln for ln in lines if ln.startswith("  ITEM-")]
    assert "  (26 items not listed: 'custody list' shows them" in proc.stdout
    assert lines[-1].startswith("Recorded 26 items (25 collected, 1 directory)")
    proc = cli(case, "collect", "--reason", "r", d, "--verbose")
    lines = proc.stdout.splitlines()
    assert len([ln for ln in lines if ln.startswith("  ITEM-")]) == 26
    assert lines[-1].startswith("Recorded 26 items")
    (tmp_path / "x").mkdir()
    proc = cli(case, "collect", "--reason", "r", many(tmp_path / "x", 3), "--quiet")
    assert proc.stdout.splitlines()[-1].startswith("Recorded 4 items")
    assert "ITEM-" not in proc.stdout


def test_jsonl_streams_one_object_per_item_then_the_summary(case: Case, tmp_path: Path) -> None:
    d = many(tmp_path, 30)
    proc = cli(case, "collect", "--reason", "r", d, "--jsonl", "--no-selftest")
    assert proc.returncode == 0
    objs = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert len(objs) == 32
    assert [o["id"] for o in objs[:-1]] == [f"ITEM-{i}" for i in range(1, 32)]
    summary = objs[-1]["summary"]
    assert summary["items"] == 31 and summary["counts"] == {"collected": 30, "directory": 1}


def test_json_and_jsonl_are_alternatives(case: Case, tmp_path: Path) -> None:
    proc = cli(case, "collect", "--reason", "r", tmp_path, "--json", "--jsonl")
    assert proc.returncode == 2
    assert one_error_line(proc) == "custody: error: --json and --jsonl are alternatives: give one"


# -- the ETA ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_eta_is_hidden_for_the_first_seconds() -> None:
    clock = Clock()
    m = EtaMeter(1_000_000, clock=clock)
    clock.t += 0.1
    m.add(500_000)  # a burst at the start (cache, small files) says nothing yet
    assert m.rate() is None and m.eta() is None
    clock.t += 2.8
    m.add(1)
    assert m.eta() is None
    clock.t += 0.2
    m.add(1)
    assert m.eta() is not None


def test_eta_follows_the_moving_rate_not_the_average() -> None:
    clock = Clock()
    m = EtaMeter(10_000_000, window=10.0, clock=clock)
    for _ in range(20):  # 20 s at 100 kB/s
        clock.t += 1
        m.add(100_000)
    assert m.rate() == pytest.approx(100_000)
    for _ in range(10):  # then 10 s at 1 MB/s: the window holds only these
        clock.t += 1
        m.add(1_000_000)
    assert m.rate() == pytest.approx(1_000_000)
    left = 10_000_000 - 2_000_000 - 10_000_000 // 1  # negative: nothing left
    assert m.eta() == pytest.approx(max(0.0, left / 1_000_000))
    m2 = EtaMeter(10_000_000, window=10.0, clock=clock)
    clock.t += 5
    m2.add(1_000_000)
    assert m2.eta() == pytest.approx(9_000_000 / 200_000)


def test_eta_with_no_progress_is_not_shown() -> None:
    clock = Clock()
    m = EtaMeter(100, clock=clock)
    clock.t += 60
    m.add(0)
    assert m.eta() is None


class _TtyStdin:
    def isatty(self) -> bool:
        return True


class _Sys:
    """custody_cli.collect_cmds's view of sys with a terminal on stdin (the prompt itself
    reads what the test feeds it)."""

    stdin = _TtyStdin()

    def __getattr__(self, name: str) -> Any:
        return getattr(sys, name)


@pytest.mark.parametrize(("typed", "code"), [("seized under warrant 42\n", 0), ("   \n", 2)])
def test_reason_is_asked_for_on_a_terminal(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, typed: str, code: int
) -> None:
    import custody_cli.collect_cmds as main

    monkeypatch.setattr(main, "sys", _Sys())
    ev = tree(tmp_path)
    proc = case("collect", ev / "a.txt", "--no-selftest", input=typed)
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    if code == 0:
        (start,) = [b["data"] for b in bodies(case) if b["type"] == "collection.start"]
        assert start["reason"] == "seized under warrant 42"
    else:
        assert proc.stderr.splitlines()[-1] == (
            "custody: error: --reason is required: say why these items are collected"
        )
