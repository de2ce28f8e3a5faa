"""The FastAPI app: ``uvicorn api.app:app``."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from http import HTTPMethod
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from api import docs, health, metrics
from api.docs import DOCS_URL, OPENAPI_URL
from api.errors import MEDIA_TYPE, ApiError, error_document
from api.middleware import Authentication, BodyLimit, RateLimiting
from api.resources import REGISTRY, RESOURCES
from api.responses import JsonApiResponse
from api.routes import router_for
from config import get_settings
from config.logging import configure_logging

log = structlog.get_logger("ordercopy.api")
BODY_METHODS = {"POST", "PATCH", "PUT"}


def _accepts(header: str | None) -> bool:
    """JSON:API: 406 unless some media range admits our type without parameters."""
    if not header:
        return True
    for media_range in header.split(","):
        media_type, *parameters = (part.strip() for part in media_range.split(";"))
        parameters = [p for p in parameters if not p.startswith("q=")]
        if media_type in ("*/*", "application/*"):
            return True
        if media_type == MEDIA_TYPE and not parameters:
            return True
    return False


def _negotiated(path: str) -> bool:
    """JSON:API routes; not the OpenAPI document and its browser UI."""
    return path.startswith("/api/") and not (path == OPENAPI_URL or path.startswith(DOCS_URL))


def _negotiation_error(method: str, headers: Headers) -> ApiError | None:
    if not _accepts(headers.get("accept")):
        return ApiError(406, f"send Accept: {MEDIA_TYPE}")
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    if (
        method in BODY_METHODS
        and (has_body or headers.get("content-type"))
        and headers.get("content-type", "").strip() != MEDIA_TYPE
    ):
        return ApiError(415, f"send Content-Type: {MEDIA_TYPE}")
    return None


class ContentNegotiation:
    """406/415 from the headers alone. Pure ASGI, as the rest (``api/middleware.py``):
    ``BaseHTTPMiddleware`` reads the body through a task group of its own, which wraps
    an error raised while reading it (the body limit's 413) into an exception group."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _negotiated(scope["path"]):
            error = _negotiation_error(scope["method"], Headers(scope=scope))
            if error is not None:
                await _error(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _allowed_methods(request: Request) -> list[str]:
    """Every method the OpenAPI document lists for this path (a 405's ``Allow``)."""
    paths: dict[str, dict[str, Any]] = request.app.openapi()["paths"]
    for template, item in paths.items():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), request.url.path):
            # A path item's other keys (``parameters``) are no methods.
            return sorted(key.upper() for key in item if key.upper() in HTTPMethod.__members__)
    return []


#: SQLSTATEs that mean "not now": the server shutting down or starting, a serialization
#: failure, a deadlock. Class 08 (connection exceptions) is matched by its prefix.
NOT_NOW = frozenset({"57P01", "57P02", "57P03", "40001", "40P01"})
#: SQLite: busy, locked, cannot open the file.
SQLITE_NOT_NOW = frozenset({5, 6, 14})
UNAVAILABLE: defaultdict[str, str] = defaultdict(
    lambda: "the database did not answer; send the request again shortly",
    POST="the database did not answer; send the request again shortly: with the same "
    "Idempotency-Key a create is never made twice",
    PATCH="the database did not answer; this change may or may not have been saved: "
    "read the resource, then send it again if needed",
    DELETE="the database did not answer; read the resource to see whether it is gone",
)


def _not_now(error: DBAPIError) -> bool:
    """Unreachable or busy (a 503 the client may retry), not a request the database refuses."""
    if error.connection_invalidated:
        return True
    sqlite_code = getattr(error.orig, "sqlite_errorcode", None)
    if sqlite_code is not None:
        return sqlite_code in SQLITE_NOT_NOW
    sqlstate: str | None = getattr(error.orig, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in NOT_NOW


def _error(*errors: ApiError, headers: Mapping[str, str] | None = None) -> JsonApiResponse:
    return JsonApiResponse(error_document(*errors), status_code=errors[0].status, headers=headers)


def _pointer(location: tuple[Any, ...]) -> str:
    return "/" + "/".join(str(part) for part in location[1:])


def _validation(request: Request, error: Exception) -> JsonApiResponse:
    assert isinstance(error, RequestValidationError)
    problems = error.errors()
    if any(p["type"] == "json_invalid" for p in problems):
        return _error(ApiError(400, "the body is not valid JSON"))
    if any(tuple(p["loc"]) == ("body",) for p in problems):  # none, or not an object
        return _error(ApiError(400, 'send a JSON:API document: {"data": {…}}'))
    wrong_type = [
        p
        for p in problems
        if tuple(p["loc"]) == ("body", "data", "type") and p["type"] == "literal_error"
    ]
    if wrong_type:  # JSON:API: a type the endpoint does not hold is a conflict
        detail = f"data.type {wrong_type[0]['input']!r} does not belong at {request.url.path}"
        return _error(ApiError(409, detail, pointer="/data/type"))
    errors = []
    for problem in problems:
        location = tuple(problem["loc"])
        if location and location[0] == "body":
            detail = problem["msg"]
            if problem["type"] == "extra_forbidden":
                detail = f"{location[-1]} is unknown or read-only here"
            errors.append(ApiError(422, detail, pointer=_pointer(location)))
        else:
            errors.append(ApiError(400, problem["msg"], parameter=str(location[-1])))
    return _error(*errors)


def create_app() -> FastAPI:
    configure_logging(get_settings())
    from worker.publisher import doorbells  # publishes from a thread, after commit
    from worker.runtime import gateways

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        # A server stopping (and a test's client closing) sends the doorbells its
        # requests committed before it goes.
        await run_in_threadpool(doorbells.flush)

    app = FastAPI(
        lifespan=lifespan,
        title="ordercopy",
        version="0.1.0",
        description="Order copies over JSON:API (Commerce Layer conventions).",
        openapi_url=OPENAPI_URL,
        docs_url=None,  # api/docs.py serves them
        redoc_url=None,
    )
    # Outermost last: the body's size, then its media types, then the key, then its rate;
    # all of it before the body is read (api/middleware.py).
    app.add_middleware(RateLimiting)
    app.add_middleware(Authentication, protects=_negotiated)
    app.add_middleware(ContentNegotiation)
    app.add_middleware(BodyLimit)
    docs.install(app)
    # Operations (no API key, not JSON:API, not in the OpenAPI document): see README.
    app.include_router(health.router())
    app.include_router(metrics.router())
    from dashboard.routes import router as dashboard  # the ops dashboard: dashboard/

    app.include_router(dashboard())
    for resource in RESOURCES:
        app.include_router(
            router_for(resource, REGISTRY, publish=lambda: doorbells.ring, gateways=gateways)
        )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: Exception) -> JsonApiResponse:
        assert isinstance(error, ApiError)
        # A 503 is a gateway or the database not answering: the same request may pass soon.
        return _error(error, headers={"Retry-After": "1"} if error.status == 503 else None)

    app.add_exception_handler(RequestValidationError, _validation)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: Exception) -> JsonApiResponse:
        assert isinstance(error, HTTPException)
        headers = dict(error.headers or {})
        if error.status_code == 405:
            allowed = _allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed on {request.url.path}; use " + (
                ", ".join(allowed)
            )
        elif error.status_code == 404:
            detail = f"no route {request.url.path}"
        else:
            detail = str(error.detail)
        return _error(ApiError(error.status_code, detail), headers=headers)

    @app.exception_handler(Exception)
    async def crash(request: Request, error: Exception) -> JsonApiResponse:
        log.exception("api_crash", path=request.url.path, method=request.method)
        return _error(ApiError(500, "something went wrong on our side; it was logged"))

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def database_error(request: Request, error: Exception) -> JsonApiResponse:
        assert isinstance(error, DBAPIError)
        if not _not_now(error):
            return await crash(request, error)
        log.warning(
            "api_database_unavailable",
            path=request.url.path,
            method=request.method,
            error=type(error.orig).__name__,
        )
        return _error(ApiError(503, UNAVAILABLE[request.method]), headers={"Retry-After": "1"})

    return app


app = create_app()
