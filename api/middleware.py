"""What the API decides before it reads a request's body: its size, its key, its rate.

Pure ASGI (``BaseHTTPMiddleware`` would stand between the server and the body): a
request refused here is answered without reading a byte of its body, and a body read
later is counted as it streams in, so a large or endless one is cut off at the limit
instead of being held in memory whole. Errors are answered by the app's own exception
handlers, so they look like every other error the API returns.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import API_KEY, read_key, recent_keys, token_digest
from api.rate_limits import limiter
from config import get_settings
from models import ApiKey


async def answer(scope: Scope, receive: Receive, send: Send, error: Exception) -> None:
    """Answer ``error`` as the app's exception handlers would, had a route raised it."""
    handlers = scope["app"].exception_handlers
    handler = next(
        (
            handlers[kind]
            for kind in type(error).__mro__
            if kind in handlers and kind is not Exception
        ),
        None,
    )
    if handler is None:
        raise error
    response = handler(Request(scope, receive), error)
    if inspect.isawaitable(response):
        response = await response
    await response(scope, receive, send)


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the request body is larger than {limit} bytes; send less")


class BodyLimit:
    """Refuses a body over ``max_body_bytes``: by its Content-Length before reading it,
    or as soon as the bytes read pass the limit (a chunked body has no length)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = get_settings().max_body_bytes
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await answer(scope, receive, send, _too_large(limit))
            return
        read = 0

        async def receive_within_limit() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    # Raised where the body is read; FastAPI passes its HTTPException on
                    # (another exception would be "error parsing the body", a 400) to the
                    # app's handler, and nothing reads further.
                    raise _too_large(limit)
            return message

        await self.app(scope, receive_within_limit, send)


class Authentication:
    """Checks the API key of every request ``protects`` names, before its body is read;
    the route then finds the key in ``request.state`` (``api.auth.request_key``)."""

    def __init__(self, app: ASGIApp, protects: Callable[[str], bool]) -> None:
        self.app = app
        self.protects = protects

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.protects(scope["path"]):
            await self.app(scope, receive, send)
            return
        authorization = Headers(scope=scope).get("authorization")
        try:
            digest = token_digest(authorization)
            key = recent_keys.get(digest)
            if key is None:  # a database call: off the event loop
                key = await run_in_threadpool(read_key, digest)
        except Exception as error:  # 401, or the database away (503): the app's handlers
            await answer(scope, receive, send, error)
            return
        scope.setdefault("state", {})[API_KEY] = key
        await self.app(scope, receive, send)


class RateLimiting:
    """Counts each authenticated request against its key's limits (``api/rate_limits.py``):
    429 with ``Retry-After`` when over, ``X-RateLimit-*`` headers on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = scope.get("state", {}).get(API_KEY) if scope["type"] == "http" else None
        limits = limiter(get_settings()) if isinstance(key, ApiKey) else None
        if limits is None or not isinstance(key, ApiKey):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        endpoint = path.removeprefix("/api/").split("/", 1)[0]
        verdict = await run_in_threadpool(limits.take, key, scope["method"], endpoint)
        if verdict is None:  # the counters are away: not a reason to refuse the API
            await self.app(scope, receive, send)
            return
        headers = verdict.headers()
        if not verdict.allowed:
            detail = (
                f"too many {verdict.endpoint_class.value.replace('_', ' ')} requests with this "
                f"API key: at most {verdict.limit} per window; retry after "
                f"{headers['Retry-After']} s"
            )
            await answer(scope, receive, send, HTTPException(429, detail, headers))
            return
        extra = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
