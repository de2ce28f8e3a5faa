"""A webhook receiver for the bench: loopback, one thread per connection, 204 at once.

It verifies nothing and stores nothing but counts: the bench measures the sender, so
the receiver answers as fast as a server can. Event ids are kept to tell a duplicate
delivery (at least once) from a new one.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

EVENT_ID_HEADER = "X-Ordercopy-Event-Id"


class Receiver(ThreadingHTTPServer):
    daemon_threads = True
    # Deliveries arrive ORDERCOPY_WEBHOOKS_CONCURRENCY at a time; the default backlog of 5
    # would refuse connections under a burst and count as failed deliveries.
    request_queue_size = 128

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests = 0
        self.event_ids: set[str] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, name="receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def count(self, event_id: str | None) -> None:
        with self._lock:
            self.requests += 1
            if event_id:
                self.event_ids.add(event_id)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.count(self.headers.get(EVENT_ID_HEADER))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: one line per delivery would cost more than the answer."""
