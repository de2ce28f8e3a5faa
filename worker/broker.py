"""Kombu's SQLAlchemy transport (the embedded default's broker), polled at two speeds.

Kombu's virtual transports have no way to be woken: a consumer that finds nothing
to take sleeps ``polling_interval`` (one second by default) and looks again. It
finds nothing in two cases, and they call for different waits:

* every prefetch slot is taken (``worker_prefetch_multiplier`` x concurrency
  messages unacknowledged): messages may be queued behind them, and a slot frees
  as soon as a task ends, a few milliseconds later. Kombu still slept a whole
  second there, so a backlog drained at about two messages a second. Here the
  consumer looks again after :data:`BUSY_POLL_SECONDS`; looking costs no query.
* every queue is empty: each look is one short write transaction per queue on
  the broker's database, so the consumer waits :data:`IDLE_POLL_SECONDS`, which
  is also the most a new message waits on an idle worker.

Celery is handed this transport by name and the URL without its ``sqla+`` (see
:func:`celery_broker`); the settings keep the ``sqla+…`` URL everyone else reads.
"""

from __future__ import annotations

from queue import Empty
from time import monotonic, sleep
from typing import Any

from kombu.transport import sqlalchemy

#: A consumer whose slots are all taken looks again this soon (no query is made).
BUSY_POLL_SECONDS = 0.005
#: A consumer that found every queue empty looks again this much later.
IDLE_POLL_SECONDS = 0.25

KOMBU_PREFIX = "sqla+"
TRANSPORT = f"{__name__}:Transport"


def celery_broker(url: str) -> dict[str, str | None]:
    """Celery's ``broker_url`` and ``broker_transport`` for the settings' broker ``url``.

    A ``sqla+…`` URL gets this module's transport (Kombu takes an import path only as
    ``broker_transport``, never in the URL); any other URL picks its transport itself.
    """
    if url.startswith(KOMBU_PREFIX):
        return {"broker_url": url.removeprefix(KOMBU_PREFIX), "broker_transport": TRANSPORT}
    return {"broker_url": url, "broker_transport": None}


class Transport(sqlalchemy.Transport):
    polling_interval = IDLE_POLL_SECONDS

    def drain_events(self, connection: Any, timeout: Any = None) -> Any:  # type: ignore[override]
        """Deliver one message, waiting up to ``timeout``; Kombu's loop with two poll speeds."""
        started = monotonic()
        cycle = self.cycle
        assert cycle is not None, "the transport was closed"
        while True:
            try:
                cycle.get(self._deliver, timeout=timeout)
            except Empty:
                waited = monotonic() - started
                if timeout is not None and waited >= timeout:
                    raise TimeoutError from None
                pause = BUSY_POLL_SECONDS if self._slots_full() else IDLE_POLL_SECONDS
                if timeout is not None:
                    pause = min(pause, timeout - waited)
                sleep(pause)
            else:
                return

    def _slots_full(self) -> bool:
        """Whether some consuming channel holds as many unacknowledged messages as it may."""
        return any(
            channel._consumers and not channel.qos.can_consume() for channel in self.channels
        )
