"""An external payment gateway for ordercopy: Commerce Layer's protocol, as a merchant runs it.

Four endpoints, one per transaction type (``/authorize``, ``/capture``, ``/void``,
``/refund``). Each request is a signed JSON:API document; each answer says whether the
transaction succeeded. This example keeps its own ledger in SQLite and plays the payment
service itself (``psp_*`` below): replace those functions with calls to yours. See
README.md beside this file.

Run it (the secret is the external gateway's ``shared_secret``)::

    EXTERNAL_GATEWAY_SECRET=... uvicorn app:app --app-dir examples/external_gateway --port 9000
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

SECRET = os.environ["EXTERNAL_GATEWAY_SECRET"]
LEDGER = os.environ.get("EXTERNAL_GATEWAY_LEDGER", "external_gateway.sqlite3")
#: How long the ``tok_ext_hang`` / ``tok_ext_late`` tokens and ``/_control``'s
#: ``hang_next`` keep a request waiting.
HANG_SECONDS = float(os.environ.get("EXTERNAL_GATEWAY_HANG_SECONDS", "5"))
#: ``/_control`` and ``/_ledger`` exist for tests and demos only.
CONTROLS = os.environ.get("EXTERNAL_GATEWAY_TEST_CONTROLS") == "1"

app = FastAPI(title="external payment gateway (example)")
_lock = threading.RLock()  # one transaction decided at a time: a key is answered once
_control = {"fail_next": 0, "hang_next": 0}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    idempotency_key TEXT PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (
    reference TEXT PRIMARY KEY, kind TEXT NOT NULL, idempotency_key TEXT NOT NULL,
    parent TEXT, token TEXT, amount_cents INTEGER NOT NULL, voided INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY, kind TEXT, idempotency_key TEXT, status INTEGER);
"""


@contextmanager
def _db() -> Iterator[sqlite3.Connection]:
    """The ledger, in one transaction: committed at the end, rolled back on an error."""
    connection = sqlite3.connect(LEDGER, timeout=30)
    connection.row_factory = sqlite3.Row
    try:
        with connection:
            yield connection
    finally:
        connection.close()


with _db() as _setup:
    _setup.executescript(_SCHEMA)


def signed(body: bytes, signature: str) -> bool:
    """Whether ``signature`` is base64(HMAC-SHA256(secret, raw body)), in constant time."""
    expected = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, signature.encode("ascii", "replace"))


def succeeded(reference: str, amount_cents: int) -> dict[str, Any]:
    return {"success": True, "data": {"transaction_token": reference, "amount_cents": amount_cents}}


def declined(code: str, message: str, amount_cents: int) -> dict[str, Any]:
    error = {"code": code, "message": message}
    return {"success": False, "data": {"amount_cents": amount_cents, "error": error}}


class Unavailable(Exception):
    """The payment service did not answer: a 5xx, so ordercopy asks again with the same key."""


async def transaction(kind: str, request: Request) -> JSONResponse:
    body = await request.body()  # the raw bytes: the signature is over them, as sent
    key = request.headers.get("Idempotency-Key", "")
    if kind not in PSP:
        return JSONResponse({"error": f"no such transaction type {kind!r}"}, status_code=404)
    if not signed(body, request.headers.get("X-CommerceLayer-Signature", "")):
        _log(kind, key, 401)
        return JSONResponse({"error": "invalid X-CommerceLayer-Signature"}, status_code=401)
    if not key:
        return JSONResponse({"error": "no Idempotency-Key"}, status_code=400)
    try:
        attributes = json.loads(body)["data"]["attributes"]
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "not a JSON:API document"}, status_code=400)
    return await _answer(kind, key, attributes)


async def _answer(kind: str, key: str, attributes: dict[str, Any]) -> JSONResponse:
    try:  # in a thread: the work blocks (SQLite, a payment service's client)
        answer, late = await anyio.to_thread.run_sync(_decide, kind, key, attributes)
    except Unavailable as error:
        _log(kind, key, 503)
        return JSONResponse({"error": str(error)}, status_code=503)
    _log(kind, key, 200)
    if late:  # a test's "timeout after success": recorded, then too slow to answer
        await anyio.sleep(HANG_SECONDS)
    return JSONResponse(answer)


def _decide(kind: str, key: str, attributes: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The first answer to ``key`` (replayed as it was), or a new one, recorded."""
    token = attributes.get("payment_source_token") or ""
    if _take("hang_next") or token == "tok_ext_hang":
        time.sleep(HANG_SECONDS)
    with _lock, _db() as db:
        first = db.execute("SELECT body FROM answers WHERE idempotency_key = ?", (key,)).fetchone()
        if first is not None:
            return json.loads(first["body"]), False
        if _take("fail_next") or token == "tok_ext_fail" or _flaky(db, token, key):
            raise Unavailable("the payment service did not answer")
        answer = PSP[kind](db, key, attributes)
        db.execute("INSERT INTO answers VALUES (?, ?, ?)", (key, kind, json.dumps(answer)))
        return answer, token == "tok_ext_late"


def _take(name: str) -> bool:
    with _lock:
        if _control[name] > 0:
            _control[name] -= 1
            return True
        return False


def _flaky(db: sqlite3.Connection, token: str, key: str) -> bool:
    """``tok_ext_flaky`` fails twice per key, then answers."""
    if token != "tok_ext_flaky":
        return False
    tried = db.execute("SELECT count(*) FROM requests WHERE idempotency_key = ?", (key,))
    return bool(tried.fetchone()[0] < 2)


def _log(kind: str, key: str, status: int) -> None:
    with _db() as db:
        db.execute(
            "INSERT INTO requests (kind, idempotency_key, status) VALUES (?, ?, ?)",
            (kind, key, status),
        )


def _record(
    db: sqlite3.Connection, kind: str, key: str, parent: str | None, token: str | None, amount: int
) -> str:
    reference = f"ext_{kind}_{secrets.token_hex(6)}"
    db.execute(
        "INSERT INTO transactions VALUES (?, ?, ?, ?, ?, ?, 0)",
        (reference, kind, key, parent, token, amount),
    )
    return reference


def _find(db: sqlite3.Connection, kind: str, attributes: dict[str, Any]) -> sqlite3.Row | None:
    """The transaction a capture, void or refund acts on: by its token, else by its key."""
    return db.execute(
        "SELECT * FROM transactions WHERE kind = ? AND (reference = ? OR idempotency_key = ?)",
        (kind, attributes.get("token"), attributes.get("idempotency_key")),
    ).fetchone()


def _left(db: sqlite3.Connection, parent: sqlite3.Row, kind: str) -> int:
    taken = db.execute(
        "SELECT coalesce(sum(amount_cents), 0) FROM transactions WHERE parent = ? AND kind = ?",
        (parent["reference"], kind),
    ).fetchone()[0]
    return int(parent["amount_cents"]) - int(taken)


# --- the payment service: replace these with calls to yours ---------------------------


def psp_authorize(db: sqlite3.Connection, key: str, attributes: dict[str, Any]) -> dict[str, Any]:
    token, amount = attributes["payment_source_token"], attributes["amount_cents"]
    if token == "tok_ext_decline":
        return declined("card_declined", "the card was declined", amount)
    if token == "tok_ext_insufficient_funds":
        return declined("insufficient_funds", "insufficient funds", amount)
    return succeeded(_record(db, "authorize", key, None, token, amount), amount)


def psp_capture(db: sqlite3.Connection, key: str, attributes: dict[str, Any]) -> dict[str, Any]:
    amount = attributes["capture_amount_cents"]
    held = _find(db, "authorize", attributes)
    if held is None or held["voided"]:
        return declined("not_authorized", "no authorization to capture", amount)
    if amount > _left(db, held, "capture"):
        return declined("amount_too_large", "more than is left to capture", amount)
    return succeeded(_record(db, "capture", key, held["reference"], None, amount), amount)


def psp_refund(db: sqlite3.Connection, key: str, attributes: dict[str, Any]) -> dict[str, Any]:
    amount = attributes["refund_amount_cents"]
    captured = _find(db, "capture", attributes)
    if captured is None:
        return declined("not_captured", "no capture to refund", amount)
    if amount > _left(db, captured, "refund"):
        return declined("amount_too_large", "more than is left to refund", amount)
    return succeeded(_record(db, "refund", key, captured["reference"], None, amount), amount)


def psp_void(db: sqlite3.Connection, key: str, attributes: dict[str, Any]) -> dict[str, Any]:
    """Nothing held under the key (never authorized, voided, captured) is nothing to do."""
    held = _find(db, "authorize", attributes)
    amount = held["amount_cents"] if held else 0
    if held is not None and _left(db, held, "capture") == held["amount_cents"]:
        db.execute("UPDATE transactions SET voided = 1 WHERE reference = ?", (held["reference"],))
    return succeeded(held["reference"] if held else "", amount)


PSP = {"authorize": psp_authorize, "capture": psp_capture, "refund": psp_refund, "void": psp_void}


# --- for tests and demos (EXTERNAL_GATEWAY_TEST_CONTROLS=1) ---------------------------


@app.post("/_control")
async def control(request: Request) -> JSONResponse:
    """``{"fail_next": n, "hang_next": n}``: the next n requests answer 503, or hang."""
    if not CONTROLS:
        return JSONResponse({"error": "controls are off"}, status_code=404)
    given = await request.json()
    with _lock:
        for name in _control:
            _control[name] = int(given.get(name, _control[name]))
        return JSONResponse(dict(_control))


@app.get("/_ledger")
async def ledger() -> JSONResponse:
    """Every transaction recorded and every request received, in order."""
    if not CONTROLS:
        return JSONResponse({"error": "controls are off"}, status_code=404)
    with _db() as db:
        rows = {
            table: [dict(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY rowid")]
            for table in ("transactions", "requests")
        }
    return JSONResponse(rows)


# Last: the transaction types' path would take /_control and /_ledger too.
app.post("/{kind}")(transaction)
