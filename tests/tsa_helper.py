"""A local RFC 3161 time-stamp authority for tests, built from the ``openssl`` CLI.

``make_pki(dir)`` makes a self-signed CA and a TSA certificate issued by it (P-256 keys,
``extendedKeyUsage = critical, timeStamping``) plus an ``openssl ts`` configuration;
``LocalTSA`` serves ``openssl ts -reply`` for POSTed ``.tsq`` bodies on 127.0.0.1 (a free
port chosen by the kernel, in a thread, shut down by ``close()``).

The fixture ``local_tsa`` (import it into a test module) yields ``(url, ca_pem, tsa_pem)``.

The TSA configuration leaves ``certs=`` out on purpose: with it, OpenSSL writes the
SignedData certificate SET unsorted, which rfc3161-client rejects as non-DER (see
tests/vectors/README.md).  With ``-cert`` in the request the signer certificate is
still embedded.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

import pytest

needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="needs the openssl command-line tool"
)

POLICY = "1.3.6.1.4.1.99999.1"  # a private-arc test policy OID


def openssl(
    *args: str | Path, cwd: Path | None = None, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, input=input, capture_output=True, timeout=60
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"openssl {' '.join(map(str, args))} failed:\n{proc.stderr.decode(errors='replace')}"
        )
    return proc


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca_key: Path
    ca_crt: Path
    tsa_key: Path
    tsa_crt: Path
    config: Path

    @property
    def ca_pem(self) -> bytes:
        return self.ca_crt.read_bytes()

    @property
    def tsa_pem(self) -> bytes:
        return self.tsa_crt.read_bytes()


def _ec_key(path: Path) -> None:
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)


def make_ca(dir: Path, name: str = "custody test TSA root") -> tuple[Path, Path]:
    """A self-signed CA certificate and its key in ``dir`` (created)."""
    dir.mkdir(parents=True, exist_ok=True)
    key, crt = dir / "ca.key", dir / "ca.crt"
    _ec_key(key)
    openssl(
        "req",
        "-new",
        "-x509",
        "-key",
        key,
        "-out",
        crt,
        "-days",
        "3650",
        "-subj",
        f"/O=custody tests/CN={name}",
        "-sha256",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    return key, crt


def make_pki(dir: Path, *, name: str = "custody test TSA") -> Pki:
    """CA + TSA certificate + ``openssl ts`` config in ``dir``.  (``openssl ts -reply``
    refuses to sign with a certificate whose EKU is not critical timeStamping only, so
    no weakened variant is offered.)"""
    ca_key, ca_crt = make_ca(dir, f"{name} root")
    tsa_key, tsa_csr, tsa_crt = dir / "tsa.key", dir / "tsa.csr", dir / "tsa.crt"
    _ec_key(tsa_key)
    openssl("req", "-new", "-key", tsa_key, "-out", tsa_csr, "-subj", f"/O=custody tests/CN={name}")
    ext = dir / "tsa.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,nonRepudiation\n"
        "extendedKeyUsage=critical,timeStamping\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )
    openssl(
        "x509",
        "-req",
        "-in",
        tsa_csr,
        "-CA",
        ca_crt,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-out",
        tsa_crt,
        "-days",
        "3650",
        "-sha256",
        "-extfile",
        ext,
    )
    (dir / "tsaserial").write_text("01\n")
    config = dir / "tsa.cnf"
    # No "certs =" line: see the module docstring.
    config.write_text(f"""\
[ tsa ]
default_tsa = tsa_config1

[ tsa_config1 ]
dir = {dir}
serial = $dir/tsaserial
crypto_device = builtin
signer_cert = $dir/tsa.crt
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {POLICY}
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
""")
    return Pki(
        dir=dir, ca_key=ca_key, ca_crt=ca_crt, tsa_key=tsa_key, tsa_crt=tsa_crt, config=config
    )


def reply(pki: Pki, query: bytes) -> bytes:
    """``openssl ts -reply`` for one DER TimeStampReq; returns the DER TimeStampResp."""
    with tempfile.TemporaryDirectory(dir=pki.dir) as work:
        tsq, tsr = Path(work) / "req.tsq", Path(work) / "resp.tsr"
        tsq.write_bytes(query)
        openssl("ts", "-reply", "-config", pki.config, "-queryfile", tsq, "-out", tsr)
        return tsr.read_bytes()


Responder = Callable[[bytes], tuple[int, str, bytes]]
"""Maps a POSTed body to (HTTP status, content type, body)."""


class HttpStub:
    """A tiny HTTP server on 127.0.0.1 answering POSTs with ``responder``, in a thread."""

    def __init__(self, responder: Responder) -> None:
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:  # openssl ts -reply updates the serial file
                    status, ctype, out = responder(body)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/tsa"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class LocalTSA(HttpStub):
    """``openssl ts -reply`` behind HTTP.  Every query received is kept in ``queries``."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.queries: list[bytes] = []

        def respond(body: bytes) -> tuple[int, str, bytes]:
            self.queries.append(body)
            try:
                return 200, "application/timestamp-reply", reply(pki, body)
            except RuntimeError as e:
                return 400, "text/plain", str(e).encode()

        super().__init__(respond)


class TSA(NamedTuple):
    url: str
    ca_pem: bytes
    tsa_pem: bytes


@pytest.fixture
def local_pki(tmp_path: Path) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command-line tool")
    return make_pki(tmp_path / "pki")


@pytest.fixture
def local_tsa_server(local_pki: Pki) -> Iterator[LocalTSA]:
    tsa = LocalTSA(local_pki)
    try:
        yield tsa
    finally:
        tsa.close()


@pytest.fixture
def local_tsa(local_tsa_server: LocalTSA) -> TSA:
    """(url, CA certificate PEM, TSA certificate PEM) of a running local TSA."""
    return TSA(local_tsa_server.url, local_tsa_server.pki.ca_pem, local_tsa_server.pki.tsa_pem)
