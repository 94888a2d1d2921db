"""A customer's webhook endpoint for the tests: a real HTTP (or HTTPS) server on loopback
that records every connection and request and answers as the test scripts it.

Also: a self-signed certificate for a host name (to test TLS with SNI and the host name
check), and a guard over `socket.socket.connect` that records every address the code
tries to reach, refuses them all, and lets chosen ones through to a local server.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    server_name: str | None  # the TLS SNI the client sent, over HTTPS


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0
    endless: bool = False  # stream a body that never ends


class Receiver:
    """`with Receiver() as hooks:` serves on `hooks.url`; `hooks.answers` is a list of
    `Answer`s used in turn (then `default`); `hooks.requests` and `hooks.connections`
    say what arrived."""

    def __init__(self, *, tls: tuple[Path, Path] | None = None, host: str = "127.0.0.1") -> None:
        self.answers: list[Answer] = []
        self.default = Answer()
        self.requests: list[Received] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._tls = tls
        self._host = host
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self._handle()

            def do_GET(self) -> None:
                self._handle()

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                server_name = getattr(self.connection, "mochi_server_name", None)
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.command, self.path, dict(self.headers), body, server_name)
                    )
                    answer = receiver.answers.pop(0) if receiver.answers else receiver.default
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    if answer.endless:
                        self.send_header("Content-Length", str(10**12))
                        self.end_headers()
                        while True:
                            self.wfile.write(b"x" * 65536)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    pass  # the client hung up (as it should, after a few KB)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[Any, Any]:
                sock, address = self.socket.accept()
                with receiver._lock:
                    receiver.connections += 1
                if receiver._context is not None:
                    sock = receiver._context.wrap_socket(sock, server_side=True)
                return sock, address

        self._context: ssl.SSLContext | None = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))

            def remember_name(sock: Any, name: str | None, _: Any) -> None:
                sock.mochi_server_name = name

            context.sni_callback = remember_name
            self._context = context
        self._server = Server((host, 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self._host}:{self.port}/hooks/mochi"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def self_signed(host: str) -> tuple[Path, Path]:
    """A certificate (and its key) for `host`, valid now; the certificate is its own CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = Path(tempfile.mkdtemp(prefix="mochi-test-tls-"))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class SocketGuard:
    """Every outgoing connection attempt, as (host, port); refused unless routed."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []
        self.routes: dict[tuple[str, int], tuple[str, int]] = {}

    def hosts(self) -> set[str]:
        return {host for host, _ in self.attempts}


@contextmanager
def guarded_sockets() -> Iterator[SocketGuard]:
    """Patch `socket.socket.connect` and `socket.create_connection`: record each address,
    pass the routed ones to their local stand-in, refuse the rest."""
    guard = SocketGuard()
    real_connect = socket.socket.connect
    real_create = socket.create_connection

    def connect(sock: socket.socket, address: Any) -> None:
        host, port = str(address[0]), int(address[1])
        guard.attempts.append((host, port))
        if (host, port) in guard.routes:
            real_connect(sock, guard.routes[(host, port)])
            return
        raise ConnectionRefusedError(f"test guard: no connection to {host}:{port}")

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        host, port = str(address[0]), int(address[1])
        guard.attempts.append((host, port))
        if (host, port) in guard.routes:
            return real_create(guard.routes[(host, port)], *args, **kwargs)
        raise ConnectionRefusedError(f"test guard: no connection to {host}:{port}")

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.create_connection = create_connection
    try:
        yield guard
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.create_connection = real_create
