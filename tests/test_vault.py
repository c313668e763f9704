"""The evidence vault (issue 18) against a real S3 server: SeaweedFS started on a
loopback port (tests/vault_server.py).  What the server enforces (a delete of a
COMPLIANCE-locked version, a shortening of its retention) is tested against the
server itself, and docs/vault.md lists it."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Case, cli, new_key, sha256sum
from tampering import bypass
from vault_server import S3Server, start

from custody import vault as v


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start(tmp_path_factory.mktemp("seaweedfs"))
    server.bucket("evidence")
    server.bucket("unlocked", lock=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(s3: S3Server) -> str:
    """The locked bucket and a prefix of this test's own: 'evidence/<prefix>'."""
    return f"evidence/t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def plain(s3: S3Server) -> str:
    """A bucket without Object Lock (or versioning) and a prefix of this test's own."""
    return f"unlocked/t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def vcase(case: Case, s3: S3Server, tmp_path: Path) -> Case:
    """A case of three files (one of them twice: two items, one object), with the
    server's credentials in the environment."""
    case.run.env.update(s3.env)
    ev = tmp_path / "evidence"
    ev.mkdir()
    (ev / "auth.log").write_bytes(b"Failed password for root\n" * 100)
    (ev / "passwd").write_bytes(b"root:x:0:0::/root:/bin/bash\n")
    (ev / "copy.log").write_bytes(b"Failed password for root\n" * 100)
    cli(case, "collect", ev, "--reason", "breach", "--quiet").check_returncode()
    return case


def vault(case: Case, s3: S3Server, *args: str) -> Any:
    return cli(case, "vault", *args, "--endpoint-url", s3.endpoint)


def pushed_objects(case: Case) -> list[dict[str, Any]]:
    import sqlite3

    con = sqlite3.connect(case.dir / "custody.db")
    rows = con.execute("SELECT body FROM events WHERE type = 'vault.push' ORDER BY seq").fetchall()
    return [json.loads(r[0])["data"] for r in rows]


def test_push_locks_every_version_at_its_content_address(
    vcase: Case, s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    proc = vault(vcase, s3, "push", f"s3://{bucket}/hostA", "--all", "--retain-days", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["objects"], out["sent"], out["reused"]) == (2, 2, 0)
    data = pushed_objects(vcase)[-1]
    want = sorted(
        sha256sum(tmp_path / "evidence" / n) for n in ("auth.log", "passwd")
    )  # auth.log and copy.log share one object
    assert [o["sha256"] for o in data["objects"]] == want
    assert data["lock"] is True and data["mode"] == "COMPLIANCE"
    c = s3.client()
    for o in data["objects"]:
        assert o["key"] == f"{bucket.split('/')[1]}/hostA/objects/sha256/{o['sha256']}"
        h = c.head_object(
            Bucket="evidence", Key=o["key"], VersionId=o["version"], ChecksumMode="ENABLED"
        )
        assert h["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(o["sha256"])).decode()
        assert h["ObjectLockMode"] == "COMPLIANCE"
        until = v.parse_iso(data["retain_until"])
        assert h["ObjectLockRetainUntilDate"] >= until
        assert until - dt.datetime.now(dt.UTC) > dt.timedelta(days=2, hours=23)
    names = {f["name"] for f in data["bundle"]["files"]}
    assert {"custody/bundle.json", "custody/events.jsonl", "manifest-sha256.txt"} <= names
    assert not any(n.startswith("data/") for n in names)  # the payload is the objects
    # the event is signed and verify accepts the case
    assert cli(vcase, "verify", "--quick").returncode == 0


def test_server_refuses_delete_and_shortening_of_a_locked_version(
    vcase: Case, s3: S3Server, bucket: str
) -> None:
    assert vault(vcase, s3, "push", f"s3://{bucket}", "--all", "--retain-days", "2").returncode == 0
    o = pushed_objects(vcase)[-1]["objects"][0]
    c = s3.client()
    with pytest.raises(Exception, match="AccessDenied"):
        c.delete_object(Bucket="evidence", Key=o["key"], VersionId=o["version"])
    with pytest.raises(Exception, match="AccessDenied"):
        c.put_object_retention(
            Bucket="evidence",
            Key=o["key"],
            VersionId=o["version"],
            Retention={
                "Mode": "COMPLIANCE",
                "RetainUntilDate": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
            },
        )
    assert vault(vcase, s3, "verify", f"s3://{bucket}").returncode == 0


def test_a_second_push_sends_nothing_the_server_holds(
    vcase: Case, s3: S3Server, bucket: str
) -> None:
    url = f"s3://{bucket}/p"
    assert vault(vcase, s3, "push", url, "--all", "--retain-days", "2").returncode == 0
    out = json.loads(vault(vcase, s3, "push", url, "--all", "--retain-days", "5", "--json").stdout)
    assert (out["sent"], out["reused"]) == (0, 2)
    # the reused versions' retention was extended to the longer one, never shortened
    data = pushed_objects(vcase)[-1]
    for o in data["objects"]:
        h = s3.client().head_object(Bucket="evidence", Key=o["key"], VersionId=o["version"])
        assert h["ObjectLockRetainUntilDate"] >= v.parse_iso(data["retain_until"])


def test_a_killed_push_resumes_without_resending(
    vcase: Case, s3: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = v._Pusher._single
    calls: list[str] = []

    def dying(self: Any, key: str, *a: Any, **kw: Any) -> Any:
        if calls:
            raise ConnectionResetError("the server dropped the connection")
        calls.append(key)
        return real(self, key, *a, **kw)

    monkeypatch.setattr(v._Pusher, "_single", dying)
    proc = vault(
        vcase, s3, "push", f"s3://{bucket}", "--all", "--retain-days", "2", "--concurrency", "1"
    )
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "ConnectionResetError" in proc.stderr
    assert pushed_objects(vcase) == []  # nothing recorded for a push that did not finish
    monkeypatch.setattr(v._Pusher, "_single", real)
    out = json.loads(
        vault(vcase, s3, "push", f"s3://{bucket}", "--all", "--retain-days", "2", "--json").stdout
    )
    assert (out["sent"], out["reused"]) == (1, 1)


def test_multipart_upload_resumes_part_by_part(
    case: Case, s3: S3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case.run.env.update(s3.env)
    monkeypatch.setattr(v, "PART_SIZE", 5 * 1024 * 1024)
    big = tmp_path / "disk.img"
    big.write_bytes(os.urandom(11 * 1024 * 1024))
    cli(case, "collect", big, "--reason", "image", "--quiet").check_returncode()
    sent_parts: list[int] = []
    client = s3.client()
    real_upload = client.upload_part

    def upload_part(**kw: Any) -> Any:
        if kw["PartNumber"] == 2 and -1 not in sent_parts:
            sent_parts.append(-1)
            raise ConnectionResetError("dropped")
        sent_parts.append(kw["PartNumber"])
        return real_upload(**kw)

    client.upload_part = upload_part
    monkeypatch.setattr(v, "connect", lambda *a, **k: client)
    proc = vault(case, s3, "push", f"s3://{bucket}", "--all", "--retain-days", "2")
    assert proc.returncode == 3, proc.stderr
    assert -1 in sent_parts and 2 not in sent_parts, proc.stderr
    first = set(sent_parts) - {-1}  # parts are sent several at a time
    mark = len(sent_parts)
    proc = vault(case, s3, "push", f"s3://{bucket}", "--all", "--retain-days", "2")
    assert proc.returncode == 0, proc.stderr
    again = sent_parts[mark:]
    assert sorted(again) == sorted({1, 2, 3} - first)  # what the server held was not sent
    o = pushed_objects(case)[-1]["objects"][0]
    assert o["checksum"].endswith("-3") and o["sha256"] == sha256sum(big)
    proc = vault(case, s3, "verify", f"s3://{bucket}", "--download")
    assert proc.returncode == 0, proc.stdout


def test_preplanted_bytes_under_a_content_address_are_not_trusted(
    vcase: Case, s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    sha = sha256sum(tmp_path / "evidence" / "passwd")
    key = f"{bucket.split('/')[1]}/objects/sha256/{sha}"
    s3.client().put_object(
        Bucket="evidence", Key=key, Body=b"root:x:0:0::/root:/bin/sh\n"
    )  # same size
    proc = vault(vcase, s3, "push", f"s3://{bucket}", "--all", "--retain-days", "2", "--json")
    out = json.loads(proc.stdout)
    assert out["sent"] == 2 and any(key in n for n in out["notes"])
    data = pushed_objects(vcase)[-1]
    assert data["superseded"] == [key]
    mine = next(o for o in data["objects"] if o["sha256"] == sha)
    body = (
        s3.client().get_object(Bucket="evidence", Key=key, VersionId=mine["version"])["Body"].read()
    )
    assert hashlib.sha256(body).hexdigest() == sha
    assert vault(vcase, s3, "verify", f"s3://{bucket}").returncode == 0


def test_a_bucket_without_object_lock_is_refused_before_uploading(
    vcase: Case, s3: S3Server, plain: str
) -> None:
    proc = vault(vcase, s3, "push", f"s3://{plain}", "--all", "--retain-days", "2")
    assert proc.returncode == 2
    assert proc.stderr == (
        "custody: error: bucket unlocked has no Object Lock: refused before uploading anything"
        " (give --no-lock to push unlocked; that is recorded)\n"
    )
    listed = s3.client().list_objects_v2(Bucket="unlocked", Prefix=plain.split("/")[1])
    assert listed.get("KeyCount", 0) == 0
    assert vault(vcase, s3, "push", f"s3://{plain}", "--all", "--no-lock").returncode == 0
    assert pushed_objects(vcase)[-1]["lock"] is False


def test_verify_finds_a_missing_and_an_overwritten_object(
    vcase: Case, s3: S3Server, plain: str
) -> None:
    assert vault(vcase, s3, "push", f"s3://{plain}", "--all", "--no-lock").returncode == 0
    a, b = pushed_objects(vcase)[-1]["objects"]
    c = s3.client()
    c.delete_object(Bucket="unlocked", Key=a["key"])
    c.put_object(Bucket="unlocked", Key=b["key"], Body=b"x" * b["size"])
    proc = vault(vcase, s3, "verify", f"s3://{plain}", "--json")
    assert proc.returncode == 1
    kinds = sorted(
        (f["kind"], f["subject"].split("/")[-1].split("?")[0])
        for f in json.loads(proc.stdout)["findings"]
    )
    assert ("vault-missing", a["sha256"]) in kinds
    assert ("vault-content", b["sha256"]) in kinds


def test_verify_finds_a_released_legal_hold(vcase: Case, s3: S3Server, bucket: str) -> None:
    assert (
        vault(vcase, s3, "push", f"s3://{bucket}", "--all", "--retain-days", "2", "--legal-hold")
    ).returncode == 0
    o = pushed_objects(vcase)[-1]["objects"][0]
    s3.client().put_object_legal_hold(
        Bucket="evidence", Key=o["key"], VersionId=o["version"], LegalHold={"Status": "OFF"}
    )
    proc = vault(vcase, s3, "verify", f"s3://{bucket}", "--json")
    assert proc.returncode == 1
    found = json.loads(proc.stdout)["findings"]
    assert [(f["kind"], f["detail"]) for f in found] == [
        ("vault-retention", "legal hold recorded ON, the server says OFF")
    ]


def test_verify_downloads_when_asked_and_counts(vcase: Case, s3: S3Server, bucket: str) -> None:
    assert vault(vcase, s3, "push", f"s3://{bucket}", "--all", "--retain-days", "2").returncode == 0
    out = json.loads(vault(vcase, s3, "verify", f"s3://{bucket}", "--download", "--json").stdout)
    assert out["ok"] is True
    assert out["downloaded"] == out["objects_checked"] > 2


def test_an_edited_push_record_is_not_believed(vcase: Case, s3: S3Server, bucket: str) -> None:
    """Someone with the case files but no key edits the recorded retention to look
    longer: the event no longer verifies, and vault verify fails."""
    assert vault(vcase, s3, "push", f"s3://{bucket}", "--all", "--retain-days", "2").returncode == 0
    db = vcase.dir / "custody.db"
    bypass(
        db,
        "events",
        'UPDATE events SET body = replace(body, \'"retain_until":"\', \'"retain_until":"2099\')'
        " WHERE type = 'vault.push';",
    )
    proc = vault(vcase, s3, "verify", f"s3://{bucket}", "--json")
    assert proc.returncode == 1
    kinds = {f["kind"] for f in json.loads(proc.stdout)["findings"]}
    assert "event-hash" in kinds


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["push", "s3://Bad_Bucket", "--all", "--retain-days", "1"],
            2,
            "is not a valid bucket name",
        ),
        (["push", "s3://okbucket/../x", "--all", "--retain-days", "1"], 2, "is not allowed"),
        (["push", "http://x/y", "--all", "--retain-days", "1"], 2, "is not a vault URL"),
        (
            ["push", "s3://okbucket", "--all"],
            2,
            "give one of --retain-until DATE or --retain-days N",
        ),
        (["push", "s3://okbucket", "--all", "--retain-days", "0"], 2, "between 1 and 36500"),
        (
            ["push", "s3://okbucket", "--all", "--retain-until", "2001-01-01"],
            2,
            "is not in the future",
        ),
        (["push", "s3://okbucket", "--retain-days", "1"], 2, "name ITEMS or give --all"),
    ],
)
def test_hostile_and_missing_options(
    vcase: Case, s3: S3Server, args: list[str], code: int, message: str
) -> None:
    proc = vault(vcase, s3, *args)
    assert proc.returncode == code
    assert message in proc.stderr and proc.stderr.count("\n") == 1


def test_wrong_credentials_and_a_dead_server(vcase: Case, s3: S3Server, bucket: str) -> None:
    proc = cli(
        vcase,
        "vault",
        "push",
        f"s3://{bucket}",
        "--all",
        "--retain-days",
        "1",
        "--endpoint-url",
        s3.endpoint,
        env={"AWS_SECRET_ACCESS_KEY": "wrong"},
    )
    assert proc.returncode == 2
    assert "refused the credentials" in proc.stderr and proc.stderr.count("\n") == 1
    proc = cli(
        vcase,
        "vault",
        "push",
        f"s3://{bucket}",
        "--all",
        "--retain-days",
        "1",
        "--endpoint-url",
        "http://127.0.0.1:9",
        env={"AWS_MAX_ATTEMPTS": "1"},
    )
    assert proc.returncode == 3
    assert proc.stderr.startswith("custody: error: vault s3://") and proc.stderr.count("\n") == 1


def test_list_and_import_from_the_vault_with_a_tampered_object_refused(
    vcase: Case, s3: S3Server, plain: str, run: Any, tmp_path: Path
) -> None:
    assert vault(vcase, s3, "push", f"s3://{plain}/hosts", "--all", "--no-lock").returncode == 0
    rows = json.loads(vault(vcase, s3, "list", f"s3://{plain}/hosts", "--json").stdout)
    assert [(r["case"], r["items"], r["exported_by_name"]) for r in rows] == [
        ("2026-017", 3, "Dana Reyes")
    ]
    lab_root = tmp_path / "labroot"
    lab_root.mkdir()
    new_key(run, lab_root / "lab.pem", "Lab Tech", "lab", default=False)
    run(
        "init",
        lab_root / "lab",
        "--case-id",
        "LAB-1",
        "--title",
        "Lab",
        "--key",
        lab_root / "lab.pem",
        check=True,
    )
    lab = Case(dir=lab_root / "lab", key=lab_root / "lab.pem", run=run)
    lab.run.env.update(s3.env)
    lab.run.env["CUSTODY_KEY"] = str(lab.key)
    # the trust rules of a local bundle: refused on its signers' own word...
    proc = cli(lab, "bundle", "import", rows[0]["url"], "--endpoint-url", s3.endpoint)
    assert proc.returncode == 1
    assert "self-asserted" in proc.stderr and "nothing was imported" in proc.stderr
    # ...imported with the collector's key as the anchor
    proc = cli(
        lab,
        "bundle",
        "import",
        rows[0]["url"],
        "--endpoint-url",
        s3.endpoint,
        "--json",
        "--trust",
        vcase.key.with_suffix(".pub"),
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)[0]["items"]) == 3
    # the same bundle again, after someone replaced an object's bytes in the vault
    data = pushed_objects(vcase)[-1]
    o = data["objects"][0]
    s3.client().put_object(Bucket="unlocked", Key=o["key"], Body=b"y" * o["size"])
    lab2 = tmp_path / "lab2root"
    lab2.mkdir()
    run(
        "init",
        lab2 / "lab",
        "--case-id",
        "LAB-2",
        "--title",
        "Lab",
        "--key",
        lab_root / "lab.pem",
        check=True,
    )
    proc = cli(
        Case(dir=lab2 / "lab", key=lab.key, run=run),
        "bundle",
        "import",
        rows[0]["url"],
        "--endpoint-url",
        s3.endpoint,
    )
    assert proc.returncode == 1
    assert "does not hash to its manifest digest" in proc.stderr
    assert not list((lab2 / "lab").glob(".vault-import-*"))  # staging removed


def test_holds_refuse_purge_and_set_the_s3_legal_hold(
    vcase: Case, s3: S3Server, bucket: str, run: Any, tmp_path: Path
) -> None:
    proc = cli(
        vcase, "hold", "set", "ITEM-2", "--reason", "litigation hold notice 2026-11", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    proc = cli(vcase, "event", "dispose", "ITEM-2", "--reason", "x", "--purge", "--yes")
    assert proc.returncode == 2
    assert "under a legal hold since event" in proc.stderr
    assert (
        vault(
            vcase, s3, "push", f"s3://{bucket}", "ITEM-2", "ITEM-3", "--retain-days", "1"
        ).returncode
        == 0
    )
    objs = {o["sha256"]: o for o in pushed_objects(vcase)[-1]["objects"]}
    held = sha256sum(tmp_path / "evidence" / "auth.log")
    for sha, o in objs.items():
        lh = s3.client().get_object_legal_hold(
            Bucket="evidence", Key=o["key"], VersionId=o["version"]
        )
        assert lh["LegalHold"]["Status"] == ("ON" if sha == held else "OFF")
        assert o["legal_hold"] is (sha == held)
    # another attested key may not release the owner's hold; the owner may
    new_key(run, tmp_path / "lee.pem", "Lee Okafor", "counsel", default=False)
    cli(
        vcase, "key", "import", tmp_path / "lee.pub", "--name", "Lee Okafor", "--role", "counsel"
    ).check_returncode()
    proc = cli(vcase, "hold", "release", "ITEM-2", "--reason", "r", "--key", tmp_path / "lee.pem")
    assert proc.returncode == 2 and "may not release the hold" in proc.stderr
    assert cli(vcase, "hold", "release", "ITEM-2", "--reason", "case closed").returncode == 0
    assert json.loads(cli(vcase, "hold", "list", "--json").stdout) == []
    # the vault still holds it until the holds are synced; verify expects it on till then
    heldo = objs[held]
    assert vault(vcase, s3, "verify", f"s3://{bucket}").returncode == 0
    out = json.loads(vault(vcase, s3, "sync-holds", f"s3://{bucket}", "--json").stdout)
    assert [(c["sha256"], c["legal_hold"]) for c in out["changes"]] == [(held, False)]
    lh = s3.client().get_object_legal_hold(
        Bucket="evidence", Key=heldo["key"], VersionId=heldo["version"]
    )
    assert lh["LegalHold"]["Status"] == "OFF"
    again = json.loads(vault(vcase, s3, "sync-holds", f"s3://{bucket}", "--json").stdout)
    assert again == {"event": None, "changes": []}
    assert vault(vcase, s3, "verify", f"s3://{bucket}").returncode == 0
    # a hold set again after the push is carried to the vault by sync-holds
    assert cli(vcase, "hold", "set", "ITEM-2", "--reason", "reopened").returncode == 0
    out = json.loads(vault(vcase, s3, "sync-holds", f"s3://{bucket}", "--json").stdout)
    assert [(c["sha256"], c["legal_hold"]) for c in out["changes"]] == [(held, True)]
    s3.client().put_object_legal_hold(
        Bucket="evidence", Key=heldo["key"], VersionId=heldo["version"], LegalHold={"Status": "OFF"}
    )
    proc = vault(vcase, s3, "verify", f"s3://{bucket}", "--json")
    assert proc.returncode == 1
    assert cli(vcase, "hold", "release", "ITEM-2", "--reason", "closed").returncode == 0
    assert (
        cli(vcase, "event", "dispose", "ITEM-2", "--reason", "x", "--purge", "--yes").returncode
        == 0
    )
    assert cli(vcase, "verify").returncode == 0


@pytest.mark.parametrize("part_mib", [None, 5])
def test_an_altered_store_object_is_never_pushed(
    case: Case,
    s3: S3Server,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    part_mib: int | None,
) -> None:
    """Bytes changed in the store after collection are refused: by the server's
    checksum check for a single upload, by custody's whole-object hash before a
    multipart upload is completed.  Nothing lands under the content address."""
    case.run.env.update(s3.env)
    if part_mib:
        monkeypatch.setattr(v, "PART_SIZE", part_mib * 1024 * 1024)
    f = tmp_path / "x.bin"
    f.write_bytes(os.urandom(6 * 1024 * 1024))
    cli(case, "collect", f, "--reason", "r", "--quiet").check_returncode()
    sha = sha256sum(f)
    obj = case.dir / "store" / "sha256" / sha[:2] / sha
    obj.chmod(0o600)
    with open(obj, "r+b") as fh:
        fh.seek(4 * 1024 * 1024 + 7)
        fh.write(b"\x00")
    proc = vault(case, s3, "push", f"s3://{bucket}", "--all", "--retain-days", "1")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and sha[:16] in proc.stderr
    listed = s3.client().list_objects_v2(Bucket="evidence", Prefix=bucket.split("/")[1])
    assert listed.get("KeyCount", 0) == 0
    assert pushed_objects(case) == []


def test_a_store_object_replaced_by_a_link_is_never_pushed(
    vcase: Case, s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    """Read as every store reader reads (no link followed, no FIFO opened): a link
    to a copy of the right bytes outside the store is exit 1 (the bundle's export
    check says so first), and no push is recorded."""
    sha = sha256sum(tmp_path / "evidence" / "passwd")
    obj = vcase.dir / "store" / "sha256" / sha[:2] / sha
    copy = tmp_path / "outside"
    copy.write_bytes(obj.read_bytes())
    obj.unlink()
    obj.symlink_to(copy)
    proc = vault(vcase, s3, "push", f"s3://{bucket}", "--all", "--retain-days", "1")
    assert proc.returncode == 1
    assert proc.stderr == (
        f"custody: error: store object of ITEM-4 (sha256/{sha[:2]}/{sha}) is a"
        " symbolic link, not a regular file; run 'custody verify'\n"
    )
    assert pushed_objects(vcase) == []
