"""The promises of the web under faults, checked beside tests/invariants.py's.

A client that sends a create again with the same Idempotency-Key, after a
connection error or a 5xx, must never get a second copy: checked both from
what the API answered (one copy id per key) and in the database (one copy
per reference: the chaos clients send their key as the copy's reference).
Every error the API answers is a JSON:API error document, and no fault makes it
crash: a database it cannot reach is a 503, never a 500. The second client's
edits (tests/chaos/traffic.py) never change an order an unfinished copy owns,
and a double-clicked ``_place`` places once. The money promises
(tests/money.py), the webhook promises (tests/chaos/webhooks.py) and the external
gateway's (tests/chaos/external.py) are checked too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import OrderCopy
from tests.chaos.external import EXTERNAL_INVARIANTS
from tests.chaos.webhooks import WEBHOOK_INVARIANTS
from tests.invariants import INVARIANTS
from tests.money import MONEY_INVARIANTS

API_INVARIANTS: dict[str, str] = {
    "one_copy_per_key": "one copy per Idempotency-Key, however often a client sent it",
    "error_documents": "every error the API answered is a JSON:API error document",
    "no_crashes": "no server error but 503 (database unreachable): never a 500",
    "owned_orders_refuse_writes": (
        "no API write to an order succeeded while an unfinished copy owned it"
    ),
    "double_click_places_once": "a double-clicked _place placed the order at most once",
}
#: Every promise a chaos run checks, by name.
PROMISES: dict[str, str] = {
    **INVARIANTS,
    **API_INVARIANTS,
    **MONEY_INVARIANTS,
    **WEBHOOK_INVARIANTS,
    **EXTERNAL_INVARIANTS,
}


def check_api(
    session: Session,
    origin: str,
    answered: Mapping[str, set[str]],
    malformed: Sequence[str],
    crashed: Sequence[str] = (),
    owned_writes: Sequence[str] = (),
    double_places: Sequence[str] = (),
) -> dict[str, list[str]]:
    """The broken API promises by name. ``answered`` maps each Idempotency-Key to the
    copy ids the API answered with; copies created with reference origin ``origin``
    carry their key as reference; ``malformed`` lists the error answers that were
    not JSON:API error documents, ``crashed`` the server errors other than 503,
    ``owned_writes`` the writes let through to an order an unfinished copy owned,
    ``double_places`` the double clicks of ``_place`` that placed twice."""
    found: dict[str, list[str]] = {name: [] for name in API_INVARIANTS}
    for key, ids in sorted(answered.items()):
        if len(ids) > 1:
            found["one_copy_per_key"].append(
                f"Idempotency-Key {key} answered with {len(ids)} copies: {sorted(ids)}"
            )
    stored: dict[str, list[str]] = {}
    for reference, copy_id in session.execute(
        select(OrderCopy.reference, OrderCopy.id).where(OrderCopy.reference_origin == origin)
    ):
        stored.setdefault(reference, []).append(copy_id)
    for key, ids in sorted(stored.items()):
        if len(ids) > 1:
            found["one_copy_per_key"].append(
                f"reference {key}: {len(ids)} copies in the database: {sorted(ids)}"
            )
        elif key in answered and set(ids) != answered[key]:
            found["one_copy_per_key"].append(
                f"reference {key}: the database holds {ids[0]}, the API answered"
                f" {sorted(answered[key])}"
            )
    found["error_documents"] = list(malformed)
    found["no_crashes"] = list(crashed)
    found["owned_orders_refuse_writes"] = list(owned_writes)
    found["double_click_places_once"] = list(double_places)
    return found
