"""Who may act (custody rules 2, issue 12), through the CLI: one test per attack.

Each attack is made the way a user (or an intruder with a key of their own) would
make it, with the ``custody`` commands, in-process (``conftest.invoke``: click's
CliRunner with the environment and working directory a subprocess would get).  A
refusal is exit status 2 and one line naming the broken rule's kind, and leaves
the ledger as it was; the legitimate holders can still act, and ``custody verify``
passes.  Every signer shown (``log``, ``show``, ``key list``) carries 16 hex digits
of its key's fingerprint and its standing, so a look-alike name cannot pass for
someone else.

The case every test starts from (built once per module, copied per test): Dana
Reyes (collector) made it with her key (its owner) and a recovery key kept
offline, collected two files (ITEM-1, ITEM-2), and imported Lee Okafor's key
(counsel) and Kim Ng's (examiner).  Further keys, made but unknown to the case:
Sam Ito and Pat Doe (examiners), Mallory (an outsider) and a second key calling
itself "Dana Reyes".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, invoke, one_error_line
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.canonical import canonical_json, content_hash
from custody.keys import Signer, fingerprint, load_public_key
from custody.ledger import Ledger

#: key file stem -> (name, role) as its key file says
PEOPLE = {
    "dana": ("Dana Reyes", "collector"),
    "lee": ("Lee Okafor", "counsel"),
    "kim": ("Kim Ng", "examiner"),
    "sam": ("Sam Ito", "examiner"),
    "pat": ("Pat Doe", "examiner"),
    "mallory": ("Mallory", "intruder"),
    "imposter": ("Dana Reyes", "collector"),  # an outsider under the owner's name
    "recovery": ("Dana Reyes recovery", "recovery"),
    "dana2": ("Dana Reyes", "collector"),  # the owner's replacement key
}
FP16 = re.compile(r"sha256:[0-9a-f]{16}")


class World:
    """The case at ``root/case``, the key files ``root/<stem>.pem``, and the CLI."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.case = root / "case"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
        self.env.update(
            CUSTODY_CONFIG_DIR=str(root / "config"),
            CUSTODY_PASSPHRASE=PASSPHRASE,
            CUSTODY_CASE=str(self.case),
        )

    def key(self, stem: str) -> Path:
        return self.root / f"{stem}.pem"

    def pub(self, stem: str) -> Path:
        return self.root / f"{stem}.pub"

    def fp(self, stem: str) -> str:
        return fingerprint(load_public_key(self.pub(stem)))

    def __call__(
        self, *args: str | os.PathLike[str], key: str = "dana"
    ) -> subprocess.CompletedProcess[str]:
        """``custody ARGS`` in the case, signing (if at all) with ``key``."""
        return invoke(args, env={**self.env, "CUSTODY_KEY": str(self.key(key))}, cwd=self.root)

    def ok(self, *args: str | os.PathLike[str], key: str = "dana") -> str:
        proc = self(*args, key=key)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc.stdout

    def json(self, *args: str | os.PathLike[str], key: str = "dana") -> Any:
        return json.loads(self.ok(*args, "--json", key=key))

    def log(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.json("log")
        return events

    def keys(self) -> dict[str, dict[str, Any]]:
        return {k["fingerprint"]: k for k in self.json("key", "list")}

    def refused(self, kind: str, *args: str | os.PathLike[str], key: str = "dana") -> str:
        """The command is refused (exit 2, one line naming ``kind``) and records
        nothing; returns the line."""
        before = self.log()
        proc = self(*args, key=key)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        line = one_error_line(proc)
        assert line.startswith(f"custody: error: [{kind}] "), line
        assert self.log() == before
        return line

    def verify_ok(self) -> None:
        proc = self("verify", "--json")
        assert (proc.returncode, json.loads(proc.stdout)["findings"]) == (0, []), proc.stdout

    def transfer(self, item: str, to: str, key: str = "dana") -> str:
        out = self.json("transfer", item, "--to", to, "--reason", "hand-over", key=key)
        return str(out["id"])


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("authority-cli")
    w = World(root)
    for stem, (name, role) in PEOPLE.items():
        w.ok("key", "new", "--name", name, "--role", role, "--out", w.key(stem), "--no-default")
    w.ok(
        "init", w.case, "--case-id", "2026-017", "--title", "t", "--recovery-key", w.pub("recovery")
    )
    (root / "evidence").mkdir()
    for n in (1, 2):
        (root / "evidence" / f"file-{n}.txt").write_text(f"evidence {n}\n")
    w.ok(
        "collect", "--reason", "test", "--no-selftest", "--quiet", root / "evidence" / "file-1.txt"
    )
    w.ok(
        "collect", "--reason", "test", "--no-selftest", "--quiet", root / "evidence" / "file-2.txt"
    )
    w.ok("key", "import", w.pub("lee"), "--name", "Lee Okafor", "--role", "counsel")
    w.ok("key", "import", w.pub("kim"), "--name", "Kim Ng", "--role", "examiner")
    return root


@pytest.fixture
def w(template: Path, tmp_path: Path) -> World:
    root = tmp_path / "w"
    shutil.copytree(template, root, symlinks=True)
    return World(root)


# -- init: the case is made with its owner's key ----------------------------------------


def test_init_needs_the_owners_key(tmp_path: Path) -> None:
    """``custody init`` signs the case's first record with the owner's key; without
    any key it says, in one line, to make one first; ``--json`` names the owner's
    and the recovery key's fingerprints."""
    w = World(tmp_path)
    env = {k: v for k, v in w.env.items() if k != "CUSTODY_CASE"}
    proc = invoke(
        ["init", tmp_path / "c", "--case-id", "X-1", "--title", "t"], env=env, cwd=tmp_path
    )
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "custody key new" in line and "--key" in line, line
    assert not (tmp_path / "c" / "custody.db").exists()

    for stem in ("dana", "recovery"):
        name, role = PEOPLE[stem]
        w.ok("key", "new", "--name", name, "--role", role, "--out", w.key(stem), "--no-default")
    out = w.json(
        "init", w.case, "--case-id", "X-1", "--title", "t", "--recovery-key", w.pub("recovery")
    )
    assert (out["owner"], out["owner_name"], out["owner_role"]) == (
        w.fp("dana"),
        "Dana Reyes",
        "collector",
    )
    assert (out["recovery"], out["rules"]) == (w.fp("recovery"), 2)
    (opened,) = w.log()
    assert (opened["type"], opened["signer"], opened["signer_standing"]) == (
        "case.open",
        w.fp("dana"),
        "owner",
    )
    keys = w.keys()
    assert keys[w.fp("recovery")]["standing"] == "recovery"
    # the recovery key is the owner's own: refused before anything is made
    proc = w(
        "init", tmp_path / "d", "--case-id", "X-2", "--title", "t", "--recovery-key", w.pub("dana")
    )
    assert proc.returncode == 2
    one_error_line(proc)
    assert not (tmp_path / "d").exists()
    w.verify_ok()


# -- a. an examiner the owner imported revokes the owner's key --------------------------


def test_examiner_may_not_revoke_the_collectors_key(w: World) -> None:
    line = w.refused("authority", "key", "revoke", w.fp("dana"), "--reason", "coup", key="kim")
    assert "Kim Ng (sha256:" in line
    assert w.keys()[w.fp("dana")]["status"] == "active"
    # the collector still holds and acts on her items
    w.ok("event", "seal", "ITEM-2", "--reason", "bag 7")
    tid = w.transfer("ITEM-1", "Lee Okafor")
    w.ok("receive", tid, key="lee")
    w.verify_ok()


# -- b. a key nobody imported registers itself, then revokes counsel ---------------------


def test_self_registered_key_may_not_revoke_counsel(w: World) -> None:
    tid = w.transfer("ITEM-1", "Lee Okafor")  # in transit to counsel
    # Mallory's first signature registers her key (self-asserted): a note is allowed
    w.ok("event", "note", "ITEM-2", "--reason", "just looking", key="mallory")
    line = w.refused("authority", "key", "revoke", w.fp("lee"), "--reason", "x", key="mallory")
    assert "Mallory (sha256:" in line and "self-asserted" in line
    mallory = w.keys()[w.fp("mallory")]
    assert (mallory["standing"], mallory["attested_by"]) == ("self-asserted", None)
    assert w.keys()[w.fp("lee")]["status"] == "active"
    # counsel can still receive the pending hand-over
    w.ok("receive", tid, key="lee")
    assert w.json("show", "ITEM-1")["custodian_key"]["fingerprint"] == w.fp("lee")
    w.verify_ok()


# -- c. names: one name, one key ---------------------------------------------------------


def test_a_look_alike_name_is_shown_for_what_it_is(w: World) -> None:
    imposter, dana = w.fp("imposter"), w.fp("dana")
    w.ok("event", "note", "ITEM-1", "--reason", "I am Dana", key="imposter")
    # log and show: the outsider's own fingerprint, marked self-asserted
    (note,) = [e for e in w.log() if e["type"] == "note"]
    assert (note["signer"], note["signer_name"]) == (imposter, "Dana Reyes")
    assert (note["signer_standing"], note["signer_attested_by"]) == ("self-asserted", None)
    signer = {e["seq"]: e["signer"] for e in w.log()}
    rows = [r for r in w.ok("log").splitlines() if re.match(r"\d+\s", r)]
    assert len(rows) == len(signer)
    for r in rows:  # its self-registration and its note, every other row Dana's
        if signer[int(r.split()[0])] == imposter:
            assert f"Dana Reyes (collector) {imposter[:23]} [SELF-ASSERTED" in r, r
        else:
            assert f"Dana Reyes (collector) {dana[:23]} [owner]" in r, r
    shown = w.ok("show", "ITEM-1")
    assert re.search(
        rf"note\s+by Dana Reyes \(collector\) {imposter[:23]} \[SELF-ASSERTED: nobody attested",
        shown,
    ), shown
    (ev,) = [e for e in w.json("show", "ITEM-1")["events"] if e["type"] == "note"]
    assert (ev["signer"], ev["signer_standing"]) == (imposter, "self-asserted")

    # a hand-over to "Dana Reyes" goes to the owner's key, never to the outsider's
    tid = w.transfer("ITEM-1", "Lee Okafor")
    w.ok("receive", tid, key="lee")
    for spelling in ("Dana Reyes", "dana  REYES"):
        out = w.json("transfer", "ITEM-1", "--to", spelling, "--reason", "back", key="lee")
        assert out["to"] == dana
        assert out["to_key"]["standing"] == "owner"
        w.ok("receive", out["id"])
        tid = w.transfer("ITEM-1", "Lee Okafor")
        w.ok("receive", tid, key="lee")
    # and no hand-over may be addressed to the self-asserted key itself
    line = w.refused("transfer", "transfer", "ITEM-2", "--to", imposter, "--reason", "x")
    assert "self-asserted" in line
    w.verify_ok()


@pytest.mark.parametrize(
    # a tab in a name is refused before this rule (cli/common.py TextType, issue 15):
    # U+3000 IDEOGRAPHIC SPACE is the spacing variant now
    "spelling",
    ["Lee Okafor", "lee  OKAFOR", "  Lee\u3000Okafor ", "Ｌｅｅ Ｏｋａｆｏｒ"],
)
def test_a_held_name_cannot_be_given_to_a_second_key(w: World, spelling: str) -> None:
    """The owner importing another key under counsel's name (any case, spacing or
    Unicode presentation form of it) is refused; counsel's key keeps the name."""
    line = w.refused("name", "key", "import", w.pub("sam"), "--name", spelling, "--role", "counsel")
    assert f"belongs to Lee Okafor ({w.fp('lee')[:23]})" in line
    assert w.fp("sam") not in w.keys()
    assert w.json("transfer", "ITEM-1", "--to", "Lee Okafor", "--reason", "r")["to"] == w.fp("lee")


# -- d. only the owner and its delegates attest keys ---------------------------------------


def test_only_the_owner_and_its_delegates_attest(w: World) -> None:
    line = w.refused(
        "authority",
        "key",
        "import",
        w.pub("sam"),
        "--name",
        "Sam Ito",
        "--role",
        "examiner",
        key="kim",
    )
    assert "may not attest keys" in line
    out = w.ok(
        "key", "import", w.pub("pat"), "--name", "Pat Doe", "--role", "examiner", "--delegate"
    )
    assert out.startswith(
        f"Imported Pat Doe (examiner) {w.fp('pat')[:23]} [delegate, attested by Dana Reyes"
        f" {w.fp('dana')[:23]}] as event "
    ), out
    # a delegate attests ...
    w.ok("key", "import", w.pub("sam"), "--name", "Sam Ito", "--role", "examiner", key="pat")
    keys = w.keys()
    pat, sam = keys[w.fp("pat")], keys[w.fp("sam")]
    assert (pat["standing"], pat["delegate"], pat["attested_by"]) == (
        "delegate",
        True,
        w.fp("dana"),
    )
    assert (sam["standing"], sam["attested_by"], sam["attested_by_name"]) == (
        "attested",
        w.fp("pat"),
        "Pat Doe",
    )
    # ... but cannot appoint delegates of its own
    w.refused(
        "authority",
        "key",
        "import",
        w.pub("mallory"),
        "--name",
        "Mal",
        "--role",
        "x",
        "--delegate",
        key="pat",
    )
    # the key it attested may hold evidence
    tid = w.transfer("ITEM-1", "Sam Ito")
    w.ok("receive", tid, key="sam")
    w.verify_ok()


# -- e. the items of a lost key ---------------------------------------------------------------


@pytest.mark.parametrize("revoker", ["lee", "dana"])
def test_owner_reassigns_items_in_transit_to_a_revoked_key(w: World, revoker: str) -> None:
    tid = w.transfer("ITEM-1", "Lee Okafor")
    w.ok("key", "revoke", w.fp("lee"), "--reason", "laptop stolen", key=revoker)
    # counsel's key is gone: the item would be stuck in transit for good
    assert w("receive", tid, key="lee").returncode == 2
    line = w.refused(
        "authority", "reassign", "ITEM-1", "--to", "Kim Ng", "--reason", "mine now", key="kim"
    )
    assert "only the owner may" in line
    out = w.json("reassign", "ITEM-1", "--to", "Kim Ng", "--reason", "Lee's key was stolen")
    assert (out["items"], out["to"]) == (["ITEM-1"], w.fp("kim"))
    (ev,) = [e for e in w.log() if e["type"] == "reassign"]
    assert json.loads(ev["body"])["data"]["reason"] == "Lee's key was stolen"
    shown = w.json("show", "ITEM-1")
    assert (shown["state"], shown["custodian_key"]["fingerprint"]) == ("collected", w.fp("kim"))
    assert shown["handovers"][0]["status"] == "in transit"  # its transfer stays unreceived
    w.ok("event", "seal", "ITEM-1", "--reason", "bag 9", key="kim")
    w.verify_ok()


# -- f. the recovery key ---------------------------------------------------------------------


def test_recovery_key_revokes_the_owner_and_does_nothing_else(w: World) -> None:
    rec, dana = w.fp("recovery"), w.fp("dana")
    w.refused("authority", "event", "seal", "ITEM-2", "--reason", "x", key="recovery")
    w.refused(
        "authority",
        "key",
        "import",
        w.pub("sam"),
        "--name",
        "Sam Ito",
        "--role",
        "examiner",
        key="recovery",
    )
    w.refused("authority", "key", "revoke", w.fp("lee"), "--reason", "x", key="recovery")
    w.refused(
        "authority", "transfer", "ITEM-1", "--to", "Lee Okafor", "--reason", "x", key="recovery"
    )
    w.ok("key", "revoke", dana, "--reason", "owner's key compromised", key="recovery")
    keys = w.keys()
    assert keys[rec]["standing"] == "recovery"
    assert (keys[dana]["status"], keys[dana]["active"]) == ("revoked", False)
    # the owner's key signs nothing more
    proc = w("event", "note", "ITEM-1", "--reason", "still me?")
    assert proc.returncode == 2
    assert "revoked" in one_error_line(proc)
    w.verify_ok()


def test_recovery_key_replaces_the_owners_key(w: World) -> None:
    dana, dana2 = w.fp("dana"), w.fp("dana2")
    w.ok("key", "rotate", "--new-key", w.key("dana2"), key="recovery")
    keys = w.keys()
    assert (keys[dana2]["standing"], keys[dana2]["name"]) == ("owner", "Dana Reyes")
    assert (keys[dana]["status"], keys[dana]["rotated_to"]) == ("rotated", dana2)
    # the new key holds the owner's items and authority; the old one signs nothing
    w.ok("key", "import", w.pub("sam"), "--name", "Sam Ito", "--role", "examiner", key="dana2")
    w.ok("event", "seal", "ITEM-2", "--reason", "bag 3", key="dana2")
    assert w("event", "note", "ITEM-1", "--reason", "x").returncode == 2
    w.verify_ok()


# -- g. every signer display: fingerprint and standing ----------------------------------------


def test_every_signer_shown_with_its_fingerprint_and_standing(w: World) -> None:
    w.ok("key", "import", w.pub("pat"), "--name", "Pat Doe", "--role", "examiner", "--delegate")
    tid = w.transfer("ITEM-1", "Lee Okafor")
    w.ok("receive", tid, key="lee")
    w.ok("event", "note", "ITEM-1", "--reason", "hello", key="mallory")
    w.ok("event", "note", "ITEM-1", "--reason", "pat was here", key="pat")
    dana16 = w.fp("dana")[:23]
    standing = {
        "dana": "[owner]",
        "lee": f"[attested by Dana Reyes {dana16}]",
        "pat": f"[delegate, attested by Dana Reyes {dana16}]",
        "mallory": "[SELF-ASSERTED: nobody attested this key]",
    }

    def shown(stem: str) -> str:
        name, role = PEOPLE[stem]
        return f"{name} ({role}) {w.fp(stem)[:23]} {standing[stem]}"

    # log: every row's signer, with its key and standing
    rows = [r for r in w.ok("log").splitlines() if re.match(r"\d+\s", r)]
    by_seq = {e["seq"]: e for e in w.log()}
    assert len(rows) == len(by_seq)
    stems = {w.fp(s): s for s in standing}
    for r in rows:
        seq = int(r.split()[0])
        assert shown(stems[by_seq[seq]["signer"]]) in r, r
    # show: custodian, hand-over parties and every timeline line
    text = w.ok("show", "ITEM-1")
    assert re.search(rf"^Custodian:\s+{re.escape(shown('lee'))}$", text, re.M), text
    assert f"Released by: {shown('dana')}  " in text
    assert f"Received by: {shown('lee')}  " in text
    timeline = text[text.index("Timeline:") :].splitlines()[1:]
    assert [re.sub(r"^\s*\S+\s+\S+\s+by ", "", t) for t in timeline] == [
        shown("dana"),
        shown("dana"),
        shown("lee"),
        shown("mallory"),
        shown("pat"),
    ]
    # key list: every key the case knows, with its standing and attester
    table = w.ok("key", "list").splitlines()
    assert table[0].split()[:5] == ["FINGERPRINT", "NAME", "ROLE", "STANDING", "ATTESTED"]
    expect = {
        "dana": ("owner", "itself (the case's owner)"),
        "recovery": ("recovery key", "-"),
        "lee": ("attested", f"Dana Reyes {dana16}"),
        "kim": ("attested", f"Dana Reyes {dana16}"),
        "pat": ("delegate", f"Dana Reyes {dana16}"),
        "mallory": ("SELF-ASSERTED", "-"),
    }
    assert len(table) == 1 + len(expect)
    for stem, (st, by) in expect.items():
        (row,) = [r for r in table if r.startswith(w.fp(stem)[:23])]
        assert re.search(rf"\s{re.escape(st)}\s+{re.escape(by)}\s+active\s", row), row
        assert len(FP16.findall(row)) >= 1


def test_rules_1_case_shows_who_imported_whom(tmp_path: Path) -> None:
    """A case made before owners (custody rules 1) is shown by its own rules: a key
    another key imported is attested by that key, a key that registered itself is
    self-asserted; nothing is invented."""
    Ledger.create(tmp_path / "case", "R-1", "old").close()
    conn = sqlite3.connect(tmp_path / "case" / "custody.db", isolation_level=None)
    header = json.loads(conn.execute("SELECT header FROM case_info").fetchone()[0])
    del header["rules"]  # as custody wrote headers before rules were versioned
    text = canonical_json(header).decode()
    conn.execute("DROP TRIGGER case_info_no_update")
    conn.execute("UPDATE case_info SET header = ?, hash = ?", (text, content_hash(text.encode())))
    conn.close()
    dana = Signer(Ed25519PrivateKey.generate(), "Dana Reyes", "collector")
    kim = Signer(Ed25519PrivateKey.generate(), "Kim Ng", "examiner")
    with Ledger.open(tmp_path / "case") as led:
        assert led.case.rules == 1
        led.register_identity(dana, kim.identity)
    w = World(tmp_path)
    keys = w.keys()
    assert (keys[dana.fingerprint]["standing"], keys[dana.fingerprint]["attested_by"]) == (
        "self-asserted",
        None,
    )
    assert (keys[kim.fingerprint]["standing"], keys[kim.fingerprint]["attested_by"]) == (
        "attested",
        dana.fingerprint,
    )
    rows = [r for r in w.ok("log").splitlines() if re.match(r"\d+\s", r)]
    assert all(f"Dana Reyes (collector) {dana.fingerprint[:23]} [SELF-ASSERTED" in r for r in rows)
    w.verify_ok()


# -- versions: a reader refuses rules it does not know, before writing anything -------------


def test_case_of_unknown_rules_refused_before_writing(w: World) -> None:
    db = w.case / "custody.db"
    conn = sqlite3.connect(db, isolation_level=None)
    header = json.loads(conn.execute("SELECT header FROM case_info").fetchone()[0])
    header["rules"] = 3
    conn.execute("DROP TRIGGER case_info_no_update")
    conn.execute("UPDATE case_info SET header = ?", (json.dumps(header),))
    conn.close()
    before = db.read_bytes()
    for args in (("verify",), ("event", "note", "ITEM-1", "--reason", "x"), ("log",)):
        proc = w(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "rules=3" in one_error_line(proc)
    assert db.read_bytes() == before


def test_bundle_of_unknown_rules_refused(w: World) -> None:
    out = w.root / "b"
    w.ok("bundle", "export", "ITEM-1", "--out", out)
    meta_path = out / "custody" / "bundle.json"
    meta = json.loads(meta_path.read_text())
    assert meta["rules"] == 2
    meta["rules"] = 3
    meta_path.write_text(json.dumps(meta))
    report = ("report", "--bundle", out, "--format", "json", "--out", w.root / "r.json")
    for args in (("bundle", "verify", out), report):
        proc = w(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "rules 3" in one_error_line(proc)
    assert not (w.root / "r.json").exists()
