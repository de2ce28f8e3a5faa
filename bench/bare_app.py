"""The baselines for ``bench.api``: bare FastAPI endpoints doing the database and broker
work of ours and nothing else, served the same way (one uvicorn process).

- ``POST /api/order_copies``: parse the body, look up the key by its hash, INSERT one row,
  commit, LPUSH its id, answer 201.
- ``GET /api/order_copies/{id}``: the key, then one row by primary key, serialized.
- ``GET /api/order_copies``: the key, then the three selects of a page of 25 copies with
  their source and target orders.

Raw SQL on a SQLAlchemy engine (the same pool as ours) and a redis-py client; sync
handlers, so each request takes one hop to the threadpool, as a sync route of ours does.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import redis
from fastapi import Body, FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse
from sqlalchemy import Connection, create_engine, text

from config import get_settings

settings = get_settings()
engine = create_engine(settings.resolved_database_url, pool_size=10, max_overflow=10)
broker = redis.Redis.from_url(settings.resolved_broker_url)
QUEUE = f"{settings.broker_key_prefix}bare-copies"
app = FastAPI()

#: Made by ``bench.api`` before it starts this app (two processes would race to make it).
TABLE = (
    "CREATE TABLE bare_copies (id text PRIMARY KEY, mode text NOT NULL, "
    "source_order_id text NOT NULL, status text NOT NULL, "
    "created_at timestamptz NOT NULL DEFAULT now())"
)


def _mode(connection: Connection, authorization: str) -> str:
    token = authorization.removeprefix("Bearer ").strip()
    digest = hashlib.sha256(token.encode()).hexdigest()
    mode = connection.scalar(
        text("SELECT mode FROM api_keys WHERE token_hash = :hash AND revoked_at IS NULL"),
        {"hash": digest},
    )
    if mode is None:
        raise HTTPException(401)
    return str(mode)


def _document(row: Any) -> dict[str, Any]:
    values = {key: _plain(value) for key, value in row._mapping.items()}
    return {"type": "order_copies", "id": values.pop("id"), "attributes": values}


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


@app.post("/api/order_copies")
def create(body: dict[str, Any] = Body(...), authorization: str = Header("")) -> JSONResponse:  # noqa: B008
    source = body["data"]["relationships"]["source_order"]["data"]["id"]
    copy_id = secrets.token_hex(8)
    with engine.begin() as connection:
        mode = _mode(connection, authorization)
        connection.execute(
            text(
                "INSERT INTO bare_copies (id, mode, source_order_id, status) "
                "VALUES (:id, :mode, :source, 'pending')"
            ),
            {"id": copy_id, "mode": mode, "source": source},
        )
    broker.lpush(QUEUE, copy_id)
    document = {"type": "order_copies", "id": copy_id, "attributes": {"status": "pending"}}
    return JSONResponse({"data": document}, 201)


@app.get("/api/order_copies/{copy_id}")
def retrieve(copy_id: str, authorization: str = Header("")) -> JSONResponse:
    with engine.connect() as connection:
        mode = _mode(connection, authorization)
        row = connection.execute(
            text("SELECT * FROM order_copies WHERE id = :id AND mode = :mode"),
            {"id": copy_id, "mode": mode},
        ).one_or_none()
    if row is None:
        raise HTTPException(404)
    return JSONResponse({"data": _document(row)})


@app.get("/api/order_copies")
def listing(authorization: str = Header("")) -> JSONResponse:
    with engine.connect() as connection:
        mode = _mode(connection, authorization)
        copies = connection.execute(
            text(
                "SELECT * FROM order_copies WHERE mode = :mode "
                "ORDER BY created_at DESC, id DESC LIMIT 25"
            ),
            {"mode": mode},
        ).all()
        sources = [row.source_order_id for row in copies]
        targets = [row.target_order_id for row in copies if row.target_order_id is not None]
        included = []
        for wanted in (sources, targets):
            included += connection.execute(
                text("SELECT * FROM orders WHERE id = ANY(:ids)"), {"ids": wanted}
            ).all()
    return JSONResponse(
        {
            "data": [_document(row) for row in copies],
            "included": [
                {"type": "orders", "id": row.id, "attributes": _document(row)["attributes"]}
                for row in included
            ],
        }
    )
