"""Real ``celery -A worker worker`` processes, started the Procfile's way, always reaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

CELERY = str(Path(sys.executable).with_name("celery"))
REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = 2


class WorkerProcess:
    """The Procfile's worker (``--loglevel INFO``) on the prefork pool with ``-c 2``.

    The Celery settings are the project's own (``worker/app.py``: acks_late,
    prefetch 1, task events); ``include`` adds bench-only task modules.
    """

    def __init__(self, data_dir: Path, name: str, *, include: str | None = None) -> None:
        args = [
            CELERY,
            "-A",
            "worker",
            "worker",
            "-P",
            "prefork",
            "-c",
            str(CONCURRENCY),
            "-n",
            f"{name}@%h",
            "--loglevel",
            "INFO",
        ]
        if include:
            args += ["--include", include]
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            args,
            cwd=REPO,
            env=worker_environment(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """A warm shutdown, then SIGKILL to the whole process group if it lingers."""
        try:
            if self.running():
                os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(10)
            # Pool children that outlived their parent share its process group.
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        finally:
            self._log.close()

    def tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def worker_environment() -> dict[str, str]:
    """The bench's environment, with this checkout first on the path: the worker then runs
    the code next to this bench even when the virtualenv's editable install points elsewhere
    (a ``git worktree`` of another commit, say)."""
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{path}" if path else str(REPO))


@contextmanager
def running_worker(
    data_dir: Path, name: str, *, include: str | None = None
) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(data_dir, name, include=include)
    try:
        yield worker
    finally:
        worker.stop()


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    worker: WorkerProcess | None = None,
    poll: float = 0.05,
) -> None:
    """Poll ``condition`` until true; fail at once if ``worker`` died meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if worker is not None and not worker.running():
            raise RuntimeError(f"the worker exited while waiting for {what}:\n{worker.tail()}")
        time.sleep(poll)
    detail = f"\n{worker.tail()}" if worker is not None else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
