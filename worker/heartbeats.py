"""Each worker node writes a heartbeat row while it runs (``worker_heartbeats``): the ops
dashboard lists the workers seen recently from it, on any broker (Celery's own events and
``inspect`` need a broker that supports them, and the embedded default's does not)."""

from __future__ import annotations

import os
import threading
from datetime import datetime
from typing import Any

import structlog
from celery import signals
from sqlalchemy import Table, delete
from sqlalchemy.dialects import postgresql, sqlite

from models import WorkerHeartbeat, db, utcnow

HEARTBEATS: Table = WorkerHeartbeat.__table__  # type: ignore[assignment]

log = structlog.get_logger("ordercopy.worker")
#: Seconds between two heartbeats of one node; the dashboard's "seen recently" is a few.
EVERY_SECONDS = 5.0
_stop = threading.Event()
_node: dict[str, Any] = {}


def beat(hostname: str, pid: int, started_at: datetime) -> None:
    """Insert or touch ``hostname``'s row. Commits."""
    engine = db.engine()
    module: Any = postgresql if engine.dialect.name == "postgresql" else sqlite
    now = utcnow()
    statement = module.insert(HEARTBEATS).values(
        hostname=hostname, pid=pid, started_at=started_at, seen_at=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=["hostname"],
        set_={"pid": pid, "started_at": started_at, "seen_at": now},
    )
    with engine.begin() as connection:
        connection.execute(statement)


def _loop(hostname: str, pid: int, started_at: datetime) -> None:
    while True:
        try:
            beat(hostname, pid, started_at)
        except Exception:  # the database away: the next beat tries again
            log.warning("worker_heartbeat_failed", hostname=hostname, exc_info=True)
        if _stop.wait(EVERY_SECONDS):
            return


@signals.worker_ready.connect
def _start(sender: Any = None, **_: Any) -> None:
    hostname = str(getattr(sender, "hostname", None) or f"worker@{os.uname().nodename}")
    _node.update(hostname=hostname)
    _stop.clear()
    threading.Thread(
        target=_loop,
        args=(hostname, os.getpid(), utcnow()),
        name="ordercopy-heartbeat",
        daemon=True,
    ).start()


@signals.worker_shutdown.connect
def _gone(**_: Any) -> None:
    """A node that stops says so (one killed is seen no more once its beats stop)."""
    _stop.set()
    hostname = _node.pop("hostname", None)
    if hostname is None:
        return
    try:
        with db.engine().begin() as connection:
            connection.execute(delete(HEARTBEATS).where(HEARTBEATS.c.hostname == hostname))
    except Exception:
        log.warning("worker_heartbeat_not_removed", hostname=hostname, exc_info=True)
