"""Are the services the test suite needs up? ``python -m tests.services`` says which to start."""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlsplit

ADMIN_URL = os.environ.get("ORDERCOPY_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ORDERCOPY_TEST_REDIS_URL", "redis://127.0.0.1:6379")

SERVICES = (
    (
        "PostgreSQL",
        ADMIN_URL,
        5432,
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
    (
        "Redis",
        REDIS_URL,
        6379,
        'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no',
    ),
)


def free_port() -> int:
    """A loopback port nothing listens on (for a server of a test's own, or for nothing)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2
        ):
            return True
    except OSError:
        return False


def missing() -> list[str]:
    return [
        f"{name} is not reachable at {url}; start it with: {how}"
        for name, url, port, how in SERVICES
        if not reachable(url, port)
    ]


if __name__ == "__main__":
    problems = missing()
    for problem in problems:
        print(f"ordercopy tests: {problem}", file=sys.stderr)
    sys.exit(1 if problems else 0)
