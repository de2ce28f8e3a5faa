"""Requests sent at once to a real web process, and what each one answered.

A race is a list of :class:`Call` s; :meth:`RaceClient.race` sends each from
its own thread, all released together by a barrier (each after a small delay
drawn from the round's seeded generator, so that a round names its
interleaving as closely as threads allow), and returns one :class:`Reply`
per call, in the calls' order. Nothing is retried: a 5xx is an answer.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2

from api.errors import MEDIA_TYPE

#: Every request of a race is answered well within this (a slow one is a failure, not a wait).
TIMEOUT = httpx2.Timeout(30.0, connect=5.0)
#: Each call of a race waits up to this long (seconds, seeded) after the barrier.
JITTER = 0.004


@dataclass(frozen=True)
class Call:
    """One request: ``what`` names it in reports (``_place``, ``POST line_items``, ...)."""

    what: str
    method: str
    path: str
    document: dict[str, Any] | None = None
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class Reply:
    call: Call
    status: int
    body: Any = field(repr=False)

    @property
    def detail(self) -> str:
        """The errors' details (an error answer), or ''."""
        if isinstance(self.body, dict) and "errors" in self.body:
            return "; ".join(str(e.get("detail") or e.get("title")) for e in self.body["errors"])
        return "" if self.status < 400 else str(self.body)[:300]

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.call.what} -> {self.status}{detail}"


class RaceClient:
    """Thread-safe: one connection pool for every thread of a race."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx2.Client(
            base_url=url,
            timeout=TIMEOUT,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": MEDIA_TYPE,
                "Content-Type": MEDIA_TYPE,
            },
        )

    def close(self) -> None:
        self.http.close()

    def send(self, call: Call) -> Reply:
        response = self.http.request(
            call.method, call.path, json=call.document, headers=call.headers
        )
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = response.text
        return Reply(call, response.status_code, body)

    def race(self, calls: Sequence[Call], rng: random.Random) -> list[Reply]:
        """Send every call at once; their replies in the calls' order."""
        delays = [rng.uniform(0, JITTER) for _ in calls]
        start = threading.Barrier(len(calls))
        replies: list[Reply | None] = [None] * len(calls)
        failures: list[BaseException] = []

        def send(n: int) -> None:
            try:
                start.wait(10)
                threading.Event().wait(delays[n])
                replies[n] = self.send(calls[n])
            except BaseException as error:  # reported by the caller, with the round's seed
                failures.append(error)

        threads = [
            threading.Thread(target=send, args=(n,), name=f"race-{n}") for n in range(len(calls))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise AssertionError(f"a request of the race got no answer: {failures[0]!r}")
        return [reply for reply in replies if reply is not None]

    # --- documents ---

    def get(self, path: str) -> Reply:
        return self.send(Call(f"GET {path}", "GET", path))


def patch_order(
    order_id: str, what: str, attributes: dict[str, Any] | None = None, **rel: Any
) -> Call:
    """``PATCH /api/orders/{id}``: ``attributes``, relationships ``rel`` (name → (type, id))."""
    data: dict[str, Any] = {"type": "orders", "id": order_id}
    if attributes:
        data["attributes"] = attributes
    if rel:
        data["relationships"] = {
            name: {"data": {"type": type_, "id": id_}} for name, (type_, id_) in rel.items()
        }
    return Call(what, "PATCH", f"/api/orders/{order_id}", {"data": data})


def place(order_id: str) -> Call:
    return patch_order(order_id, "_place", {"_place": True})


def cancel(order_id: str) -> Call:
    return patch_order(order_id, "_cancel", {"_cancel": True})


def use_wallet_entry(order_id: str, entry_id: str) -> Call:
    return patch_order(
        order_id,
        f"_customer_payment_source_id {entry_id}",
        {"_customer_payment_source_id": entry_id},
    )


def change_customer(order_id: str, customer_id: str) -> Call:
    return patch_order(order_id, f"customer -> {customer_id}", customer=("customers", customer_id))


def change_address(order_id: str, address_id: str) -> Call:
    return patch_order(
        order_id, f"shipping_address -> {address_id}", shipping_address=("addresses", address_id)
    )


def add_line(order_id: str, sku_code: str, quantity: int) -> Call:
    return Call(
        f"POST line_items {sku_code} x{quantity}",
        "POST",
        "/api/line_items",
        {
            "data": {
                "type": "line_items",
                "attributes": {"sku_code": sku_code, "quantity": quantity},
                "relationships": {"order": {"data": {"type": "orders", "id": order_id}}},
            }
        },
    )


def delete(type_: str, id_: str) -> Call:
    return Call(f"DELETE {type_}/{id_}", "DELETE", f"/api/{type_}/{id_}")


def patch(type_: str, id_: str, attributes: dict[str, Any], what: str | None = None) -> Call:
    return Call(
        what or f"PATCH {type_} {attributes}",
        "PATCH",
        f"/api/{type_}/{id_}",
        {"data": {"type": type_, "id": id_, "attributes": attributes}},
    )
