"""A client of the chaos stack's web processes, as a careful integration would write one.

Requests go to the web processes in turn (a load balancer that does not know
which are up). A connection error, a timeout or a 5xx is retried, with the
very same request (a create keeps its Idempotency-Key), on the next process,
until an answer below 500 or a deadline. Every attempt is counted by its
outcome; every error answer that is not a JSON:API error document is kept
(tests/chaos/promises.py makes that a violation).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2

from api.errors import MEDIA_TYPE

#: Connect fast (a dead process refuses at once); a request may wait on a slow database.
TIMEOUT = httpx2.Timeout(10.0, connect=2.0)
PAUSE = 0.3  # between a refused attempt and the next


@dataclass(frozen=True)
class Answer:
    """The answer a request finally got (None if the client gave up), the attempts it
    took, and when the answered attempt was sent (``time.time()``)."""

    response: httpx2.Response | None
    attempts: int
    sent_at: float


def outcome(error: httpx2.TransportError) -> str:
    if isinstance(error, httpx2.ConnectError):
        return "connection refused (no web process listening)"
    if isinstance(error, httpx2.TimeoutException):
        return "timed out"
    return "connection lost mid-request (web process killed)"


def error_document_problem(response: httpx2.Response) -> str | None:
    """Why an error answer is not a JSON:API error document, or None if it is one."""
    if not response.headers.get("content-type", "").startswith(MEDIA_TYPE):
        return f"content-type {response.headers.get('content-type')!r}"
    try:
        errors = response.json()["errors"]
    except (ValueError, KeyError, TypeError):
        return "no errors member"
    if not errors or any(e.get("status") != str(response.status_code) for e in errors):
        return f"errors {errors!r} do not carry status {response.status_code}"
    return None


class ApiClient:
    """Thread-safe: one connection pool shared by the traffic's threads."""

    def __init__(self, urls: Sequence[str], token: str) -> None:
        self.urls = list(urls)
        self._next = itertools.cycle(range(len(self.urls)))
        self.http = httpx2.Client(
            timeout=TIMEOUT,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": MEDIA_TYPE,
                "Content-Type": MEDIA_TYPE,
            },
        )
        #: ``"<what>: <outcome>"`` → attempts.
        self.requests: Counter[str] = Counter()
        #: Error answers that were not JSON:API error documents.
        self.malformed: list[str] = []
        #: Answers that were server errors other than 503 (the database unreachable).
        self.crashed: list[str] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def count(self, what: str, result: str) -> None:
        with self._lock:
            self.requests[f"{what}: {result}"] += 1

    def send(
        self,
        what: str,
        method: str,
        path: str,
        *,
        give_up_after: float,
        stopping: Callable[[], bool] = lambda: False,
        first_timeout: float | None = None,
        **request: Any,
    ) -> Answer:
        """Until the first answer below 500, or ``give_up_after`` seconds (or
        ``stopping()``) of refusals. ``first_timeout`` cuts the first attempt short, as
        an impatient client does (the server may well finish it)."""
        deadline = time.monotonic() + give_up_after
        for attempt in itertools.count(1):
            with self._lock:
                url = self.urls[next(self._next)]
            sent_at = time.time()
            timeout = first_timeout if attempt == 1 and first_timeout else TIMEOUT
            try:
                response = self.http.request(method, url + path, timeout=timeout, **request)
            except httpx2.TransportError as error:
                self.count(what, outcome(error))
            else:
                self.count(what, self._outcome(what, response))
                if response.status_code < 500:
                    return Answer(response, attempt, sent_at)
            if time.monotonic() > deadline or stopping():
                self.count(what, "given up")
                return Answer(None, attempt, sent_at)
            time.sleep(PAUSE)
        raise AssertionError("unreachable")

    def _outcome(self, what: str, response: httpx2.Response) -> str:
        status = response.status_code
        if status < 400:
            return str(status)
        problem = error_document_problem(response)
        with self._lock:
            if problem:
                self.malformed.append(f"{what} answered {status}: {problem}")
            if status >= 500 and status != 503:
                self.crashed.append(f"{what} answered {status}")
        errors = response.json().get("errors", [{}]) if not problem else [{}]
        code = errors[0].get("code") or ""
        return f"{status} {code}".strip() if problem is None else f"{status} (not JSON:API)"
