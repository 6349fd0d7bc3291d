"""A real RFC 3161 timestamp authority on loopback, for tests: `openssl ts -reply` over HTTP.

A throwaway CA issues the TSA certificate (extendedKeyUsage timeStamping, critical,
as RFC 3161 requires); each POSTed request is answered by `openssl ts -reply` run
as an argv list. P-256 keys: OpenSSL 3.0 cannot sign timestamp replies with Ed25519.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_TSA_CONFIG = """\
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
serial = {serial}
crypto_device = builtin
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""
_TSA_EXTENSIONS = (
    "basicConstraints=CA:FALSE\n"
    "keyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=critical,timeStamping\n"
)
_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


@dataclass(frozen=True)
class TimestampAuthority:
    base: str  # http://127.0.0.1:PORT
    ca_cert: Path
    tsa_cert: Path
    other_ca_cert: Path  # a CA that did not issue the TSA certificate

    @property
    def url(self) -> str:
        return f"{self.base}/tsa"


def _openssl(*argv: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, argv)], cwd=cwd, check=True, capture_output=True)


def _make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    _openssl(
        "req", "-x509", *_KEY, "-keyout", key, "-out", cert, "-days", "2",
        "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign", cwd=folder,
    )  # fmt: skip
    return key, cert


def make_authority_files(folder: Path) -> dict[str, Path]:
    ca_key, ca_cert = _make_ca(folder, "test-ca")
    _, other_cert = _make_ca(folder, "other-ca")
    (folder / "ext.cnf").write_text(_TSA_EXTENSIONS)
    _openssl(
        "req", *_KEY, "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", "/CN=Test TSA",
        cwd=folder,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "tsa.csr", "-CA", ca_cert, "-CAkey", ca_key,
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "tsa.crt", cwd=folder,
    )  # fmt: skip
    (folder / "serial").write_text("01\n")
    (folder / "ts.cnf").write_text(_TSA_CONFIG.format(serial=folder / "serial"))
    return {"ca": ca_cert, "other": other_cert, "tsa": folder / "tsa.crt"}


def _handler(folder: Path, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    """POST /tsa: a fresh reply. /replay: the previous reply again. /broken: HTTP 500."""
    last: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/broken":
                self.send_error(500)
                return
            answer = last[-1] if self.path == "/replay" and last else _reply(folder, lock, body)
            last.append(answer)
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def _reply(folder: Path, lock: threading.Lock, body: bytes) -> bytes:
    with lock, tempfile.TemporaryDirectory(dir=folder) as tmp:
        query, reply = Path(tmp) / "q.tsq", Path(tmp) / "r.tsr"
        query.write_bytes(body)
        _openssl(
            "ts", "-reply", "-config", folder / "ts.cnf", "-queryfile", query,
            "-inkey", folder / "tsa.key", "-signer", folder / "tsa.crt", "-out", reply,
            cwd=folder,
        )  # fmt: skip
        return reply.read_bytes()


@contextmanager
def running_authority(folder: Path) -> Iterator[TimestampAuthority]:
    files = make_authority_files(folder)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(folder, threading.Lock()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield TimestampAuthority(
            f"http://127.0.0.1:{port}", files["ca"], files["tsa"], files["other"]
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
