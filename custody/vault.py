"""The evidence vault: a case's store objects on S3-compatible object storage
under Object Lock, recorded in signed ``vault.push`` events (docs/vault.md).

Layout under ``s3://BUCKET/PREFIX/``:

- ``objects/sha256/<hex>``: one store object, addressed by its content.  Hosts
  share these; an object already there is reused only once its bytes are
  confirmed to have that SHA-256 (a server checksum, else a read-back), since
  anyone with write access could pre-plant other bytes under the address.
- ``bundles/<case>@<hdr6>/<stamp>/``: the tag files of a bundle of the pushed
  items (the format ``bundle export`` writes); its payload is not copied again:
  each ``data/`` file is the object its ``manifest-sha256.txt`` digest names.

Every object version is written with the retention asked for (COMPLIANCE or
GOVERNANCE) and, for items under a legal hold, the S3 legal hold.  ``verify``
checks, version by version, presence, checksum (a server checksum where the
server gives one, else a download) and retention.

boto3 is imported only here, on first use (the ``vault`` extra).
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime as dt
import hashlib
import itertools
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from custody.bundle.export import BagContents, bag_contents
from custody.errors import IntegrityError, OperationalError, UsageError
from custody.findings import Kind, Verdict
from custody.keys import Signer
from custody.ledger import EventDraft, Ledger
from custody.lifecycle import Replay, find_item, replay_ledger
from custody.safeio import NotRegularFileError, open_beneath

VAULT_PUSH_EVENT = "vault.push"
#: the S3 legal holds custody set or released on pushed versions to match the
#: case's legal holds (``vault sync-holds``)
VAULT_HOLDS_EVENT = "vault.holds"
#: objects this size and larger go multipart, in parts of at least this size (more
#: for objects over ~140 GiB: S3 allows 10,000 parts), several parts in flight
PART_SIZE = 16 * 1024 * 1024
MAX_PARTS = 9000
CHUNK = 1024 * 1024
MODES = ("COMPLIANCE", "GOVERNANCE")
#: a tag file of a vault bundle is small; a bigger one is refused
TAG_FILE_CAP = 512 * 1024 * 1024
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SEGMENT = re.compile(r"[A-Za-z0-9._@=+-]+")

ProgressFn = Callable[[int], None]


class VaultError(OperationalError):
    """The vault could not be reached or failed mid-way (exit 3): run the same
    command again; what the server already holds is not sent twice."""


@dataclass(frozen=True)
class VaultURL:
    bucket: str
    prefix: str  # no leading or trailing slash; may be empty

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def __str__(self) -> str:
        return (
            f"s3://{self.key(self.bucket) if not self.prefix else self.bucket + '/' + self.prefix}"
        )


def parse_url(url: str) -> VaultURL:
    """``s3://bucket[/prefix…]``; a prefix is plain path segments (no ``..``,
    no empty or control characters)."""
    if not url.startswith("s3://"):
        raise UsageError(f"{url!r} is not a vault URL: give s3://BUCKET[/PREFIX]")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise UsageError(f"{bucket!r} is not a valid bucket name")
    segments = [s for s in prefix.split("/") if s]
    for s in segments:
        if s in (".", "..") or not _SEGMENT.fullmatch(s):
            raise UsageError(f"vault prefix segment {s!r} is not allowed (letters, digits, ._@=+-)")
    return VaultURL(bucket, "/".join(segments))


def object_key(url: VaultURL, sha256_hex: str) -> str:
    return url.key("objects", "sha256", sha256_hex)


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def composite_checksum(part_digests: list[bytes]) -> str:
    """S3's COMPOSITE SHA-256 of a multipart object: the SHA-256 of its parts'
    SHA-256 digests, then ``-<parts>``."""
    return f"{b64(hashlib.sha256(b''.join(part_digests)).digest())}-{len(part_digests)}"


# -- the client and its errors ------------------------------------------------------

_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken"}


def connect(endpoint_url: str | None = None, *, concurrency: int = 8) -> Any:
    """An S3 client from the standard AWS configuration chain (environment,
    shared files, instance roles); ``endpoint_url`` for servers other than AWS."""
    try:
        import boto3.session  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]
    except ImportError as e:
        raise UsageError("the vault needs boto3: pip install 'custody[vault]'") from e
    cfg = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=concurrency + 4,
        connect_timeout=10,
        read_timeout=120,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    # a session of its own: boto3's default one keeps the credentials it first read
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url or None, config=cfg)


def _code(e: BaseException) -> str:
    resp = getattr(e, "response", None)
    if isinstance(resp, dict):
        return str(resp.get("Error", {}).get("Code", ""))
    return ""


@contextmanager
def s3_errors(what: str) -> Iterator[None]:
    """Map the client's exceptions to custody's: bad credentials or a missing
    bucket are bad input (exit 2); a dropped or refused connection is operational
    (exit 3, the push resumes)."""
    try:
        yield
    except (UsageError, IntegrityError, VaultError):
        raise
    except Exception as e:
        code = _code(e)
        if code in _AUTH_CODES:
            raise UsageError(
                f"{what}: the server refused the credentials or access ({code})"
            ) from e
        if code in ("NoSuchBucket",):
            raise UsageError(f"{what}: no such bucket") from e
        if code:
            raise VaultError(f"{what}: the server answered {code}") from e
        name = type(e).__name__
        raise VaultError(
            f"{what}: {name}: {str(e).splitlines()[0][:200] if str(e) else name}"
        ) from e


def _missing(e: BaseException) -> bool:
    resp = getattr(e, "response", None)
    status = (
        resp.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(resp, dict) else None
    )
    return status == 404 or _code(e) in ("NoSuchKey", "NoSuchVersion", "404", "NotFound")


def head(client: Any, bucket: str, key: str, version: str | None = None) -> dict[str, Any] | None:
    """The object's (version's) metadata with its checksum, or None if absent."""
    kw: dict[str, Any] = {"Bucket": bucket, "Key": key, "ChecksumMode": "ENABLED"}
    if version:
        kw["VersionId"] = version
    try:
        return dict(client.head_object(**kw))
    except Exception as e:
        if _missing(e):
            return None
        raise


def bucket_locked(client: Any, bucket: str) -> bool:
    try:
        conf = client.get_object_lock_configuration(Bucket=bucket)
    except Exception as e:
        if _code(e) in ("ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound"):
            return False
        raise
    return bool(conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled")


def read_sha256(client: Any, bucket: str, key: str, version: str | None = None) -> tuple[str, int]:
    """Download and hash (constant memory): (sha256 hex, size)."""
    kw: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version:
        kw["VersionId"] = version
    body = client.get_object(**kw)["Body"]
    h = hashlib.sha256()
    n = 0
    for chunk in iter(lambda: body.read(CHUNK), b""):
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest(), n


# -- push ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retention:
    mode: str | None  # None: no lock (--no-lock)
    until: dt.datetime | None
    legal_hold: bool = False

    def put_args(self, held: bool) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self.mode and self.until:
            kw["ObjectLockMode"] = self.mode
            kw["ObjectLockRetainUntilDate"] = self.until
        if self.mode and (held or self.legal_hold):
            kw["ObjectLockLegalHoldStatus"] = "ON"
        return kw

    def as_json(self) -> dict[str, Any]:
        return {
            "lock": self.mode is not None,
            "mode": self.mode or "",
            "retain_until": iso(self.until) if self.until else "",
            "legal_hold": self.legal_hold,
        }


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def retention(
    until: dt.date | None, days: int | None, mode: str, *, no_lock: bool, legal_hold: bool
) -> Retention:
    """The retention a push asks for: a date (end of that day, UTC) or a number of
    days from now; none with ``no_lock``."""
    if no_lock:
        if until is not None or days is not None or legal_hold:
            raise UsageError("--no-lock pushes without retention or legal hold: drop those options")
        return Retention(None, None)
    if (until is None) == (days is None):
        raise UsageError("give one of --retain-until DATE or --retain-days N")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if days is not None:
        if days < 1 or days > 36500:
            raise UsageError("--retain-days must be between 1 and 36500")
        t = now + dt.timedelta(days=days)
    else:
        assert until is not None
        t = dt.datetime(until.year, until.month, until.day, 23, 59, 59, tzinfo=dt.UTC)
        if t <= now:
            raise UsageError(f"--retain-until {until.isoformat()} is not in the future")
    mode = mode.upper()
    if mode not in MODES:
        raise UsageError("--mode must be compliance or governance")
    return Retention(mode, t, legal_hold)


@dataclass
class PushedObject:
    sha256: str
    key: str
    version: str
    checksum: str  # the server's ChecksumSHA256 form: full, or composite "…-N"
    size: int
    legal_hold: bool
    reused: bool = False
    planted: bool = False  # other bytes were found under the address and superseded

    def record(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "key": self.key,
            "version": self.version,
            "checksum": self.checksum,
            "size": self.size,
            "legal_hold": self.legal_hold,
        }


@dataclass
class PushResult:
    url: VaultURL
    event: int
    objects: list[PushedObject]
    bundle: str
    bytes_sent: int
    notes: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(1 for o in self.objects if not o.reused)

    @property
    def reused(self) -> int:
        return sum(1 for o in self.objects if o.reused)


def _open_object(store: Path, rel: str) -> BinaryIO:
    """A store object, opened as every reader of the store opens one
    (:func:`custody.safeio.open_beneath`: no link anywhere in its path, never a
    FIFO or device); anything else is exit 1, for ``custody verify`` to report."""
    try:
        fd, _ = open_beneath(store, rel)
    except NotRegularFileError as e:
        raise IntegrityError(
            f"store object {rel} is {e.what}, not a regular file; run 'custody verify'"
        ) from None
    return os.fdopen(fd, "rb")


def part_size_for(size: int) -> int:
    """The part size custody uses for an object of ``size`` bytes: it fixes the
    object's COMPOSITE checksum, so it depends on the size alone."""
    need = -(-size // MAX_PARTS)
    mib = 1024 * 1024
    return max(PART_SIZE, -(-need // mib) * mib)


def _expected(store: Path, rel: str, size: int) -> tuple[str, list[bytes]]:
    """The checksum S3 reports for these bytes as custody uploads them (full
    SHA-256 below PART_SIZE, composite above), and the parts' digests."""
    if size < PART_SIZE:
        return "", []
    ps = part_size_for(size)
    parts = []
    with _open_object(store, rel) as f:
        while True:
            h = hashlib.sha256()
            left = ps
            while left:
                b = f.read(min(CHUNK, left))
                if not b:
                    break
                h.update(b)
                left -= len(b)
            if left == ps:
                break
            parts.append(h.digest())
            if left:
                break
    return composite_checksum(parts), parts


class _Pusher:
    def __init__(
        self,
        client: Any,
        url: VaultURL,
        ret: Retention,
        progress: ProgressFn | None,
        store: Path,
        concurrency: int = 8,
    ) -> None:
        self.client = client
        self.store = store
        self.url = url
        self.ret = ret
        self.progress = progress
        self.concurrency = max(1, concurrency)
        self.sent = 0
        self.lock = threading.Lock()

    def _confirmed(self, h: dict[str, Any], sha: str, size: int, expect: str) -> bool:
        """Do the bytes stored under this address have our SHA-256?"""
        if int(h.get("ContentLength", -1)) != size:
            return False
        got = h.get("ChecksumSHA256")
        full = b64(bytes.fromhex(sha))
        if got and (got == full or (expect and got == expect)):
            return True
        got_sha, n = read_sha256(self.client, self.url.bucket, h["_key"], h.get("VersionId"))
        return got_sha == sha and n == size

    def _keep(self, h: dict[str, Any], key: str, held: bool) -> None:
        """Extend (never shorten) the retention of a reused version; set a legal hold."""
        kw = {"Bucket": self.url.bucket, "Key": key, "VersionId": h.get("VersionId")}
        until = h.get("ObjectLockRetainUntilDate")
        if self.ret.mode and self.ret.until and (until is None or until < self.ret.until):
            mode = h.get("ObjectLockMode") or self.ret.mode
            if mode == "COMPLIANCE" and self.ret.mode == "GOVERNANCE":
                mode = "COMPLIANCE"
            self.client.put_object_retention(
                **kw, Retention={"Mode": mode, "RetainUntilDate": self.ret.until}
            )
        if self.ret.mode and (held or self.ret.legal_hold):
            if h.get("ObjectLockLegalHoldStatus") != "ON":
                self.client.put_object_legal_hold(**kw, LegalHold={"Status": "ON"})

    def listed(self) -> set[str]:
        """The content addresses the vault holds now (one listing instead of a
        HEAD per object: only these need confirming)."""
        out: set[str] = set()
        with s3_errors(f"vault {self.url}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.url.bucket, Prefix=self.url.key("objects", "sha256") + "/"
            )
            for page in pages:
                out.update(str(o["Key"]) for o in page.get("Contents", []))
        return out

    def push_object(
        self, sha: str, rel: str, size: int, held: bool, present: bool = True
    ) -> PushedObject:
        key = object_key(self.url, sha)
        with s3_errors(f"vault push of {sha[:16]}"):
            h = head(self.client, self.url.bucket, key) if present else None
            planted = False
            if h is not None:
                h["_key"] = key
                if self._confirmed(h, sha, size, _expected(self.store, rel, size)[0]):
                    self._keep(h, key, held)
                    if self.progress:
                        self.progress(size)
                    return PushedObject(
                        sha,
                        key,
                        str(h.get("VersionId") or ""),
                        str(h.get("ChecksumSHA256") or b64(bytes.fromhex(sha))),
                        size,
                        held or self.ret.legal_hold,
                        reused=True,
                    )
                planted = True
            if size >= PART_SIZE:
                version, checksum = self._multipart(key, rel, sha, held)
            else:
                version, checksum = self._single(key, rel, sha, size, held)
        return PushedObject(
            sha, key, version, checksum, size, held or self.ret.legal_hold, planted=planted
        )

    def _single(self, key: str, rel: str, sha: str, size: int, held: bool) -> tuple[str, str]:
        full = b64(bytes.fromhex(sha))
        with _open_object(self.store, rel) as f:
            try:
                r = self.client.put_object(
                    Bucket=self.url.bucket,
                    Key=key,
                    Body=f,
                    ContentLength=size,
                    ChecksumSHA256=full,
                    **self.ret.put_args(held),
                )
            except Exception as e:
                if _code(e) in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
                    raise IntegrityError(
                        f"the server refused store object {sha[:16]}…: its bytes do not have"
                        " the recorded SHA-256; run custody verify"
                    ) from e
                raise
        with self.lock:
            self.sent += size
        if self.progress:
            self.progress(size)
        return str(r.get("VersionId") or ""), str(r.get("ChecksumSHA256") or full)

    def _multipart(self, key: str, rel: str, sha: str, held: bool) -> tuple[str, str]:
        """Upload in parts, each with its SHA-256, resuming an upload the server
        holds (a part it has with our digest, or our MD5 as ETag, is not sent
        again).  The whole object is hashed as it is read; unless it has the
        recorded SHA-256 the upload is aborted, so no other bytes are ever
        completed under the content address."""
        c, bucket = self.client, self.url.bucket
        upload = None
        for u in c.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", []):
            if u.get("Key") == key:
                upload = u["UploadId"]
        have: dict[int, dict[str, Any]] = {}
        if upload:
            for p in c.list_parts(Bucket=bucket, Key=key, UploadId=upload).get("Parts", []):
                have[int(p["PartNumber"])] = p
        else:
            upload = c.create_multipart_upload(
                Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256", **self.ret.put_args(held)
            )["UploadId"]
        done: list[dict[str, Any]] = []
        digests: list[bytes] = []
        whole = hashlib.sha256()
        pending: list[concurrent.futures.Future[dict[str, Any]]] = []

        def send(n: int, data: bytes, part_sum: str) -> dict[str, Any]:
            etag = c.upload_part(
                Bucket=bucket,
                Key=key,
                UploadId=upload,
                PartNumber=n,
                Body=data,
                ChecksumSHA256=part_sum,
            )["ETag"]
            with self.lock:
                self.sent += len(data)
            if self.progress:
                self.progress(len(data))
            return {"PartNumber": n, "ETag": etag, "ChecksumSHA256": part_sum}

        with (
            _open_object(self.store, rel) as f,
            concurrent.futures.ThreadPoolExecutor(max_workers=self.concurrency) as pool,
        ):
            ps = part_size_for(os.fstat(f.fileno()).st_size)
            for n in itertools.count(1):
                data = f.read(ps)
                if not data:
                    break
                whole.update(data)
                digest = hashlib.sha256(data).digest()
                digests.append(digest)
                part_sum = b64(digest)
                old = have.get(n)
                if (
                    old is not None
                    and int(old.get("Size", -1)) == len(data)
                    and (
                        old.get("ChecksumSHA256") == part_sum
                        or str(old.get("ETag", "")).strip('"')
                        == hashlib.md5(data, usedforsecurity=False).hexdigest()
                    )
                ):
                    done.append({"PartNumber": n, "ETag": old["ETag"], "ChecksumSHA256": part_sum})
                    continue
                # at most `concurrency` parts in memory: wait for the oldest first
                while len(pending) >= self.concurrency:
                    done.append(pending.pop(0).result())
                pending.append(pool.submit(send, n, data, part_sum))
            done.extend(p.result() for p in pending)
        done.sort(key=lambda d: int(d["PartNumber"]))
        if whole.hexdigest() != sha:
            c.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
            raise IntegrityError(
                f"store object {sha[:16]}… does not have its recorded SHA-256: not pushed;"
                " run custody verify"
            )
        r = c.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done}
        )
        expect = composite_checksum(digests)
        got = r.get("ChecksumSHA256")
        if got and got != expect:
            raise IntegrityError(
                f"the server's checksum of {key} is {got}, not {expect}: its parts are not"
                " custody's bytes"
            )
        version = str(r.get("VersionId") or "")
        # an upload resumed from an earlier run carries that run's lock: extend it
        h = head(c, bucket, key, version or None)
        if h is not None:
            self._keep(h, key, held)
        return version, str(got or expect)

    def put_bytes(self, key: str, data: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(data).digest()
        with s3_errors(f"vault push of {key}"):
            r = self.client.put_object(
                Bucket=self.url.bucket,
                Key=key,
                Body=data,
                ChecksumSHA256=b64(digest),
                **self.ret.put_args(False),
            )
        with self.lock:
            self.sent += len(data)
        return {
            "key": key,
            "version": str(r.get("VersionId") or ""),
            "sha256": digest.hex(),
            "checksum": str(r.get("ChecksumSHA256") or b64(digest)),
            "size": len(data),
        }


def _segment(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]", lambda m: f"%{ord(m.group()):02X}", text)[:120] or "_"


def _objects_of(r: Replay, items: list[str]) -> tuple[list[str], dict[str, tuple[str, int]]]:
    """The chosen items (all with stored bytes when none named) and their store
    objects: sha256 -> (store relpath, size)."""
    chosen: list[str] = []
    if items:
        for raw in items:
            i = find_item(r, raw)
            if i is None:
                raise UsageError(f"no such item: {raw}")
            chosen.append(i)
    else:
        chosen = [i for i, st in r.items.items() if st.store and not st.purged]
    objs: dict[str, tuple[str, int]] = {}
    for i in dict.fromkeys(chosen):
        st = r.items[i]
        if not st.store or st.purged:
            raise UsageError(f"{i} has no stored bytes to push")
        sha = str(st.digests.get("sha256", ""))
        objs[sha] = (str(st.store), -1)
    return list(dict.fromkeys(chosen)), objs


def push(
    ledger: Ledger,
    signer: Signer,
    url_text: str,
    items: list[str],
    ret: Retention,
    *,
    client: Any = None,
    endpoint_url: str | None = None,
    concurrency: int = 8,
    progress: ProgressFn | None = None,
    bundle: bool = True,
) -> PushResult:
    """Upload the chosen items' store objects and a bundle of them, locked, and
    record it all in a signed ``vault.push`` event."""
    url = parse_url(url_text)
    client = client or connect(endpoint_url, concurrency=concurrency)
    r = replay_ledger(ledger)
    chosen, objs = _objects_of(r, items)
    if not chosen:
        raise UsageError("no items with stored bytes to push")
    with s3_errors(f"vault {url}"):
        locked = bucket_locked(client, url.bucket)
    if ret.mode and not locked:
        raise UsageError(
            f"bucket {url.bucket} has no Object Lock: refused before uploading anything"
            " (give --no-lock to push unlocked; that is recorded)"
        )
    held_objects = {str(r.items[i].digests.get("sha256", "")) for i in r.holds if r.items[i].store}
    store = ledger.store_dir
    pusher = _Pusher(client, url, ret, progress, store, concurrency)
    sizes = {
        sha: os.stat(store / rel, follow_symlinks=False).st_size for sha, (rel, _) in objs.items()
    }
    pushed: list[PushedObject] = []
    there = pusher.listed()
    bag = None
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futs = [
            pool.submit(
                pusher.push_object,
                sha,
                rel,
                sizes[sha],
                sha in held_objects,
                object_key(url, sha) in there,
            )
            for sha, (rel, _) in sorted(objs.items(), key=lambda kv: -sizes[kv[0]])
        ]
        # the bundle is signed while the objects upload (its hashing overlaps the
        # network); a push that fails after this leaves that export event, not a push
        if bundle:
            bag = bag_contents(ledger, signer, chosen)
        for fut in futs:
            pushed.append(fut.result())
    pushed.sort(key=lambda o: o.sha256)
    notes = [
        f"other bytes were found under {o.key} and superseded by version {o.version}"
        for o in pushed
        if o.planted
    ]
    bundle_rec = _push_bundle(ledger, pusher, url, bag, concurrency) if bag else {}
    data = {
        "url": f"s3://{url.bucket}/{url.prefix}".rstrip("/"),
        "bucket": url.bucket,
        "prefix": url.prefix,
        "endpoint": endpoint_url or "",
        **ret.as_json(),
        "objects": [o.record() for o in pushed],
        "bundle": bundle_rec,
        "superseded": [o.key for o in pushed if o.planted],
    }
    ev = ledger.append(signer, [EventDraft(VAULT_PUSH_EVENT, data)])[-1]
    return PushResult(url, ev.seq, pushed, bundle_rec.get("prefix", ""), pusher.sent, notes)


def _push_bundle(
    ledger: Ledger, pusher: _Pusher, url: VaultURL, bag: BagContents, concurrency: int
) -> dict[str, Any]:
    """Upload a signed bundle's tag files; its payload is the content-addressed
    objects already pushed (never written or sent twice)."""
    hdr = ledger.case.hash.split(":")[-1][:6]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"{_segment(ledger.case.case_id)}@{hdr}"
    prefix = url.key("bundles", name, f"{stamp}-{_segment(socket.gethostname())}")
    tags = {n: b for n, b in sorted(bag.files.items()) if not n.startswith("data/")}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futs = {
            n: pool.submit(
                pusher.put_bytes, f"{prefix}/{n}", b if isinstance(b, bytes) else b.read_bytes()
            )
            for n, b in tags.items()
        }
        files = [{"name": n, **f.result()} for n, f in futs.items()]
    return {"prefix": prefix, "files": files}


# -- verify ----------------------------------------------------------------------------


@dataclass
class VaultReport(Verdict):
    url: str = ""
    objects_checked: int = 0
    downloaded: int = 0
    pushes: int = 0
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "url": self.url,
            "pushes": self.pushes,
            "objects_checked": self.objects_checked,
            "downloaded": self.downloaded,
            "notes": self.notes,
            "findings": [f.as_json() for f in self.findings],
        }


Records = list[tuple[int, dict[str, Any]]]


def recorded(ledger: Ledger, url: VaultURL) -> tuple[Records, Records]:
    """The signed ``vault.push`` and ``vault.holds`` events of this bucket and
    prefix, each in order (one query over the events of those two types)."""
    pushes: Records = []
    holds: Records = []
    for ev in ledger.events(types=(VAULT_PUSH_EVENT, VAULT_HOLDS_EVENT)):
        d = ev.data
        if d.get("bucket") == url.bucket and d.get("prefix", "") == url.prefix:
            (pushes if ev.type == VAULT_PUSH_EVENT else holds).append((ev.seq, d))
    return pushes, holds


def verify_vault(
    ledger: Ledger,
    url_text: str,
    *,
    client: Any = None,
    endpoint_url: str | None = None,
    download: bool = False,
    concurrency: int = 8,
    progress: ProgressFn | None = None,
) -> VaultReport:
    """Check every object version the case recorded as pushed to this vault:
    present, with the recorded checksum (the server's where it gives one, else a
    download; ``download`` always re-hashes), under a retention at least as long
    and a legal hold where recorded.  The ledger is verified first (quick), so
    what is checked comes from signed events checked in this run."""
    from custody.verify import verify_ledger

    url = parse_url(url_text)
    report = VaultReport(url=str(url))
    led = verify_ledger(ledger, quick=True)
    report.findings.extend(led.findings)
    failed = {f.seq for f in led.findings if f.seq is not None}
    all_pushes, all_holds = recorded(ledger, url)
    for seq, _ in sorted(all_pushes + all_holds):
        if seq in failed:
            report.notes.append(f"event {seq} failed verification: its records are not used")
    pushes = [e for e in all_pushes if e[0] not in failed]
    holds = [e for e in all_holds if e[0] not in failed]
    report.pushes = len(pushes)
    if not pushes:
        report.notes.append(f"this case records no push to {url}")
        return report
    client = client or connect(endpoint_url or str(pushes[-1][1].get("endpoint") or "") or None)
    checks: dict[tuple[str, str], tuple[int, dict[str, Any], dict[str, Any]]] = {}
    for seq, d in pushes:
        for o in d.get("objects", []):
            if isinstance(o, dict):
                checks[(str(o.get("key")), str(o.get("version")))] = (seq, d, o)
        b = d.get("bundle") if isinstance(d.get("bundle"), dict) else {}
        for o in b.get("files", []) if isinstance(b, dict) else []:
            if isinstance(o, dict):
                checks[(str(o.get("key")), str(o.get("version")))] = (
                    seq,
                    d,
                    {**o, "legal_hold": False},
                )

    for _, d in holds:
        for ch in d.get("changes", []):
            if isinstance(ch, dict) and (str(ch.get("key")), str(ch.get("version"))) in checks:
                pseq, pd, o = checks[(str(ch.get("key")), str(ch.get("version")))]
                checks[(str(ch.get("key")), str(ch.get("version")))] = (
                    pseq,
                    pd,
                    {**o, "legal_hold": ch.get("legal_hold") is True},
                )

    def one(item: tuple[int, dict[str, Any], dict[str, Any]]) -> Checked:
        seq, d, o = item
        return _check_version(client, url, seq, d, o, download)

    with s3_errors(f"vault verify {url}"):
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            for checked in pool.map(one, checks.values()):
                report.objects_checked += 1
                report.downloaded += checked.downloaded
                if progress:
                    progress(1)
                for kind, subject, detail in checked.findings:
                    report.add(kind, subject, detail)
    return report


@dataclass
class Checked:
    findings: list[tuple[Kind, str, str]] = field(default_factory=list)
    downloaded: bool = False


def _check_version(
    client: Any, url: VaultURL, seq: int, d: dict[str, Any], o: dict[str, Any], download: bool
) -> Checked:
    key, version = str(o.get("key")), str(o.get("version") or "")
    subject = f"s3://{url.bucket}/{key}" + (f"?versionId={version}" if version else "")
    h = head(client, url.bucket, key, version or None)
    res = Checked()
    out = res.findings
    if h is None:
        out.append(
            (Kind.VAULT_MISSING, subject, f"recorded by event {seq}; the server does not have it")
        )
        return res
    size = int(o.get("size", -1))
    if int(h.get("ContentLength", -1)) != size:
        out.append(
            (
                Kind.VAULT_CONTENT,
                subject,
                f"size {h.get('ContentLength')}, recorded {size} (event {seq})",
            )
        )
    sha = str(o.get("sha256", ""))
    recorded_sum = str(o.get("checksum", ""))
    got = h.get("ChecksumSHA256")
    if got and recorded_sum and got != recorded_sum:
        out.append(
            (
                Kind.VAULT_CONTENT,
                subject,
                f"server checksum {got}, recorded {recorded_sum} (event {seq})",
            )
        )
    if download or not got:
        found, n = read_sha256(client, url.bucket, key, version or None)
        res.downloaded = True
        if found != sha or n != size:
            out.append(
                (
                    Kind.VAULT_CONTENT,
                    subject,
                    f"downloaded bytes hash to {found[:16]}…, recorded {sha[:16]}…",
                )
            )
    if d.get("lock"):
        mode, until = str(d.get("mode")), parse_iso(str(d.get("retain_until")))
        got_mode, got_until = h.get("ObjectLockMode"), h.get("ObjectLockRetainUntilDate")
        if got_mode is None or got_until is None:
            out.append(
                (Kind.VAULT_RETENTION, subject, f"no retention; recorded {mode} until {iso(until)}")
            )
        else:
            if got_until < until:
                out.append(
                    (
                        Kind.VAULT_RETENTION,
                        subject,
                        f"retained until {iso(got_until)}, recorded {iso(until)}",
                    )
                )
            if mode == "COMPLIANCE" and got_mode != "COMPLIANCE":
                out.append((Kind.VAULT_RETENTION, subject, f"mode {got_mode}, recorded COMPLIANCE"))
        if o.get("legal_hold") and h.get("ObjectLockLegalHoldStatus") != "ON":
            out.append(
                (Kind.VAULT_RETENTION, subject, "legal hold recorded ON, the server says OFF")
            )
    return res


# -- legal holds -------------------------------------------------------------------


def sync_holds(
    ledger: Ledger,
    signer: Signer,
    url_text: str,
    *,
    client: Any = None,
    endpoint_url: str | None = None,
) -> tuple[int | None, list[dict[str, Any]]]:
    """Set the S3 legal hold on every pushed version whose item is under a legal
    hold in the case, and release it on those whose holds were all released (a
    version pushed with --legal-hold keeps it); record the changes in a signed
    ``vault.holds`` event.  Returns (event seq or None when nothing changed, changes)."""
    url = parse_url(url_text)
    r = replay_ledger(ledger)
    held = {str(r.items[i].digests.get("sha256", "")) for i in r.holds if i in r.items}
    want: dict[tuple[str, str], tuple[str, bool, bool]] = {}  # -> (sha, pinned, expected)
    pushes, holds = recorded(ledger, url)
    for _, d in pushes:
        pinned = d.get("legal_hold") is True
        for o in d.get("objects", []):
            if isinstance(o, dict):
                k = (str(o.get("key")), str(o.get("version")))
                want[k] = (str(o.get("sha256")), pinned, o.get("legal_hold") is True)
    for _, d in holds:
        for ch in d.get("changes", []):
            k = (str(ch.get("key")), str(ch.get("version"))) if isinstance(ch, dict) else ("", "")
            if k in want:
                want[k] = (want[k][0], want[k][1], ch.get("legal_hold") is True)
    if not want:
        raise UsageError(f"this case records no push to {url}")
    client = client or connect(endpoint_url)
    changes = []
    with s3_errors(f"vault sync-holds {url}"):
        for (key, version), (sha, pinned, expected) in sorted(want.items()):
            on = pinned or sha in held
            kw = {"Bucket": url.bucket, "Key": key, "VersionId": version}
            status = client.get_object_legal_hold(**kw).get("LegalHold", {}).get("Status")
            if (status == "ON") != on:
                client.put_object_legal_hold(**kw, LegalHold={"Status": "ON" if on else "OFF"})
            if expected != on or (status == "ON") != on:
                changes.append({"key": key, "version": version, "sha256": sha, "legal_hold": on})
    if not changes:
        return None, []
    data = {"bucket": url.bucket, "prefix": url.prefix, "changes": changes}
    ev = ledger.append(signer, [EventDraft(VAULT_HOLDS_EVENT, data)])[-1]
    return ev.seq, changes


# -- list and fetch -------------------------------------------------------------------


def list_bundles(client: Any, url_text: str) -> list[dict[str, Any]]:
    """The bundles in the vault, as each one's custody/bundle.json states them
    (claims, not verified: ``bundle import`` verifies)."""
    url = parse_url(url_text)
    out = []
    marker = "/custody/bundle.json"
    with s3_errors(f"vault list {url}"):
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=url.bucket, Prefix=url.key("bundles") + "/"
        )
        for page in pages:
            for obj in page.get("Contents", []):
                key = str(obj["Key"])
                if key.endswith(marker) and int(obj.get("Size", 0)) <= TAG_FILE_CAP:
                    out.append(_bundle_summary(client, url, key[: -len(marker)]))
    return out


def _bundle_summary(client: Any, url: VaultURL, prefix: str) -> dict[str, Any]:
    import json

    def get(name: str) -> Any:
        obj = client.get_object(Bucket=url.bucket, Key=f"{prefix}/custody/{name}")
        return json.loads(obj["Body"].read(TAG_FILE_CAP))

    # the push names its bundle folder <stamp>-<host>
    host = prefix.rsplit("/", 1)[-1].partition("-")[2]
    row: dict[str, Any] = {"url": f"s3://{url.bucket}/{prefix}", "host": host}
    try:
        b = get("bundle.json")
        keys = get("keys.json")
    except (ValueError, UnicodeDecodeError):
        return {**row, "error": "bundle.json or keys.json is not JSON"}
    except Exception as e:
        if _missing(e):
            return {**row, "error": "incomplete bundle"}
        raise
    if not isinstance(b, dict):
        return {**row, "error": "bundle.json is not an object"}
    case = b.get("case") if isinstance(b.get("case"), dict) else {}
    raw_items = b.get("items")
    items: list[Any] = raw_items if isinstance(raw_items, list) else []
    by = str(b.get("exported_by", ""))
    names = {
        str(k.get("fingerprint")): str(k.get("name", ""))
        for k in (keys if isinstance(keys, list) else [])
        if isinstance(k, dict)
    }
    row.update(
        {
            "case": str(case.get("id", "")) if isinstance(case, dict) else "",
            "header_hash": str(case.get("header_hash", "")) if isinstance(case, dict) else "",
            "exported_by": by,
            "exported_by_name": names.get(by, ""),
            "items": len(items),
            "exported": str(b.get("exported", "")),
        }
    )
    return row


def fetch_bundle(client: Any, url_text: str, dest: Path) -> Path:
    """Copy a vault bundle into ``dest`` (a new folder): its tag files, and each
    payload file from the content-addressed object its manifest-sha256 digest
    names, hashed while written.  The caller imports it with the usual checks."""
    url = parse_url(url_text)
    root_prefix, sep, _ = url.prefix.partition("/bundles/")
    if not sep:
        raise UsageError(f"{url_text} does not name a bundle (s3://BUCKET/PREFIX/bundles/…)")
    root = VaultURL(url.bucket, root_prefix)
    dest.mkdir(mode=0o700)
    with s3_errors(f"bundle import {url_text}"):
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=url.bucket, Prefix=url.prefix + "/"
        )
        names = []
        for page in pages:
            for obj in page.get("Contents", []):
                rel = str(obj["Key"])[len(url.prefix) + 1 :]
                if int(obj.get("Size", 0)) > TAG_FILE_CAP:
                    raise UsageError(f"{rel} in {url_text} is larger than a tag file may be")
                names.append(rel)
        if "custody/bundle.json" not in names or "manifest-sha256.txt" not in names:
            raise UsageError(f"{url_text} holds no custody bundle")
        for rel in names:
            target = _safe_target(dest, rel)
            body = client.get_object(Bucket=url.bucket, Key=f"{url.prefix}/{rel}")["Body"]
            _write_new(target, body, None)
        manifest = (dest / "manifest-sha256.txt").read_text(encoding="utf-8")
        for line in manifest.splitlines():
            digest, _, rel = line.partition("  ")
            if not re.fullmatch(r"[0-9a-f]{64}", digest) or not rel.startswith("data/"):
                raise UsageError(f"manifest-sha256.txt line {line[:80]!r} is malformed")
            rel = rel.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")
            target = _safe_target(dest, rel)
            body = client.get_object(Bucket=root.bucket, Key=object_key(root, digest))["Body"]
            _write_new(target, body, digest)
    return dest


@contextmanager
def staged_bundle(case_dir: Path, url_text: str, endpoint_url: str | None) -> Iterator[Path]:
    """A vault bundle copied into a private folder of the case (removed after),
    for ``bundle import`` to verify and import like any local bundle."""
    tmp = Path(tempfile.mkdtemp(prefix=".vault-import-", dir=case_dir))
    try:
        yield fetch_bundle(connect(endpoint_url), url_text, tmp / "bundle")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def vault_url_of(arg: str) -> str | None:
    """An ``s3://`` argument as the user typed it (a Path collapses its ``//``)."""
    for lead in ("s3://", "s3:/"):
        if arg.startswith(lead):
            return "s3://" + arg[len(lead) :]
    return None


def _safe_target(dest: Path, rel: str) -> Path:
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in rel:
        raise UsageError(f"vault bundle entry {rel[:80]!r} would leave the bundle")
    target = dest.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return target


def _write_new(target: Path, body: Any, sha256_hex: str | None) -> None:
    h = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        for chunk in iter(lambda: body.read(CHUNK), b""):
            h.update(chunk)
            f.write(chunk)
    if sha256_hex is not None and h.hexdigest() != sha256_hex:
        raise IntegrityError(
            f"the vault object for {target.name} does not hash to its manifest digest"
            f" {sha256_hex[:16]}…: refused"
        )
