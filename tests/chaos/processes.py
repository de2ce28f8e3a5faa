"""The processes of a chaos run: workers, beats and the web, each in its own process group.

A whole process group is signalled at once (a worker and its pool
children), or one pool child alone. Every process is reaped by
:meth:`Process.stop`, whatever state it was left in.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from tests.worker.processes import CELERY, REPO, worker_command

UVICORN = str(Path(CELERY).with_name("uvicorn"))
#: The example merchant endpoint of an external payment gateway (issue 21).
ENDPOINT_APP_DIR = REPO / "examples" / "external_gateway"


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (a prefork worker's pool)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return sorted(found)


def local_tcp_ports(pid: int) -> set[int]:
    """The local ports of ``pid``'s TCP sockets (its database connections, for one)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def connections_to(port: int) -> int:
    """Established TCP connections whose local port is ``port`` (requests a server on
    that port is answering, or about to)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


class Process:
    """``celery -A worker worker|beat …`` or ``uvicorn api.app:app``, with its own
    environment and log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.stopped = False  # SIGSTOPped: a zombie until SIGCONT
        self.starts = 0
        self.port: int | None = None  # a web process's

    @classmethod
    def worker(cls, name: str, env: dict[str, str], log_dir: Path, *, concurrency: int) -> Process:
        return cls(
            name, worker_command(name, pool="prefork", concurrency=concurrency), env, log_dir
        )

    @classmethod
    def beat(cls, name: str, env: dict[str, str], log_dir: Path) -> Process:
        schedule = log_dir / f"{name}-schedule"
        args = [CELERY, "-A", "worker", "beat", "-s", str(schedule), "--loglevel", "WARNING"]
        return cls(name, args, env, log_dir)

    @classmethod
    def web(cls, name: str, env: dict[str, str], log_dir: Path, *, port: int) -> Process:
        """One uvicorn process (no reloader, no worker manager) on ``port``."""
        args = [
            UVICORN,
            "api.app:app",
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--log-level", "warning", "--no-access-log"),
        ]
        web = cls(name, args, env, log_dir)
        web.port = port
        return web

    @classmethod
    def endpoint(
        cls, name: str, env: dict[str, str], log_dir: Path, *, port: int, secret: str
    ) -> Process:
        """The example external gateway endpoint (FastAPI under uvicorn) on ``port``, its
        SQLite ledger in ``log_dir`` (a file: it outlives a SIGKILL), its test controls on
        (``/_ledger`` answers once it is up)."""
        args = [
            *(UVICORN, "app:app", "--app-dir", str(ENDPOINT_APP_DIR)),
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--log-level", "warning", "--no-access-log"),
        ]
        settings = {
            "EXTERNAL_GATEWAY_SECRET": secret,
            "EXTERNAL_GATEWAY_LEDGER": str(log_dir / f"{name}.sqlite3"),
            "EXTERNAL_GATEWAY_TEST_CONTROLS": "1",
        }
        endpoint = cls(name, args, {**env, **settings}, log_dir)
        endpoint.port = port
        return endpoint

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        assert not self.alive, f"{self.name} is already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args,
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.stopped = False

    def children(self) -> list[int]:
        return children(self.process.pid) if self.alive and self.process else []

    def signal_group(self, sig: int) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
        if sig == signal.SIGSTOP:
            self.stopped = True
        elif sig in (signal.SIGCONT, signal.SIGKILL):
            self.stopped = False

    @property
    def url(self) -> str:
        assert self.port is not None, f"{self.name} serves no HTTP"
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL the process and its children at once, as a lost machine would."""
        self.signal_group(signal.SIGCONT)
        self.signal_group(signal.SIGKILL)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)

    def stop(self) -> None:
        self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
