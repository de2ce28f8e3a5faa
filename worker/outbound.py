"""One outbound request: a POST to a URL a customer chose, bounded in every way. Webhook
deliveries and external payment gateways' calls both go out through :func:`post`.

:func:`post` re-checks the callback URL (:func:`copying.webhooks.addresses.check_callback_url`:
DNS answers change between deliveries), then connects to an address that check
approved, never to a second DNS answer: the TCP connection goes to the checked IP,
while the ``Host`` header, TLS SNI and certificate check use the URL's host name. So a
host that answers DNS with a public address for the check and a private one a moment
later cannot turn a delivery into a request to the private network.

The HTTP/1.1 exchange uses the standard library's ``http.client`` over a socket this
module opens itself. No HTTP library is a runtime dependency of the project, and this
one gives what a delivery needs: the connection to a chosen address, and one deadline
that covers connect, TLS handshake, sending and every read, which a client with a
timeout per operation cannot give (a receiver sending one byte a second would never
trip a 5-second read timeout).

What the deadline does not cover: resolving the host name. ``socket.getaddrinfo``
cannot be interrupted; its time counts against the deadline, but a resolver that
hangs holds the caller for as long as the system resolver's own limits allow.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from copying.webhooks.addresses import (
    CallbackTarget,
    CallbackUrlError,
    Resolver,
    check_callback_url,
    resolve_host,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

# Headers the request line and the connection decide; a caller's value would contradict them.
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_REASON_LIMIT = 200


@dataclass(frozen=True)
class Delivery:
    """What became of one POST: the receiver's status (None when there was no answer),
    one line saying what happened, the seconds it took, and the answer's body as read
    (at most ``max_response_bytes``; empty when there was none or it was cut off)."""

    status: int | None
    message: str
    elapsed: float
    body: bytes = b""

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    allow_private: bool,
    live: bool,
    max_response_bytes: int = 4096,
    resolve: Resolver = resolve_host,
    tls_context: ssl.SSLContext | None = None,
) -> Delivery:
    """POST ``body`` to ``url`` once, and say what came of it; never raises for the network.

    - The URL is checked first, with the same rules as when the webhook was saved; a
      URL that may not be called is refused without connecting (status None).
    - ``timeout`` (seconds) bounds the whole exchange: connect, TLS, send, and reading
      the answer. Past it, the result is status None, "timed out after ...".
    - Redirects are not followed: a 3xx is returned as it is (not delivered).
    - At most ``max_response_bytes`` of the answer's body are read, into the message;
      the rest is never read, and the connection is closed. An answer whose body
      cannot be read that far keeps its status (the receiver did answer), and the
      message says the body was cut off.
    - Timeouts, refused or reset connections, TLS and protocol errors become a
      ``Delivery`` with status None and the error as message. A bad argument (a
      reserved or malformed header) is the caller's bug and raises ``ValueError``.

    ``resolve`` (host name to addresses) and ``tls_context`` (default: the system's
    trusted roots, host name checked) are there for tests and special deployments.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, not {timeout}")
    if max_response_bytes < 0:
        raise ValueError(f"max_response_bytes must be >= 0, not {max_response_bytes}")
    reserved = sorted(name for name in headers if name.lower() in RESERVED_HEADERS)
    if reserved:
        raise ValueError(f"post() sets these headers itself: {', '.join(reserved)}")

    started = time.monotonic()
    deadline = started + timeout

    def result(status: int | None, message: str, body: bytes = b"") -> Delivery:
        return Delivery(status, message, time.monotonic() - started, body)

    try:
        target = check_callback_url(url, live=live, allow_private=allow_private, resolve=resolve)
    except CallbackUrlError as error:
        return result(None, f"not sent: {error}")

    connection = _PinnedConnection(target, deadline, tls_context or _default_tls_context())
    response: http.client.HTTPResponse | None = None
    try:
        connection.request("POST", target.request_target, body, {**headers, "Connection": "close"})
        response = connection.getresponse()
        try:
            excerpt = response.read(max_response_bytes)
            problem = ""
        except (OSError, http.client.HTTPException) as error:
            excerpt = b""
            problem = f" (answer body cut off: {_describe(error, timeout)})"
        return result(response.status, _answer_message(response, excerpt) + problem, excerpt)
    except (OSError, http.client.HTTPException) as error:
        where = f" ({connection.peer})" if connection.peer else ""
        return result(None, _describe(error, timeout) + where)
    finally:
        if response is not None:
            response.close()
        connection.close_socket()


class _PinnedConnection(http.client.HTTPConnection):
    """``http.client`` speaking to ``target.host``, connected to one of ``target.addresses``.

    The socket belongs to this object and is closed by :meth:`close_socket` only:
    ``http.client`` "closes" the connection as soon as it has read the answer's headers
    of a ``Connection: close`` exchange, while the body is still to be read.
    """

    def __init__(
        self, target: CallbackTarget, deadline: float, tls_context: ssl.SSLContext
    ) -> None:
        super().__init__(target.host, target.port)
        if target.scheme == "https":
            self.default_port = 443  # the Host header leaves out the scheme's own port
        self._target = target
        self._deadline = deadline
        self._tls_context = tls_context
        self._raw: socket.socket | None = None
        self.peer = ""

    def connect(self) -> None:
        raw = self._connect_to_checked_address()
        self._raw = raw
        if self._target.scheme == "https":
            raw.settimeout(_remaining(self._deadline))
            # SNI and the certificate's name check use the URL's host, not the address.
            raw = self._tls_context.wrap_socket(raw, server_hostname=self._target.host)
            self._raw = raw
        self.sock = _DeadlineSocket(raw, self._deadline)

    def _connect_to_checked_address(self) -> socket.socket:
        port = self._target.port
        error: OSError = OSError("no address to connect to")
        for address in self._target.addresses:
            self.peer = f"{address} port {port}"
            try:
                raw = socket.create_connection((address, port), timeout=_remaining(self._deadline))
            except TimeoutError:
                raise
            except OSError as failed:
                error = failed
                continue
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return raw
        raise error

    def close_socket(self) -> None:
        self.close()
        if self._raw is not None:
            self._raw.close()
            self._raw = None


class _DeadlineSocket:
    """The part of a socket ``http.client`` uses, each operation given the time left."""

    def __init__(self, raw: socket.socket, deadline: float) -> None:
        self._raw = raw
        self._deadline = deadline

    def sendall(self, data: bytes) -> None:
        self._raw.settimeout(_remaining(self._deadline))
        self._raw.sendall(data)

    def makefile(self, mode: str) -> io.BufferedReader:
        assert mode == "rb", mode
        return io.BufferedReader(_DeadlineReader(self._raw, self._deadline))

    def close(self) -> None:
        """Nothing: see :class:`_PinnedConnection`."""


class _DeadlineReader(io.RawIOBase):
    def __init__(self, raw: socket.socket, deadline: float) -> None:
        super().__init__()
        self._raw = raw
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        self._raw.settimeout(_remaining(self._deadline))
        return self._raw.recv_into(buffer)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


@cache
def _default_tls_context() -> ssl.SSLContext:
    # The system's trusted roots, hostname checking on, TLS 1.2 at least.
    return ssl.create_default_context()


def _answer_message(response: http.client.HTTPResponse, excerpt: bytes) -> str:
    head = f"{response.status} {_one_line(response.reason)[:_REASON_LIMIT]}".rstrip()
    if 300 <= response.status < 400:
        location = _one_line(response.getheader("Location") or "")[:_REASON_LIMIT]
        return f"{head}: redirect to {location or '(no Location)'} not followed"
    text = _one_line(excerpt.decode("utf-8", "replace"))
    return f"{head}: {text}" if text else head


def _describe(error: BaseException, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate rejected: {error.verify_message or error.reason}"
    if isinstance(error, ssl.SSLError):
        return f"TLS error: {error.reason or error}"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, http.client.RemoteDisconnected):
        return "connection closed without an answer"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    if isinstance(error, http.client.HTTPException):
        return _one_line(f"invalid HTTP answer: {type(error).__name__} {error}")[:_REASON_LIMIT]
    if isinstance(error, OSError) and error.strerror:
        return f"network error: {error.strerror}"
    return _one_line(f"network error: {error}")[:_REASON_LIMIT]


def _one_line(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())
