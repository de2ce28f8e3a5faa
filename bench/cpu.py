"""CPU time spent on the work, read from /proc: a figure a busy machine disturbs far less
than wall-clock rates (other processes take turns on the cores, but do not add to ours).

A meter covers a worker's process tree and the PostgreSQL backends serving the
bench database (the server's share of each statement); Redis is shared with
other users of the machine, so its share is not counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psycopg

from bench.environment import ADMIN_URL
from bench.memory import PROC, children

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of ``pid`` so far, or None once it is gone."""
    try:
        with open(f"{PROC}/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # After "pid (comm)": state is fields[0], utime and stime are fields 14 and 15 of stat(5).
    return (int(fields[11]) + int(fields[12])) / TICKS


def backends(database: str) -> list[int]:
    """Process ids of the PostgreSQL backends serving clients of ``database``.

    Autovacuum workers are left out: the baselines do not pay theirs either.
    """
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = %s AND backend_type = 'client backend'",
            (database,),
        ).fetchall()
    return [row[0] for row in rows]


@dataclass
class CpuMeter:
    """CPU of ``pid`` with its children, plus the backends of ``database`` that were not
    already connected when the meter was made (the bench's own pooled connections)."""

    pid: int
    database: str
    client_seconds: float = 0.0
    server_seconds: float = 0.0

    def __post_init__(self) -> None:
        self._ignored = set(backends(self.database))
        self._tree: dict[int, float] = {}
        self._servers: dict[int, float] = {}

    def _read(self) -> tuple[dict[int, float], dict[int, float]]:
        tree = {p: s for p in (self.pid, *children(self.pid)) if (s := cpu_seconds(p)) is not None}
        servers = {
            p: s
            for p in backends(self.database)
            if p not in self._ignored and (s := cpu_seconds(p)) is not None
        }
        return tree, servers

    def start(self) -> None:
        self._tree, self._servers = self._read()

    def stop(self) -> None:
        """Add up what each process spent since ``start`` (all its life, if it came later)."""
        tree, servers = self._read()
        self.client_seconds = sum(s - self._tree.get(p, 0.0) for p, s in tree.items())
        self.server_seconds = sum(s - self._servers.get(p, 0.0) for p, s in servers.items())

    @property
    def seconds(self) -> float:
        return self.client_seconds + self.server_seconds
