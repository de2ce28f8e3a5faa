"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can do its work: the
database and the broker answer), for load balancers and orchestrators.

Plain JSON, no API key, not in the OpenAPI document. Each check has short
timeouts of its own and the whole of ``/readyz`` a deadline, so a probe never
hangs on an unreachable service: it answers 503 naming the service (why goes to the
log: driver text names hosts and ports).

A flood of probes costs what one probe a second costs: checks go over pooled
connections kept for them, and their answer is kept ``readyz_cache_seconds`` (a
second); probes meanwhile get it, and probes that come while a check runs wait for
it rather than start their own.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import redis
import structlog
from fastapi import APIRouter
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from starlette.responses import JSONResponse

from config import get_settings
from models.db import make_engine

#: Seconds a check may take to connect, and to get its answer.
CONNECT_TIMEOUT = 2
#: Seconds after which a check that has not answered counts as failed.
DEADLINE = 3.0
REASON_LENGTH = 300

log = structlog.get_logger("ordercopy.health")


@cache
def _engine(url: str) -> Engine:
    """An engine of its own for the checks (so a busy app pool does not fail them), its
    connections kept between checks, with short timeouts. SQLite opens its file per
    check: no server, no connection to keep."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # Read-only and without the app's BEGIN IMMEDIATE: a probe never takes the write
        # lock, nor creates a database file that is missing.
        if not parsed.database:
            return create_engine(url, poolclass=NullPool)
        read_only = f"sqlite:///file:{parsed.database}?mode=ro&uri=true"
        return create_engine(
            read_only, poolclass=NullPool, connect_args={"timeout": CONNECT_TIMEOUT}
        )
    return make_engine(
        url,
        pool_size=1,
        max_overflow=1,
        pool_timeout=CONNECT_TIMEOUT,
        pool_pre_ping=True,  # a connection PostgreSQL dropped since is replaced, not a 503
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT,
            "options": f"-c statement_timeout={CONNECT_TIMEOUT * 1000}",
        },
    )


def _select_one(url: str) -> None:
    with _engine(url).connect() as connection:
        connection.execute(text("SELECT 1"))


def check_database() -> None:
    _select_one(get_settings().resolved_database_url)


@cache
def _redis(url: str) -> redis.Redis:
    """A client whose connections are kept between checks."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT
    )


def check_broker() -> None:
    url = get_settings().resolved_broker_url
    if url.startswith(("redis://", "rediss://")):
        _redis(url).ping()
    elif url.startswith("sqla+"):  # Kombu's SQLAlchemy transport: its database
        _select_one(url.removeprefix("sqla+"))
    # memory://: in this process, always there


def _reason(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:REASON_LENGTH]


async def _outcome(name: str, check: Callable[[], None]) -> str:
    """``"ok"``, or ``"<name> unavailable"`` (and why, in the log)."""
    try:
        await asyncio.wait_for(asyncio.to_thread(check), DEADLINE)
    except TimeoutError:
        reason = f"no answer within {DEADLINE:g} s"
    except Exception as error:  # any failure to reach the service makes it unavailable
        reason = _reason(error)
    else:
        return "ok"
    log.warning("readyz_check_failed", check=name, error=reason)
    return f"{name} unavailable"


@dataclass(frozen=True)
class _Answer:
    services: tuple[str, str]  # the database and broker URLs it was checked against
    checks: dict[str, str]
    at: float  # time.monotonic() when the checks ended


_last: _Answer | None = None
#: One per event loop (an asyncio.Lock belongs to the loop it first waits in).
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def forget() -> None:
    """Drop the kept answer: the next probe checks."""
    global _last
    _last = None


def _kept(services: tuple[str, str], keep_for: float) -> dict[str, str] | None:
    last = _last
    if last is not None and last.services == services and time.monotonic() - last.at < keep_for:
        return last.checks
    return None


async def readiness() -> dict[str, str]:
    """Each service's outcome: checked now, or kept from a check under ``readyz_cache_seconds``
    old (at most one check at a time per process)."""
    global _last
    settings = get_settings()
    services = (settings.resolved_database_url, settings.resolved_broker_url)
    keep_for = settings.readyz_cache_seconds
    kept = _kept(services, keep_for)
    if kept is not None:
        return kept
    lock = _locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock:
        kept = _kept(services, keep_for)  # checked by the probe this one waited for
        if kept is not None:
            return kept
        database, broker = await asyncio.gather(
            _outcome("database", check_database), _outcome("broker", check_broker)
        )
        checks = {"database": database, "broker": broker}
        _last = _Answer(services, checks, time.monotonic())
        return checks


def router() -> APIRouter:
    routes = APIRouter()

    @routes.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @routes.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(outcome == "ok" for outcome in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    return routes
