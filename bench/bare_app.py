"""The baseline for ``bench.api``: a bare FastAPI endpoint, served the same way."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/api/order_copies")
async def create(request: Request) -> JSONResponse:
    body: Any = await request.json()
    return JSONResponse({"data": {"type": "order_copies", "id": "bare", "echo": body}}, 201)
