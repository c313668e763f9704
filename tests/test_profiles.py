"""Issue 17 §1: collection profiles (``collect --profile NAME|FILE``, ``--root``,
``profile list|show``).

Every built-in profile passes the schema and the checks of custody/profiles.py;
a user's own file passes the same ones (bad file: exit 2, one line).  Globs are
re-based under ``--root`` (windows-volume on a synthetic mounted volume), each
entry's outcome is a signed ``profile.entry`` event ("nothing matched" included),
size caps and excludes are recorded, and a hostile profile, volume or option
gets one line and exit 2, or is recorded without escaping the root.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Case, Run, cli, ok_json, one_error_line
from jsonschema import Draft202012Validator
from tampering import bypass, q

import custody.profiles as profiles_mod
from custody.canonical import canonical_json_any
from custody.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]
PROFILE_SCHEMA = Draft202012Validator(
    json.loads((ROOT / "schemas/profile.schema.json").read_text())
)
BODY = Draft202012Validator(json.loads((ROOT / "schemas/event-body.schema.json").read_text()))
BUILT_IN = ["linux-full", "linux-triage", "macos-triage", "windows-volume"]


def bodies(case: Case) -> list[dict[str, Any]]:
    with Ledger.open(case.dir) as ledger:
        return [json.loads(ev.body) for ev in ledger.events()]


def of_type(case: Case, t: str) -> list[dict[str, Any]]:
    return [b["data"] for b in bodies(case) if b["type"] == t]


def collected(case: Case) -> dict[str, dict[str, Any]]:
    return {d["path"]["display"]: d for d in of_type(case, "collect")}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_profile(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def profile_doc(entries: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"v": 1, "name": "mine", "description": "a test profile", "entries": entries, **extra}


def assert_schema_clean(case: Case) -> None:
    for b in bodies(case):
        errors = [e.message for e in BODY.iter_errors(b)]
        assert not errors, (b["type"], errors)


# -- built-in profiles -----------------------------------------------------------------


@pytest.mark.parametrize("name", BUILT_IN)
def test_built_in_profile_is_valid(name: str) -> None:
    doc = json.loads((ROOT / "custody" / "profiles" / f"{name}.json").read_text())
    assert [e.message for e in PROFILE_SCHEMA.iter_errors(doc)] == []
    prof = profiles_mod.load_profile(name)  # and the checks beyond the schema
    assert prof.name == name and prof.source == "built-in"
    assert prof.sha256 == sha((ROOT / "custody" / "profiles" / f"{name}.json").read_bytes())


def test_built_ins_shipped_as_package_data() -> None:
    assert "profiles/*.json" in (ROOT / "setup.cfg").read_text()
    assert profiles_mod.builtin_names() == BUILT_IN


def test_linux_triage_covers_the_issue() -> None:
    prof = profiles_mod.load_profile("linux-triage")
    names = [e["name"] for e in prof.entries]
    for want in (
        "auth-logs",
        "system-logs",
        "shell-histories",
        "cron",
        "systemd-units",
        "ssh",
        "sudoers",
        "accounts",
        "web-server-logs",
        "tmp-executables",
        "recent-binaries",
    ):
        assert want in names
    assert [s["step"] for s in prof.steps if s["step"] != "command"] == [
        "processes",
        "sockets",
        "users",
        "modules",
        "mounts",
        "routes",
        "executables",
        "memory",
    ]
    globs = {g for e in prof.entries for g in e["paths"]}
    assert {"/etc/shadow", "/etc/sudoers", "/dev/shm", "/root/.ssh"} <= globs


def test_profile_list_and_show(run: Run, tmp_path: Path) -> None:
    rows = ok_json(run, "profile", "list", "--json")
    assert [r["name"] for r in rows] == BUILT_IN
    assert rows[1]["volatile"][0] == "processes"
    shown = run("profile", "show", "linux-triage", check=True).stdout
    assert "1. processes" in shown and "18. executables" in shown and "19. memory" in shown
    assert "7. command: ps auxwwf (timeout 15 s)" in shown
    assert shown.index("1. processes") < shown.index("auth-logs")
    mine = write_profile(tmp_path / "mine.json", profile_doc([_entry("e1", ["/x/*"])]))
    doc = ok_json(run, "profile", "show", str(mine), "--json")
    assert doc["sha256"] == sha(mine.read_bytes()) and doc["document"]["name"] == "mine"


def _entry(name: str, paths: list[str], **kw: Any) -> dict[str, Any]:
    return {"name": name, "reason": f"reason {name}", "paths": paths, **kw}


# -- a user's profile on a tree, with --root ----------------------------------------------


def test_user_profile_with_root(case: Case, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    (vol / "etc" / "cron.d").mkdir(parents=True)
    (vol / "etc" / "passwd").write_bytes(b"root:x:0:0\n")
    (vol / "etc" / "cron.d" / "job").write_bytes(b"* * * * * evil\n")
    (vol / "etc" / "cron.d" / "big").write_bytes(b"x" * 5000)
    (vol / "etc" / "cron.d" / "skip.bak").write_bytes(b"old\n")
    (vol / "var").mkdir()
    doc = profile_doc(
        [
            _entry("accounts", ["/etc/passwd", "/etc/shadow"]),
            _entry("cron", ["/etc/cron.d"], max_bytes=4096, exclude=["/etc/cron.d/*.bak"]),
            _entry("web", ["/var/log/nginx/**"]),
        ]
    )
    prof = write_profile(tmp_path / "mine.json", doc)
    out = ok_json(
        case, "collect", "--profile", str(prof), "--root", str(vol), "--reason", "r", "--json"
    )
    assert out["status"] == "complete"
    got = collected(case)
    assert set(got) == {f"{vol}/etc/passwd", f"{vol}/etc/cron.d/job"}
    assert got[f"{vol}/etc/passwd"]["digests"]["sha256"] == sha(b"root:x:0:0\n")
    assert got[f"{vol}/etc/cron.d/job"]["digests"]["sha256"] == sha(b"* * * * * evil\n")
    (pr,) = of_type(case, "profile.run")
    assert pr["profile"] == "mine" and pr["sha256"] == sha(prof.read_bytes())
    assert pr["document"] == doc and pr["root"]["display"] == str(vol)
    entries = {e["entry"]: e for e in of_type(case, "profile.entry")}
    assert entries["accounts"]["outcome"] == "matched" and entries["accounts"]["matched"] == 1
    cron = entries["cron"]
    assert cron["matched"] == 1 and cron["reason"] == "reason cron"
    assert cron["over_max_bytes"] == {
        "count": 1,
        "listed": [
            {
                "path": {
                    "hex": os.fsencode(f"{vol}/etc/cron.d/big").hex(),
                    "display": f"{vol}/etc/cron.d/big",
                },
                "size": 5000,
            }
        ],
    }
    assert cron["excluded"]["listed"][0]["pattern"] == "/etc/cron.d/*.bak"
    assert entries["web"]["outcome"] == "nothing matched" and entries["web"]["matched"] == 0
    assert_schema_clean(case)
    assert cli(case, "verify").returncode == 0


def test_entry_events_precede_file_items_and_follow_profile_run(case: Case, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "a").write_text("a")
    prof = write_profile(
        tmp_path / "p.json", profile_doc([_entry("a", ["/a"]), _entry("b", ["/b"])])
    )
    cli(case, "collect", "--profile", str(prof), "--root", str(vol), "--reason", "r")
    types = [b["type"] for b in bodies(case)]
    start = types.index("collection.start")
    assert types[start + 1] == "profile.run"
    assert types[start + 2 : start + 4] == ["profile.entry", "profile.entry"]
    end = types.index("collection.end", start)  # then only the objects' describe events
    assert types[start + 4] == "collect" and set(types[end + 1 :]) <= {"describe"}


def test_text_output_names_each_entry(case: Case, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "a").write_text("a")
    prof = write_profile(
        tmp_path / "p.json", profile_doc([_entry("a", ["/a"]), _entry("b", ["/b"])])
    )
    proc = cli(case, "collect", "--profile", str(prof), "--root", str(vol), "--reason", "r")
    assert proc.returncode == 0, proc.stderr
    assert "Profile entry a: matched (1 path(s))" in proc.stdout
    assert "Profile entry b: nothing matched (0 path(s))" in proc.stdout


# -- windows-volume on a synthetic mounted volume ------------------------------------------


def windows_tree(vol: Path) -> dict[str, bytes]:
    """A mounted Windows volume whose names vary in case as real ones do."""
    files = {
        "WINDOWS/System32/config/SAM": b"sam hive",
        "WINDOWS/System32/config/SYSTEM": b"system hive",
        "WINDOWS/System32/config/SYSTEM.LOG1": b"system log1",
        "WINDOWS/System32/config/software": b"software hive",
        "WINDOWS/System32/config/unrelated.txt": b"no",
        "Windows/System32/winevt/Logs/Security.evtx": b"evtx",
        "WINDOWS/Prefetch/CMD.EXE-4A81B364.pf": b"pf",
        "WINDOWS/AppCompat/Programs/Amcache.hve": b"amcache",
        "Users/alice/NTUSER.DAT": b"ntuser",
        "Users/alice/AppData/Local/Microsoft/Windows/UsrClass.dat": b"usrclass",
        "Users/alice/AppData/Local/Google/Chrome/User Data/Default/History": b"chrome",
        "WINDOWS/System32/Tasks/Microsoft/Evil": b"<Task/>",
    }
    for rel, data in files.items():
        p = vol / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return {k: v for k, v in files.items() if not k.endswith("unrelated.txt")}


def test_windows_volume_on_a_synthetic_volume(case: Case, tmp_path: Path) -> None:
    vol = tmp_path / "mnt" / "c"
    want = windows_tree(vol)
    os.symlink("/etc", vol / "Users" / "evil")  # absolute link: must not lead out
    out = ok_json(
        case,
        "collect",
        "--profile",
        "windows-volume",
        "--root",
        str(vol),
        "--reason",
        "volume",
        "--json",
    )
    assert out["status"] == "complete"
    got = collected(case)
    assert {p: d["digests"]["sha256"] for p, d in got.items()} == {
        f"{vol}/{rel}": sha(data) for rel, data in want.items()
    }
    assert not any(p.startswith("/etc") for p in got)
    entries = {e["entry"]: e for e in of_type(case, "profile.entry")}
    assert entries["registry-hives"]["matched"] == 4
    assert entries["srum"]["outcome"] == "nothing matched"
    assert entries["powershell-history"]["outcome"] == "nothing matched"
    assert of_type(case, "volatile.step") == []  # windows-volume has no volatile steps
    assert_schema_clean(case)


def test_linux_triage_with_root_skips_volatile_steps(case: Case, tmp_path: Path) -> None:
    vol = tmp_path / "img"
    (vol / "etc").mkdir(parents=True)
    (vol / "etc" / "shadow").write_text("root:!:1::::::\n")
    proc = cli(case, "collect", "--profile", "linux-triage", "--root", str(vol), "--reason", "r")
    assert proc.returncode == 0, proc.stderr
    steps = of_type(case, "volatile.step")
    assert [s["step"] for s in steps] == [
        s["step"] for s in profiles_mod.load_profile("linux-triage").steps
    ]
    assert {s["outcome"] for s in steps} == {"skipped"}
    assert all("--root is not /" in s["reason"] for s in steps)
    assert set(collected(case)) == {f"{vol}/etc/shadow"}
    nothing = [e["entry"] for e in of_type(case, "profile.entry") if e["matched"] == 0]
    assert "sudoers" in nothing and "accounts" not in nothing


# -- the glob engine --------------------------------------------------------------------


def test_globstar_and_excludes(tmp_path: Path) -> None:
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "x.log").write_text("1")
    (tmp_path / "a" / "b" / "y.log").write_text("2")
    (tmp_path / "a" / "b" / "c" / "z.log").write_text("3")
    (tmp_path / "a" / "b" / "c" / "z.txt").write_text("4")
    root = os.fsencode(tmp_path)
    res = profiles_mod.expand_entry(root, _entry("e", ["/a/**/*.log"]))
    assert sorted(res.paths) == sorted(
        os.fsencode(tmp_path / p) for p in ("a/x.log", "a/b/y.log", "a/b/c/z.log")
    )
    res = profiles_mod.expand_entry(root, _entry("e", ["/a/**"], exclude=["/a/b/c"]))
    assert sorted(res.paths) == sorted(os.fsencode(tmp_path / p) for p in ("a/x.log", "a/b/y.log"))
    assert res.excluded == [(os.fsencode(tmp_path / "a/b/c"), "/a/b/c")]


def test_max_files_truncates_and_says_so(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}").write_text(str(i))
    res = profiles_mod.expand_entry(os.fsencode(tmp_path), _entry("e", ["/*"], max_files=3))
    assert len(res.paths) == 3 and res.truncated
    data = profiles_mod.entry_event_data("r", _entry("e", ["/*"]), res)
    assert data["truncated_at_max_files"] is True


def test_modified_within_and_executable(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.write_text("o")
    os.utime(old, (0, 0))  # ctime stays now: a timestomped file is still caught
    new = tmp_path / "new"
    new.write_text("n")
    elf = tmp_path / "dropped"
    elf.write_bytes(b"\x7fELF" + b"\0" * 12)  # no execute bit: run through ld.so
    script = tmp_path / "run.sh"
    script.write_text("echo\n")
    script.chmod(0o755)
    root = os.fsencode(tmp_path)
    res = profiles_mod.expand_entry(root, _entry("e", ["/*"], executable=True))
    assert sorted(res.paths) == sorted([os.fsencode(elf), os.fsencode(script)])
    res = profiles_mod.expand_entry(
        root, _entry("e", ["/*"], modified_within_days=1), now=time.time() + 10 * 86400
    )
    assert res.paths == []  # ten days from now, nothing here changed within a day
    res = profiles_mod.expand_entry(root, _entry("e", ["/*"], modified_within_days=1))
    assert os.fsencode(old) in res.paths  # mtime 1970, ctime now


def test_devices_are_never_read(tmp_path: Path) -> None:
    res = profiles_mod.expand_entry(b"/", _entry("e", ["/dev/null", "/dev/zero"]))
    assert res.paths == [] and res.devices == [b"/dev/null", b"/dev/zero"]


def test_case_folder_under_the_root_is_recorded_excluded(case: Case, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("k")
    prof = write_profile(tmp_path / "p.json", profile_doc([_entry("all", ["/**"])]))
    proc = cli(case, "collect", "--profile", str(prof), "--root", str(tmp_path), "--reason", "r")
    assert proc.returncode == 0, proc.stderr
    got = collected(case)
    assert got[str(case.dir)]["outcome"] == "excluded"
    assert got[str(case.dir)]["excluded_by"] == {"rule": "case-folder"}
    assert not any(p.startswith(str(case.dir) + "/") for p in got)
    assert got[f"{tmp_path}/keep.txt"]["outcome"] == "collected"


# -- hostile profiles, volumes and options ------------------------------------------------

BAD_DOCS: list[tuple[str, Any, str]] = [
    ("traversal", profile_doc([_entry("e", ["/../../etc/shadow"])]), "'..'"),
    ("dot", profile_doc([_entry("e", ["/a/./b"])]), "'.'"),
    ("relative", profile_doc([_entry("e", ["etc/shadow"])]), "does not match"),
    ("empty-component", profile_doc([_entry("e", ["/a//b"])]), "empty"),
    ("bracket", profile_doc([_entry("e", ["/a/[bc"])]), "unclosed"),
    ("globstar-in-name", profile_doc([_entry("e", ["/a/x**"])]), "whole component"),
    ("too-many-globstars", profile_doc([_entry("e", ["/**/a/**/b/**/c/**/d/**"])]), "more than"),
    ("huge-cap", profile_doc([_entry("e", ["/a"], max_bytes=10**30)]), "max_bytes"),
    ("negative-cap", profile_doc([_entry("e", ["/a"], max_bytes=-1)]), "max_bytes"),
    ("float-cap", profile_doc([_entry("e", ["/a"], max_bytes=1.5)]), "max_bytes"),
    ("huge-max-files", profile_doc([_entry("e", ["/a"], max_files=10**12)]), "max_files"),
    ("nul", profile_doc([_entry("e", ["/a\x00b"])]), "does not match"),
    ("unknown-key", {**profile_doc([]), "run": "rm -rf /"}, "run"),
    ("no-reason", profile_doc([{"name": "e", "paths": ["/a"]}]), "reason"),
    ("empty-reason", profile_doc([_entry("e", ["/a"], reason="")]), "reason"),
    ("dup-entry", profile_doc([_entry("e", ["/a"]), _entry("e", ["/b"])]), "repeated"),
    (
        "steps-out-of-order",
        profile_doc([], volatile=[{"step": "mounts"}, {"step": "processes"}]),
        "order of volatility",
    ),
    ("repeated-step", profile_doc([], volatile=[{"step": "users"}, {"step": "users"}]), "repeated"),
    ("unknown-step", profile_doc([], volatile=[{"step": "shell"}]), "volatile/0/step"),
    (
        "unknown-acquirer",
        profile_doc([], volatile=[{"step": "memory", "acquirers": ["/bin/sh"]}]),
        "acquirers",
    ),
    ("bad-name", {**profile_doc([]), "name": "../x"}, "name"),
    ("not-an-object", [1, 2], "not of type 'object'"),
]


@pytest.mark.parametrize("label,doc,needle", BAD_DOCS, ids=[b[0] for b in BAD_DOCS])
def test_hostile_profile_refused(
    case: Case, tmp_path: Path, label: str, doc: Any, needle: str
) -> None:
    prof = write_profile(tmp_path / "bad.json", doc)
    before = len(bodies(case))
    proc = cli(case, "collect", "--profile", str(prof), "--root", str(tmp_path), "--reason", "r")
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert needle in line and "bad.json" in line
    assert len(bodies(case)) == before  # nothing written
    proc = cli(case, "profile", "show", str(prof))
    assert proc.returncode == 2 and needle in one_error_line(proc)


@pytest.mark.parametrize(
    "raw,needle",
    [
        (b"{not json", "not JSON"),
        (b'{"v": 1, "x": NaN}', "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 100000, "not JSON"),
        (b" " * (2 << 20), "larger than"),
    ],
    ids=["syntax", "nan", "not-utf8", "deep", "huge"],
)
def test_unparseable_profile_file(case: Case, tmp_path: Path, raw: bytes, needle: str) -> None:
    (tmp_path / "bad.json").write_bytes(raw)
    proc = cli(case, "collect", "--profile", str(tmp_path / "bad.json"), "--reason", "r")
    assert proc.returncode == 2 and needle in one_error_line(proc)


def test_profile_fifo_does_not_hang(case: Case, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "p.json")
    proc = cli(
        case, "collect", "--profile", str(tmp_path / "p.json"), "--reason", "r", process=True
    )
    assert proc.returncode == 2 and "not a regular file" in one_error_line(proc)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--profile", "no-such"], "no built-in profile named 'no-such' (built in: linux-full,"),
        (["--profile", "./missing.json"], "cannot read profile ./missing.json"),
        (["--profile", "linux-triage", "some/path"], "give no paths"),
        (["--root", "/"], "--root goes with --profile"),
        (["--profile", "linux-triage", "--root", "/nonexistent-root"], "--root /nonexistent-root"),
        (["--profile", "linux-triage", "--resume"], "--resume"),
    ],
)
def test_bad_options(case: Case, args: list[str], needle: str) -> None:
    proc = cli(case, "collect", "--reason", "r", *args)
    assert proc.returncode == 2
    assert needle in one_error_line(proc)


def test_hostile_names_on_a_volume(case: Case, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    odd = os.fsencode(vol) + b"/evil\x1b[2J\nname\xff.log"
    with open(odd, "wb") as f:
        f.write(b"odd")
    prof = write_profile(tmp_path / "p.json", profile_doc([_entry("logs", ["/*.log"])]))
    proc = cli(
        case, "collect", "--profile", str(prof), "--root", str(vol), "--reason", "r", "--verbose"
    )
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout
    (d,) = of_type(case, "collect")
    assert bytes.fromhex(d["path"]["hex"]) == odd and d["digests"]["sha256"] == sha(b"odd")


# -- someone with the case files but no key; someone swapping bytes ------------------------


def test_forged_profile_record_is_caught(case: Case, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "a").write_text("a")
    prof = write_profile(
        tmp_path / "p.json", profile_doc([_entry("a", ["/a"]), _entry("b", ["/b"])])
    )
    cli(case, "collect", "--profile", str(prof), "--root", str(vol), "--reason", "r")
    assert cli(case, "verify").returncode == 0
    with Ledger.open(case.dir) as ledger:
        (ev,) = [e for e in ledger.events() if e.type == "profile.entry" and '"b"' in e.body]
    body = json.loads(ev.body)
    body["data"]["outcome"] = "matched"  # pretend the entry found something
    body["data"]["matched"] = 3
    forged = canonical_json_any(body).decode()
    bypass(
        case.dir / "custody.db",
        "events",
        f"UPDATE events SET body = {q(forged)} WHERE seq = {ev.seq};",
    )
    proc = cli(case, "verify", "--json")
    assert proc.returncode == 1
    kinds = {(f["kind"], f["subject"]) for f in json.loads(proc.stdout)["findings"]}
    assert ("event-hash", f"event {ev.seq}") in kinds
    assert ("signature", f"event {ev.seq}") in kinds


# -- an interrupted profile run is resumed with its own profile -----------------------------


def test_resume_of_an_interrupted_profile_run(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vol = tmp_path / "vol"
    (vol / "logs").mkdir(parents=True)
    for i in range(3):
        (vol / "logs" / f"{i}.log").write_text(str(i))
    doc = profile_doc(
        [_entry("logs", ["/logs/*.log"])], volatile=[{"step": "mounts"}, {"step": "routes"}]
    )
    prof = write_profile(tmp_path / "p.json", doc)
    real = profiles_mod.ProfileRun.__call__

    def interrupted(self: Any, c: Any, roots: list[bytes]) -> list[bytes]:
        real(self, c, roots)
        raise KeyboardInterrupt  # Ctrl-C after the entries were recorded, before any file

    monkeypatch.setattr(profiles_mod.ProfileRun, "__call__", interrupted)
    proc = cli(case, "collect", "--profile", str(prof), "--root", str(vol), "--reason", "r")
    assert proc.returncode == 130 and "collect --resume" in proc.stderr
    monkeypatch.undo()
    (vol / "logs" / "0.log").unlink()  # gone meanwhile: no longer matched
    proc = cli(case, "collect", "--resume")
    assert proc.returncode == 0, proc.stderr
    got = collected(case)
    assert set(got) == {f"{vol}/logs/1.log", f"{vol}/logs/2.log"}
    runs = of_type(case, "profile.run")
    assert [r["volatile"] for r in runs] == ["not run", "not run"]  # --root is not /
    assert runs[0]["sha256"] == runs[1]["sha256"] == sha(prof.read_bytes())
    assert runs[0]["document"] == runs[1]["document"] == doc
    steps = of_type(case, "volatile.step")
    assert [s["step"] for s in steps] == ["mounts", "routes"]  # not again on resume
    assert {s["run"] for s in steps} == {runs[0]["run"]}
    assert cli(case, "verify").returncode == 0


def test_collect_exclude_applies_to_a_profile_run(case: Case, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    (vol / "logs" / "old").mkdir(parents=True)
    (vol / "logs" / "a.log").write_text("a")
    (vol / "logs" / "a.log.gz").write_text("gz")
    (vol / "logs" / "old" / "b.log").write_text("b")
    prof = write_profile(tmp_path / "p.json", profile_doc([_entry("logs", ["/logs"])]))
    proc = cli(
        case,
        "collect",
        "--profile",
        str(prof),
        "--root",
        str(vol),
        "--exclude",
        "*.gz",
        "--exclude",
        "logs/old",
        "--reason",
        "r",
    )
    assert proc.returncode == 0, proc.stderr
    assert set(collected(case)) == {f"{vol}/logs/a.log"}
    (entry,) = of_type(case, "profile.entry")
    assert sorted((x["path"]["display"], x["pattern"]) for x in entry["excluded"]["listed"]) == [
        (f"{vol}/logs/a.log.gz", "--exclude *.gz"),
        (f"{vol}/logs/old", "--exclude logs/old"),
    ]
    (start,) = of_type(case, "collection.start")
    assert start["exclude"] == ["*.gz", "logs/old"]


def test_show_escapes_hostile_text(run: Run, tmp_path: Path) -> None:
    doc = profile_doc([_entry("e", ["/a"], reason="take \x1b[2J this\u202e")])
    doc["description"] = "desc\x07 with\nnewline"
    prof = write_profile(tmp_path / "p.json", doc)
    out = run("profile", "show", str(prof), check=True).stdout
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert "take \\x1b[2J this\\u202e" in out
    assert "desc\\x07 with\\nnewline" in out
    listed = run("profile", "list", check=True).stdout.splitlines()
    assert [line.split()[0] for line in listed] == BUILT_IN


def test_root_inside_the_case_takes_nothing(case: Case, tmp_path: Path) -> None:
    prof = write_profile(tmp_path / "p.json", profile_doc([_entry("all", ["/**"])]))
    root = case.dir / "store"
    proc = cli(case, "collect", "--profile", str(prof), "--root", str(root), "--reason", "r")
    assert proc.returncode == 0, proc.stderr
    got = collected(case)
    assert list(got) == [str(root)]
    assert got[str(root)]["outcome"] == "excluded"
    assert got[str(root)]["excluded_by"] == {"rule": "case-folder"}
    (entry,) = of_type(case, "profile.entry")
    assert entry["outcome"] == "nothing matched" and "case's own folder" in entry["note"]
