"""Real worker processes for the tests: started in their own process group, always reaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

from config import get_settings

CELERY = str(Path(sys.executable).with_name("celery"))
REPO = Path(__file__).resolve().parents[2]


def worker_command(name: str, *, pool: str, concurrency: int) -> list[str]:
    """``celery worker`` as the tests start it: quiet, no gossip, mingle or heartbeat."""
    return [
        CELERY,
        "-A",
        "worker",
        "worker",
        "-P",
        pool,
        "-c",
        str(concurrency),
        "-n",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "WARNING",
    ]


def flush_broker() -> None:
    """Delete this test worker's broker keys: no message from an earlier test survives."""
    settings = get_settings()
    assert settings.broker_key_prefix, "tests run with a broker key prefix of their own"
    client = redis.Redis.from_url(settings.resolved_broker_url)
    try:
        keys = list(client.scan_iter(match=f"{settings.broker_key_prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class WorkerProcess:
    """``celery -A worker worker`` as a subprocess, with extra ORDERCOPY_* settings."""

    def __init__(
        self,
        data_dir: Path,
        name: str,
        *,
        pool: str = "solo",
        concurrency: int = 1,
        beat: bool = False,
        **settings: str | int | float,
    ) -> None:
        env = dict(
            os.environ,
            ORDERCOPY_DATA_DIR=str(data_dir),
            ORDERCOPY_LOG_LEVEL="WARNING",
            ORDERCOPY_LOG_FORMAT="json",
        )
        env.update({f"ORDERCOPY_{k.upper()}": str(v) for k, v in settings.items()})
        args = worker_command(name, pool=pool, concurrency=concurrency)
        if beat:
            args += ["-B", "-s", str(data_dir / f"{name}-beat-schedule")]
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            args,
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (the worker and its pool children)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def stop(self) -> None:
        self.kill(signal.SIGKILL)
        try:
            self.process.wait(10)
        finally:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
