"""What the web's clients and ops do while the faults happen.

Copies are created over HTTP (``POST /api/order_copies``, tests/chaos/web.py)
by a few clients at a steady pace, each with an Idempotency-Key that the
client sends again, with the same body, after a connection error or a 5xx
(and now and then on purpose, as a double click); a few copies are aborted
at once, over HTTP where the API has ``_abort``, through the domain (as
``ordercopy copies abort`` does) where it has not. Failed copies are retried
over HTTP (``PATCH _retry``) and in bulk (``copying.copies.bulk``, as ``ordercopy
copies retry`` does). Old doorbells are rung again at random (stray
duplicates); every doorbell of every process goes out twice anyway
(``publish_twice``).

A second client edits orders while the copies run: it double-clicks
``_place`` (two requests at once), adds and deletes line items, switches the
wallet entry and edits the shipping address, mostly on the targets of copies
that have not finished (which must refuse every write: 409) and on other
orders still pending. A write answered 2xx while an unfinished copy owned the
order before and after it, or a double click placed twice, is recorded
(tests/chaos/promises.py). It also captures placed orders' payments and refunds a
part or all of what was captured (``_capture``, ``_refund_amount_cents``,
``_refund``), on the test gateway and the external one, some while a copy cancelling
that source refunds it too: the money promises (tests/money.py) and the external
endpoint's ledger (tests/chaos/external.py) judge what came of it.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from copying.copies import bulk
from copying.copies.dispatch import Publish
from models import (
    CopyStatus,
    CustomerPaymentSource,
    LineItem,
    Mode,
    Order,
    OrderCopy,
    OrderStatus,
    PaymentStatus,
)
from tests.chaos.web import ApiClient
from tests.chaos.world import CopySpec

#: A copy is retried (over HTTP or in bulk) at most this many times.
MAX_RETRIES = 2
#: How long a client keeps sending a create through an outage before it gives up.
GIVE_UP_AFTER = 120.0
#: How long ops keep sending a request (a retry, a listing) before moving on.
OPS_GIVE_UP_AFTER = 10.0
#: Clients creating copies at once.
CLIENTS = 4
#: The share of creates a client sends twice on purpose (same key, same body).
DOUBLE_SUBMIT = 0.05
#: The share of creates whose first attempt the client stops waiting for after
#: ``IMPATIENCE`` seconds, then sends again while the server may still be at it.
IMPATIENT = 0.05
IMPATIENCE = 0.02
#: Copies created over HTTP carry their Idempotency-Key as reference, with this origin.
ORIGIN = "chaos-http"
#: The editor's pause between two edits (seconds), and the share of its edits aimed at the
#: target of a copy that has not finished (the rest: any pending order).
EDIT_PAUSE = (0.1, 0.4)
AT_RUNNING_TARGETS = 0.7
EDITS = ("double click _place", "add a line item", "delete a line item", "switch wallet entry")
EDITS_WITH_ADDRESS = (*EDITS, "edit the shipping address")
#: The share of the editor's turns spent on a placed order's payment instead.
AT_PAYMENTS = 0.25
CAPTURABLE = (PaymentStatus.AUTHORIZED,)
REFUNDABLE = (PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED)
UNFINISHED = (CopyStatus.PENDING, CopyStatus.IN_PROGRESS)


def create_document(spec: CopySpec) -> dict[str, Any]:
    return {
        "data": {
            "type": "order_copies",
            "attributes": {
                "place_target_order": spec.place_target_order,
                "cancel_source_order": spec.cancel_source_order,
                "reuse_wallet": spec.reuse_wallet,
                "skip_errors": spec.skip_errors,
                "reference": spec.idempotency_key,
                "reference_origin": ORIGIN,
            },
            "relationships": {
                "source_order": {"data": {"type": "orders", "id": spec.source_order_id}}
            },
        }
    }


def trigger_document(copy_id: str, trigger: str) -> dict[str, Any]:
    return {"data": {"type": "order_copies", "id": copy_id, "attributes": {trigger: True}}}


class Traffic:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        publish: Publish,
        api: ApiClient,
        rng: random.Random,
        redis_down: threading.Event,
    ) -> None:
        self.sessions = sessions
        self._publish = publish
        self.api = api
        self.rng = rng
        self.redis_down = redis_down
        #: Every copy id a client was told exists (201).
        self.created: list[str] = []
        #: Idempotency-Key → the copy ids the API answered with (one, or a violation).
        self.answered: dict[str, set[str]] = defaultdict(set)
        #: Idempotency-Key → when the answered attempt was sent, for creates sent more
        #: than once (a copy created before then was committed by an earlier attempt).
        self.resent: dict[str, float] = {}
        self.counts: Counter[str] = Counter()
        #: What went wrong that the API should not have done (a 4xx to a valid create).
        self.problems: list[str] = []
        #: Writes the API let through to an order that an unfinished copy owned.
        self.owned_writes: list[str] = []
        #: Double clicks of ``_place`` that placed twice.
        self.double_places: list[str] = []
        self.editor_rng = random.Random(rng.getrandbits(64))
        self._lock = threading.Lock()
        self._retries: Counter[str] = Counter()

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counts[what] += n

    def ring(self, copy_ids: Sequence[str]) -> None:
        self._publish(copy_ids)
        self.count("doorbells rung by the runner (stray and bulk retries)", len(copy_ids))

    # --- creating ---

    def create_all(
        self, specs: Sequence[CopySpec], times: Sequence[float], stop: threading.Event
    ) -> None:
        """Create each spec at its time (seconds from now), spread over ``CLIENTS``
        clients; all of them, even past ``stop``."""
        start = time.monotonic()
        clients = [
            threading.Thread(
                target=self._client,
                args=(specs[n::CLIENTS], times[n::CLIENTS], start, stop, random.Random(n)),
                name=f"client-{n + 1}",
                daemon=True,
            )
            for n in range(CLIENTS)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join()

    def _client(
        self,
        specs: Sequence[CopySpec],
        times: Sequence[float],
        start: float,
        stop: threading.Event,
        rng: random.Random,
    ) -> None:
        for spec, at in zip(specs, times, strict=True):
            wait = start + at - time.monotonic()
            if wait > 0 and not stop.is_set():
                stop.wait(wait)
            down = self.redis_down.is_set()
            copy_id = self._create(spec, impatient=rng.random() < IMPATIENT)
            if copy_id is None:
                continue
            self.count("copies created over HTTP")
            self.count("copies created while Redis was down", down)
            if rng.random() < DOUBLE_SUBMIT:
                self.count("creates sent again on purpose (same key and body)")
                self._create(spec)
            if spec.abort:
                self._abort(copy_id)

    def _create(self, spec: CopySpec, *, impatient: bool = False) -> str | None:
        if impatient:
            self.count("creates whose first attempt the client stopped waiting for")
        answer = self.api.send(
            "POST order_copies",
            "POST",
            "/api/order_copies",
            json=create_document(spec),
            headers={"Idempotency-Key": spec.idempotency_key},
            give_up_after=GIVE_UP_AFTER,
            first_timeout=IMPATIENCE if impatient else None,
        )
        response = answer.response
        if response is None:
            self._problem(f"gave up creating {spec.idempotency_key} after {GIVE_UP_AFTER:g} s")
            return None
        if response.status_code != 201:
            self._problem(
                f"create {spec.idempotency_key} answered {response.status_code}: {response.text}"
            )
            return None
        copy_id = str(response.json()["data"]["id"])
        with self._lock:
            if answer.attempts > 1:
                self.counts["creates answered 201 after the client sent them again"] += 1
                self.resent.setdefault(spec.idempotency_key, answer.sent_at)
            if not self.answered[spec.idempotency_key]:
                self.created.append(copy_id)
            self.answered[spec.idempotency_key].add(copy_id)
        return copy_id

    def _abort(self, copy_id: str) -> None:
        response = self.api.send(
            "PATCH _abort",
            "PATCH",
            f"/api/order_copies/{copy_id}",
            json=trigger_document(copy_id, "_abort"),
            give_up_after=GIVE_UP_AFTER,
        ).response
        status = None if response is None else response.status_code
        self.count(
            {200: "copies aborted", 409: "aborts too late (claimed already)"}.get(
                status, f"aborts answered {status or 'never'}"
            )
        )

    def _problem(self, what: str) -> None:
        with self._lock:
            self.problems.append(what)

    # --- ops ---

    def _wanted(self, failed: Sequence[str], most: int) -> list[str]:
        with self._lock:
            wanted = [c for c in failed if self._retries[c] < MAX_RETRIES]
            batch = self.rng.sample(wanted, min(len(wanted), most))
            self._retries.update(batch)
        return batch

    def retry_over_http(self, stop: threading.Event) -> None:
        """Every 2-4 s, list failed copies over HTTP and retry up to 5 (``PATCH _retry``)."""
        while not stop.wait(self.rng.uniform(2, 4)):
            listed = self.api.send(
                "GET order_copies (failed)",
                "GET",
                "/api/order_copies",
                params={"filter[q][status_eq]": "failed", "sort": "-failed_at", "page[size]": 25},
                give_up_after=OPS_GIVE_UP_AFTER,
                stopping=stop.is_set,
            ).response
            if listed is None or listed.status_code != 200:
                continue
            for copy_id in self._wanted([c["id"] for c in listed.json()["data"]], 5):
                response = self.api.send(
                    "PATCH _retry",
                    "PATCH",
                    f"/api/order_copies/{copy_id}",
                    json=trigger_document(copy_id, "_retry"),
                    give_up_after=OPS_GIVE_UP_AFTER,
                    stopping=stop.is_set,
                ).response
                if response is None:
                    continue
                if response.status_code == 200:
                    self.count("copies retried over HTTP (PATCH _retry)")
                elif response.status_code == 409:
                    self.count("retries over HTTP that lost a race (no longer failed)")
                else:
                    self._problem(f"retry {copy_id} answered {response.status_code}")

    def retry_failed(self, stop: threading.Event) -> None:
        """Every 3-6 s, retry up to 10 failed copies in bulk (``copying.copies.bulk``); a retry
        that loses a race, or meets the database down, is counted."""
        while not stop.wait(self.rng.uniform(3, 6)):
            try:
                with self.sessions.begin() as session:
                    failed = bulk.select_failed(session, Mode.TEST, bulk.RetryCriteria())
            except (OperationalError, InterfaceError):
                self.count("bulk retries skipped (database down)")
                continue
            batch = self._wanted(failed, 10)
            summary = bulk.retry_each(
                self.sessions, batch, Mode.TEST, by="chaos_bulk_retry", publish=self.ring
            )
            self.count("copies retried in bulk", len(summary.retried))
            self.count("bulk retries that lost a race (no longer failed)", len(summary.skipped))
            self.count("bulk retries that met an error (database down)", len(summary.errors))

    def ring_stray(self, stop: threading.Event) -> None:
        """Every second, ring again the doorbells of 5 earlier copies, whatever their state
        (each goes out twice)."""
        while not stop.wait(1):
            if self.created and not self.redis_down.is_set():
                ids = [self.rng.choice(self.created) for _ in range(5)]
                self.ring(ids)
                self.count("stray doorbells (old ids rung again)", len(ids))

    # --- the second client: double clicks and edits -------------------------------------

    def edit_orders(self, stop: threading.Event, sku_codes: Sequence[str]) -> None:
        """Every 0.1-0.4 s, pick an order (a running copy's target, or any pending order)
        and double-click ``_place`` on it or edit it over HTTP (``sku_codes``: what a new
        line item may be). Any answer below 500 is the API's to give; a 2xx to a write
        on an order an unfinished copy owned before and after it is recorded, as is a
        double click that placed twice."""
        rng = self.editor_rng
        while not stop.wait(rng.uniform(*EDIT_PAUSE)):
            if rng.random() < AT_PAYMENTS:
                self._pay(rng, stop)
                continue
            try:
                picked = self._pick_order(rng)
            except (OperationalError, InterfaceError):
                self.count("edits skipped (database down)")
                continue
            if picked is None:
                continue
            order_id, owner, shipping = picked
            edit = rng.choice(EDITS_WITH_ADDRESS if shipping else EDITS)
            self.count(f"edits: {edit}" + (" (a running copy's target)" if owner else ""))
            try:
                answers = self._edit(rng, edit, order_id, shipping, sku_codes, stop)
                still_owned = owner is not None and self._owner(order_id) == owner
            except (OperationalError, InterfaceError):
                continue
            for what, status in answers:
                if still_owned and status is not None and status < 300:
                    with self._lock:
                        self.owned_writes.append(
                            f"{what} on order {order_id} answered {status} while copy {owner}"
                            " owned it"
                        )
            if edit == EDITS[0] and [status for _, status in answers] == [200, 200]:
                with self._lock:
                    self.double_places.append(f"both clicks of _place on {order_id} placed it")

    def _pay(self, rng: random.Random, stop: threading.Event) -> None:
        """Capture a placed order's authorization, or refund a part or all of its capture,
        over HTTP. Any answer below 500 is the API's to give (409 while another payment
        of the order is under way, 422 past what is left)."""
        # Captures or refunds, as often: the orders to capture outnumber those to refund.
        wanted = CAPTURABLE if rng.random() < 0.5 else REFUNDABLE
        try:
            with self.sessions.begin() as session:
                picked = session.execute(
                    select(Order.id, Order.payment_status, Order.total_amount_cents)
                    .where(
                        Order.status.in_([OrderStatus.PLACED, OrderStatus.APPROVED]),
                        Order.payment_status.in_(wanted),
                    )
                    .order_by(func.random())
                    .limit(1)
                ).first()
        except (OperationalError, InterfaceError):
            self.count("payments skipped (database down)")
            return
        if picked is None:
            return
        order_id, payment_status, total = picked
        attributes: dict[str, Any]
        if payment_status in CAPTURABLE:
            attributes = {"_capture": True}
        elif rng.random() < 0.5:
            attributes = {"_refund_amount_cents": rng.randint(1, max(1, total // 3))}
        else:
            attributes = {"_refund": True}
        (trigger,) = attributes
        self.count(f"payments over HTTP: {trigger}")
        self.api.send(
            f"PATCH {trigger} (editor)",
            "PATCH",
            f"/api/orders/{order_id}",
            json={"data": {"type": "orders", "id": order_id, "attributes": attributes}},
            give_up_after=OPS_GIVE_UP_AFTER,
            stopping=stop.is_set,
        )

    def _pick_order(self, rng: random.Random) -> tuple[str, str | None, str | None] | None:
        """(order id, the unfinished copy that owns it or None, its shipping address id)."""
        with self.sessions.begin() as session:
            if rng.random() < AT_RUNNING_TARGETS:
                rows = session.execute(
                    select(OrderCopy.target_order_id, OrderCopy.id)
                    .where(OrderCopy.status.in_(UNFINISHED), OrderCopy.target_order_id.is_not(None))
                    .order_by(func.random())
                    .limit(1)
                ).all()
            else:
                rows = session.execute(
                    select(Order.id, None)
                    .where(Order.status == OrderStatus.PENDING)
                    .order_by(func.random())
                    .limit(1)
                ).all()
            if not rows:
                return None
            order_id, owner = rows[0]
            shipping = session.scalar(select(Order.shipping_address_id).where(Order.id == order_id))
        return str(order_id), owner, shipping

    def _owner(self, order_id: str) -> str | None:
        with self.sessions.begin() as session:
            return session.scalar(
                select(OrderCopy.id)
                .where(OrderCopy.target_order_id == order_id, OrderCopy.status.in_(UNFINISHED))
                .limit(1)
            )

    def _edit(
        self,
        rng: random.Random,
        edit: str,
        order_id: str,
        shipping: str | None,
        sku_codes: Sequence[str],
        stop: threading.Event,
    ) -> list[tuple[str, int | None]]:
        """Send the edit; (what, status or None when given up) for each request sent."""
        patch_order = f"/api/orders/{order_id}"

        def send(what: str, method: str, path: str, document: Any = None) -> tuple[str, int | None]:
            response = self.api.send(
                what,
                method,
                path,
                json=document,
                give_up_after=OPS_GIVE_UP_AFTER,
                stopping=stop.is_set,
            ).response
            return what, None if response is None else response.status_code

        def order_document(attributes: dict[str, Any]) -> dict[str, Any]:
            return {"data": {"type": "orders", "id": order_id, "attributes": attributes}}

        if edit == "double click _place":
            answers: list[tuple[str, int | None]] = []
            place = order_document({"_place": True})

            def click() -> None:
                answer = send("PATCH _place (double click)", "PATCH", patch_order, place)
                with self._lock:
                    answers.append(answer)

            clicks = [threading.Thread(target=click, name=f"click-{n}") for n in range(2)]
            for thread in clicks:
                thread.start()
            for thread in clicks:
                thread.join()
            return answers
        if edit == "add a line item":
            document = {
                "data": {
                    "type": "line_items",
                    "attributes": {
                        "sku_code": rng.choice(sku_codes),
                        "quantity": rng.randint(1, 3),
                    },
                    "relationships": {"order": {"data": {"type": "orders", "id": order_id}}},
                }
            }
            return [send("POST line_items (editor)", "POST", "/api/line_items", document)]
        with self.sessions.begin() as session:
            if edit == "delete a line item":
                line = session.scalar(
                    select(LineItem.id).where(LineItem.order_id == order_id).limit(1)
                )
                target = None if line is None else f"/api/line_items/{line}"
            elif edit == "switch wallet entry":
                entry = session.scalar(
                    select(CustomerPaymentSource.id)
                    .join(Order, Order.customer_id == CustomerPaymentSource.customer_id)
                    .where(Order.id == order_id)
                    .order_by(func.random())
                    .limit(1)
                )
                target = None if entry is None else str(entry)
            else:
                target = shipping
        if target is None:
            return []
        if edit == "delete a line item":
            return [send("DELETE line_items (editor)", "DELETE", target)]
        if edit == "switch wallet entry":
            document = order_document({"_customer_payment_source_id": target})
            return [
                send("PATCH _customer_payment_source_id (editor)", "PATCH", patch_order, document)
            ]
        document = {
            "data": {
                "type": "addresses",
                "id": target,
                "attributes": {"city": rng.choice(["Turin", "Pisa"])},
            }
        }
        return [send("PATCH addresses (editor)", "PATCH", f"/api/addresses/{target}", document)]
