"""A real webhook receiver for tests: an HTTP server on loopback, in a thread.

``with running_receiver(secret) as receiver:`` serves on ``receiver.url`` (127.0.0.1,
an ephemeral port) until the block ends. Each request is recorded (method, path,
headers, raw body) with whether its ``X-CommerceLayer-Signature`` matched the secret,
checked with :func:`copying.webhooks.signing.verify`, as a receiver written for
Commerce Layer would. What it answers is ``receiver.behaviour``, which a test may set
at any time: :class:`Answer`, :class:`Hang`, :class:`Redirect`, :class:`HugeBody` or
:class:`Drip`. With ``certificate=(cert, key)`` it speaks TLS and records the SNI name
each client asked for.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from copying.webhooks.signing import SIGNATURE_HEADER, verify

CHUNK = 64 * 1024


@dataclass(frozen=True)
class Answer:
    status: int = 204
    body: bytes = b""


@dataclass(frozen=True)
class Hang:
    """Say nothing for this long (or until the receiver stops), then answer 204."""

    seconds: float


@dataclass(frozen=True)
class Redirect:
    location: str
    status: int = 307


@dataclass(frozen=True)
class HugeBody:
    """Answer 200 with a body of ``size`` bytes, written until the client goes away."""

    size: int


@dataclass(frozen=True)
class Drip:
    """Send an endless status line and header, one byte every ``interval`` seconds."""

    interval: float


Behaviour = Answer | Hang | Redirect | HugeBody | Drip


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Names in lower case."""
    body: bytes
    signature_matched: bool


@dataclass
class Receiver:
    url: str
    secret: str
    behaviour: Behaviour = field(default_factory=Answer)
    requests: list[ReceivedRequest] = field(default_factory=list)
    connections: int = 0
    """Connections accepted, counted before anything is read from them."""
    huge_body_bytes_sent: list[int] = field(default_factory=list)
    """For each :class:`HugeBody` answer: body bytes written before the client left."""
    sni: list[str | None] = field(default_factory=list)
    _answered: int = 0
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def wait_until_answered(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` requests have been dealt with (answered, or the client left)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._answered >= count, timeout):
                raise AssertionError(f"{self._answered} of {count} requests answered")

    def _count_answered(self) -> None:
        with self._changed:
            self._answered += 1
            self._changed.notify_all()


@contextmanager
def running_receiver(
    secret: str, *, behaviour: Behaviour | None = None, certificate: tuple[Path, Path] | None = None
) -> Iterator[Receiver]:
    tls: ssl.SSLContext | None = None
    if certificate is not None:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(*certificate)
    server = _Server(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    scheme = "https" if tls else "http"
    receiver = Receiver(url=f"{scheme}://127.0.0.1:{port}", secret=secret)
    if behaviour is not None:
        receiver.behaviour = behaviour
    server.receiver = receiver
    server.tls = tls
    if tls is not None:
        tls.sni_callback = lambda _socket, name, _context: receiver.sni.append(name)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield receiver
    finally:
        receiver._stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver
    tls: ssl.SSLContext | None

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.receiver.connections += 1
        return True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that leave early are part of the tests; stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _Server

    def setup(self) -> None:
        if self.server.tls is not None:
            self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if isinstance(self.request, ssl.SSLSocket):
                # socketserver closes the socket it accepted, which wrap_socket detached.
                self.request.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        receiver = self.server.receiver
        try:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            receiver.requests.append(
                ReceivedRequest(
                    method=self.command,
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                    signature_matched=verify(
                        receiver.secret, body, self.headers.get(SIGNATURE_HEADER, "")
                    ),
                )
            )
            self._behave(receiver, receiver.behaviour)
        finally:
            receiver._count_answered()

    def _behave(self, receiver: Receiver, behaviour: Behaviour) -> None:
        self.close_connection = True
        match behaviour:
            case Answer(status, body):
                self._answer(status, body)
            case Hang(seconds):
                receiver._stopping.wait(seconds)
                self._answer(204, b"")
            case Redirect(location, status):
                self.send_response(status)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
            case HugeBody(size):
                receiver.huge_body_bytes_sent.append(self._send_huge(size))
            case Drip(interval):
                self._drip(receiver, interval)

    def _answer(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up waiting

    def _send_huge(self, size: int) -> int:
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        chunk = b"x" * CHUNK
        sent = 0
        try:
            while sent < size:
                self.wfile.write(chunk[: size - sent])
                sent += min(CHUNK, size - sent)
        except OSError:
            pass
        return sent

    def _drip(self, receiver: Receiver, interval: float) -> None:
        try:
            for byte in b"HTTP/1.1 200 OK\r\nX-Drip: ":
                self.wfile.write(bytes([byte]))
                if receiver._stopping.wait(interval):
                    return
            while not receiver._stopping.wait(interval):
                self.wfile.write(b"x")
        except OSError:
            pass


def unused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
