"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can do its work: the
database and the broker answer), for load balancers and orchestrators.

Plain JSON, no API key, not in the OpenAPI document. Each check has short
timeouts of its own and the whole of ``/readyz`` a deadline, so a probe never
hangs on an unreachable service: it answers 503 with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import cache

import redis
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


@cache
def _engine(url: str) -> Engine:
    """An engine that opens a new connection per check (NullPool), with short timeouts."""
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
        poolclass=NullPool,
        pool_pre_ping=False,
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


def check_broker() -> None:
    url = get_settings().resolved_broker_url
    if url.startswith(("redis://", "rediss://")):
        client = redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT
        )
        try:
            client.ping()
        finally:
            client.close()
    elif url.startswith("sqla+"):  # Kombu's SQLAlchemy transport: its database
        _select_one(url.removeprefix("sqla+"))
    # memory://: in this process, always there


def _reason(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:REASON_LENGTH]


async def _outcome(check: Callable[[], None]) -> str:
    """``"ok"``, or why not."""
    try:
        await asyncio.wait_for(asyncio.to_thread(check), DEADLINE)
    except TimeoutError:
        return f"no answer within {DEADLINE:g} s"
    except Exception as error:  # any failure to reach the service is the reason we give
        return _reason(error)
    return "ok"


def router() -> APIRouter:
    routes = APIRouter()

    @routes.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @routes.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        database, broker = await asyncio.gather(_outcome(check_database), _outcome(check_broker))
        checks = {"database": database, "broker": broker}
        ready = all(outcome == "ok" for outcome in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    return routes
