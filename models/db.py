"""Engines and session factories.

One engine per process (made lazily from the settings, disposed after a
fork); callers open units of work with ``sessions().begin()``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from config import get_settings

_engine: Engine | None = None
_sessions: sessionmaker[Session] | None = None


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # One INSERT per row: the SQLite order number (max + 1) is read per statement.
        engine = create_engine(
            url, connect_args={"timeout": 30}, use_insertmanyvalues=False, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # Let SQLAlchemy, not pysqlite, start transactions: BEGIN IMMEDIATE
        # takes the write lock up front so two writers queue instead of deadlocking.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    # No ping before each checkout (a round trip per transaction: per API request, four
    # per copy). A connection that died meanwhile (a PostgreSQL restart) fails its first
    # statement with OperationalError, which invalidates the whole pool: the API answers
    # that request 503 with Retry-After, a run gives up its lease and Celery retries it
    # from its checkpoint at once. Connections are replaced after half an hour, before a
    # firewall or proxy forgets an idle one.
    kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault("pool_recycle", 1800)
    # Ten kept open (made as needed), ten more for a burst: with five kept, a web process
    # serving eight clients closed and reopened connections all the time (issue 20).
    kwargs.setdefault("pool_size", 10)
    # A host that stops answering (not one that refuses) fails a connect in seconds, not never.
    kwargs["connect_args"] = {"connect_timeout": 5, **kwargs.get("connect_args", {})}
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # autocommit at the driver; see "begin" above
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def engine() -> Engine:
    """The process's engine. A forked child gets its own: pooled connections are
    never shared across processes (the parent's are dropped, not closed)."""
    global _engine, _sessions, _pid
    if _engine is not None and _pid != os.getpid():
        _engine.dispose(close=False)
        _engine = _sessions = None
    if _engine is None:
        _engine = make_engine(get_settings().resolved_database_url)
        _pid = os.getpid()
    return _engine


_pid = os.getpid()


def sessions() -> sessionmaker[Session]:
    """The process's session factory (``expire_on_commit=False``: rows outlive units of work)."""
    global _sessions
    current = engine()
    if _sessions is None:
        _sessions = sessionmaker(current, expire_on_commit=False)
    return _sessions


def dispose() -> None:
    """Close the process's pooled connections (at shutdown)."""
    global _engine, _sessions
    if _engine is not None:
        _engine.dispose()
    _engine = None
    _sessions = None
