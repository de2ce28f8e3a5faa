"""What the web app and ops do while the faults happen.

Copies are created at a steady pace through the domain (the code path of
``POST /api/order_copies``: commit, then publish), each with an idempotency
key so a client retrying after a lost connection never creates two; a few
are aborted at once. Failed copies are retried in bulk now and then
(``copying.bulk``, as ``ordercopy copies retry`` does). Every doorbell rung
here is published twice, and old doorbells are rung again at random (stray
duplicates).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from copying import bulk, engine
from copying.dispatch import Publish, unit_of_work
from copying.errors import CopyStateError
from models import Mode, OrderCopy
from tests.chaos.world import CopySpec

T = TypeVar("T")
#: A copy is retried in bulk at most this many times.
MAX_BULK_RETRIES = 2
#: How long a client keeps retrying through a database outage before it gives up.
GIVE_UP_AFTER = 120.0


class Traffic:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        publish: Publish,
        rng: random.Random,
        redis_down: threading.Event,
    ) -> None:
        self.sessions = sessions
        self._publish = publish
        self.rng = rng
        self.redis_down = redis_down
        self.created: list[str] = []
        self.counts: Counter[str] = Counter()
        self._publishing = threading.Lock()
        self._bulk_retries: Counter[str] = Counter()

    def ring(self, copy_ids: Sequence[str]) -> None:
        """Publish every doorbell twice."""
        with self._publishing:
            self._publish(copy_ids)
            self._publish(copy_ids)
        self.counts["doorbells rung (each twice)"] += len(copy_ids)

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """Call ``attempt`` until the database answers, as a client retries a 503."""
        deadline = time.monotonic() + GIVE_UP_AFTER
        while True:
            try:
                return attempt()
            except (OperationalError, InterfaceError):
                self.counts["client calls retried (database down)"] += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    # --- creating ---

    def create_all(
        self, specs: Sequence[CopySpec], times: Sequence[float], stop: threading.Event
    ) -> None:
        """Create each spec at its time (seconds from now); all of them, even past ``stop``."""
        start = time.monotonic()
        for spec, at in zip(specs, times, strict=True):
            wait = start + at - time.monotonic()
            if wait > 0 and not stop.is_set():
                stop.wait(wait)
            down = self.redis_down.is_set()
            copy_id = self._retrying(lambda spec=spec: self._create(spec))  # type: ignore[misc]
            self.created.append(copy_id)
            self.counts["copies created while Redis was down"] += down
            if spec.abort and self._retrying(lambda c=copy_id: self._abort(c)):  # type: ignore[misc]
                self.counts["copies aborted"] += 1

    def _create(self, spec: CopySpec) -> str:
        try:
            with unit_of_work(self.sessions, self.ring) as session:
                return engine.create(session, mode=Mode.TEST, **spec.options()).id
        except IntegrityError:
            # The connection died while committing, and the commit had made it.
            with self.sessions.begin() as session:
                found = session.scalar(
                    select(OrderCopy.id).where(OrderCopy.idempotency_key == spec.idempotency_key)
                )
            if found is None:
                raise
            self.counts["creations replayed by idempotency key"] += 1
            return found

    def _abort(self, copy_id: str) -> bool:
        with self.sessions.begin() as session:
            try:
                engine.abort(session, copy_id, Mode.TEST, by="chaos")
            except CopyStateError:  # claimed already: too late to abort
                return False
        return True

    # --- ops ---

    def retry_failed(self, stop: threading.Event) -> None:
        """Every 3-6 s, retry up to 10 failed copies in bulk (``copying.bulk``), each copy
        at most twice; a retry that loses a race, or meets the database down, is counted."""
        while not stop.wait(self.rng.uniform(3, 6)):
            try:
                with self.sessions.begin() as session:
                    failed = bulk.select_failed(session, Mode.TEST, bulk.RetryCriteria())
            except (OperationalError, InterfaceError):
                self.counts["bulk retries skipped (database down)"] += 1
                continue
            wanted = [c for c in failed if self._bulk_retries[c] < MAX_BULK_RETRIES]
            batch = self.rng.sample(wanted, min(len(wanted), 10))
            self._bulk_retries.update(batch)
            summary = bulk.retry_each(
                self.sessions, batch, Mode.TEST, by="chaos_bulk_retry", publish=self.ring
            )
            self.counts["copies retried in bulk"] += len(summary.retried)
            self.counts["bulk retries that lost a race (no longer failed)"] += len(summary.skipped)
            self.counts["bulk retries that met an error (database down)"] += len(summary.errors)

    def ring_stray(self, stop: threading.Event) -> None:
        """Every second, ring again the doorbells of 10 earlier copies, whatever their state."""
        while not stop.wait(1):
            if self.created and not self.redis_down.is_set():
                ids = [self.rng.choice(self.created) for _ in range(10)]
                self.ring(ids)
                self.counts["stray doorbells (old ids rung again)"] += len(ids)
