"""The services a chaos run owns: its own PostgreSQL cluster and its own Redis.

Both live in temporary directories on free ports, so a run can crash,
restart and flush them without touching the machine's shared services.
Run as root, PostgreSQL's programs run as the ``postgres`` user (initdb
refuses root), in a directory that user owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis

from tests.services import free_port


class ServiceError(RuntimeError):
    """A service did not start or stop in time."""


def _postgres_bin() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise ServiceError("initdb not found: install PostgreSQL's server programs")
    return Path(initdb).parent


class PostgresCluster:
    """A throwaway cluster: trust auth, and fsync off (see :meth:`start`)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bin = _postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="ordercopy-chaos-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            account = pwd.getpwnam(self.user)
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self.started = False

    @property
    def version(self) -> str:
        found = re.search(r"\d+(\.\d+)*", self._run("pg_ctl", "--version"))
        return found.group() if found else "?"

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [str(self.bin / program), *args],
            user=self.user,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise ServiceError(f"{program} {' '.join(args)}: {done.stderr or done.stdout}")
        return done.stdout

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )

    def start(self) -> None:
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.root}",
                "-c listen_addresses=127.0.0.1",
                "-c max_connections=300",
                # The machine never crashes here, PostgreSQL does: skipping fsync loses
                # nothing a crashed server acknowledged (synchronous_commit stays on).
                "-c fsync=off",
                # A SIGSTOPped worker inside a transaction would hold its row locks (and
                # block the rescue) until woken; production servers set this for the same reason.
                "-c idle_in_transaction_session_timeout=3s",
            ]
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "start"
        )
        self.started = True

    def stop(self, mode: str = "fast") -> None:
        """``immediate`` is a crash: every connection cut, no checkpoint; a start recovers."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        self.started = False

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(driver="postgresql"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        if self.started:
            try:
                self.stop("immediate")
            except (ServiceError, subprocess.TimeoutExpired):
                pid = self._postmaster_pid()
                if pid:
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


class RedisServer:
    """``redis-server`` with no persistence: a restart loses every message."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.root = root
        self.log_path = root / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.program = shutil.which("redis-server") or "redis-server"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def up(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.program,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--logfile",
                str(self.log_path),
            ],
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    time.sleep(0.05)
            raise ServiceError(f"redis-server did not answer on port {self.port}")
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: with no persistence, every queued and unacknowledged message is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None
