"""What the web's clients and ops do while the faults happen.

Copies are created over HTTP (``POST /api/order_copies``, tests/chaos/web.py)
by a few clients at a steady pace, each with an Idempotency-Key that the
client sends again, with the same body, after a connection error or a 5xx
(and now and then on purpose, as a double click); a few copies are aborted
at once, over HTTP where the API has ``_abort``, through the domain (as
``ordercopy copies abort`` does) where it has not. Failed copies are retried
over HTTP (``PATCH _retry``) and in bulk (``copying.bulk``, as ``ordercopy
copies retry`` does). Old doorbells are rung again at random (stray
duplicates); every doorbell of every process goes out twice anyway
(``publish_twice``).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from copying import bulk
from copying.dispatch import Publish
from models import Mode
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
        """Every 3-6 s, retry up to 10 failed copies in bulk (``copying.bulk``); a retry
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
