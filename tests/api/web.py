"""Real web servers for tests that need the HTTP wire: uvicorn in a thread of this
process (it sees this process's settings), or web processes of their own; and a raw
HTTP/1.1 client that sends a request's head and body in the pieces a test chooses."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from tests.chaos.processes import UVICORN
from tests.services import free_port
from tests.worker.processes import REPO

#: Seconds a server may take to start; a bound on waiting, not a measurement.
START_WITHIN = 60.0
#: Seconds a raw request waits for its answer before the test fails.
ANSWER_WITHIN = 20.0


@contextmanager
def server_in_thread() -> Iterator[str]:
    """``api.app:app`` served by uvicorn in a thread; its base URL."""
    from api.app import app

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_WITHIN
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped before it started"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(START_WITHIN)


@contextmanager
def web_processes(count: int, settings: dict[str, str], logs: Path) -> Iterator[list[str]]:
    """``count`` uvicorn processes of ``api.app:app`` on this run's database and broker,
    with ``settings`` (ORDERCOPY_ names without the prefix) added; their base URLs."""
    env = {**os.environ, **{f"ORDERCOPY_{k.upper()}": v for k, v in settings.items()}}
    with ExitStack() as stack:
        urls = []
        for n in range(count):
            port = free_port()
            log = stack.enter_context((logs / f"web{n}.log").open("wb"))
            process = subprocess.Popen(
                [
                    *(UVICORN, "api.app:app", "--host", "127.0.0.1", "--port", str(port)),
                    *("--log-level", "warning", "--no-access-log"),
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stack.callback(_stop, process)
            urls.append(f"http://127.0.0.1:{port}")
        for n, url in enumerate(urls):
            _wait_for(url, logs / f"web{n}.log")
        yield urls


def _wait_for(url: str, log: Path) -> None:
    deadline = time.monotonic() + START_WITHIN
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not start:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(START_WITHIN)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class RawAnswer:
    status: int
    head: str
    body: bytes
    #: Bytes of the body the server's answer came before the client had sent them all
    #: (the server answered without reading everything, or the send failed part way).
    body_sent: int


def raw_request(url: str, head: str, body: Iterable[bytes] = ()) -> RawAnswer:
    """Send ``head`` (request line and headers, without the blank line), then ``body``'s
    pieces until the server answers or closes, never anything else; read the answer."""
    host, port = url.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=ANSWER_WITHIN) as connection:
        connection.sendall(head.replace("\n", "\r\n").encode() + b"\r\n\r\n")
        try:
            for piece in body:
                connection.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: read its answer
        received = b""
        try:
            while b"\r\n\r\n" not in received or not _complete(received):
                chunk = connection.recv(65536)
                if not chunk:
                    break
                received += chunk
        except ConnectionResetError:
            pass
    head_text, _, answer_body = received.partition(b"\r\n\r\n")
    assert head_text, f"no answer (sent {sent} bytes of body)"
    status = int(head_text.split(b" ", 2)[1])
    return RawAnswer(status, head_text.decode(), answer_body, sent)


def _complete(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    for line in head.decode().lower().split("\r\n"):
        if line.startswith("content-length:"):
            return len(body) >= int(line.split(":", 1)[1])
    return False
