"""The example merchant endpoint (examples/external_gateway) as a real peer for tests: a
uvicorn process on loopback, its ledger in a temp dir, its test controls on.

``with running_endpoint(tmp_path) as endpoint:`` serves on ``endpoint.url`` until the
block ends; ``endpoint.ledger()`` reads what it recorded (every transaction, every request
received), ``endpoint.control(fail_next=n, hang_next=n)`` changes how it answers next.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.chaos.processes import UVICORN
from tests.services import free_port
from tests.worker.processes import REPO

APP_DIR = REPO / "examples" / "external_gateway"
#: Seconds the endpoint may take to start; a bound on waiting, not a measurement.
START_WITHIN = 60.0


class Endpoint:
    """The example endpoint's process: started on a loopback port of its own, killed and
    started again there (its ledger, a file, outlives it)."""

    def __init__(self, directory: Path, secret: str, hang_seconds: float) -> None:
        self.secret = secret
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.directory = directory
        self.log = directory / "external_gateway.log"
        self.env = {
            **os.environ,
            "EXTERNAL_GATEWAY_SECRET": secret,
            "EXTERNAL_GATEWAY_LEDGER": str(directory / "external_gateway.sqlite3"),
            "EXTERNAL_GATEWAY_HANG_SECONDS": str(hang_seconds),
            "EXTERNAL_GATEWAY_TEST_CONTROLS": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [
                    *(UVICORN, "app:app", "--app-dir", str(APP_DIR)),
                    *("--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"),
                ],
                cwd=self.directory,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_WITHIN
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                self.ledger()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"the example endpoint did not start:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: whatever it was answering is never answered."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(START_WITHIN)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None

    def ledger(self) -> dict[str, list[dict[str, Any]]]:
        with urllib.request.urlopen(f"{self.url}/_ledger", timeout=10) as answer:
            return json.loads(answer.read())  # type: ignore[no-any-return]

    def transactions(self, kind: str) -> list[dict[str, Any]]:
        return [t for t in self.ledger()["transactions"] if t["kind"] == kind]

    def requests(self) -> list[dict[str, Any]]:
        return self.ledger()["requests"]

    def control(self, **values: int) -> None:
        request = urllib.request.Request(
            f"{self.url}/_control",
            json.dumps(values).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200

    def urls(self) -> dict[str, str]:
        """The gateway's URL attributes, one per transaction type."""
        return {f"{kind}_url": f"{self.url}/{kind}" for kind in KINDS}


KINDS = ("authorize", "capture", "void", "refund")


@contextmanager
def running_endpoint(
    directory: Path, secret: str = "example-secret", *, hang_seconds: float = 3.0
) -> Iterator[Endpoint]:
    endpoint = Endpoint(directory, secret, hang_seconds)
    try:
        endpoint.start()
        yield endpoint
    finally:
        endpoint.stop()
