"""Publishing doorbells: only ids cross the broker.

Every copy doorbell is sent from here (the API, the sweeper, the renewals
tick and retries, through :func:`publish`), except the copy task's own retries,
which Celery re-sends itself. The web process rings through :data:`doorbells`, a
thread of its own that sends what its requests committed meanwhile in one message.
A process started with the test-only switch ``publish_twice``
(``ORDERCOPY_FAILPOINTS=publish_twice=on``) loads ``worker.testing``, which sends
each of them twice.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Sequence

import structlog

from config import get_settings
from copying.testing import failpoints
from worker.app import COPY_BATCH_TASK, COPY_TASK, app

log = structlog.get_logger("ordercopy.publisher")
PUBLISH_TWICE = "publish_twice"
#: The least time between two messages of :class:`Doorbells`: what a copy may wait
#: for the ids rung after it, under a stream of creates.
GATHER_SECONDS = 0.01


def publish(copy_ids: Sequence[str], *, per_message: int = 1) -> None:
    """Send the ids, after commit: a ``copy_order`` message each, or ``copy_orders``
    messages of ``per_message`` ids (renewal storms pay Celery's cost per message once
    per batch).

    A broker outage is logged, not raised: the rows are committed, and the
    sweeper re-sends copies that stay ``pending``, one by one.
    """
    try:
        with app.producer_or_acquire() as producer:
            if per_message == 1:
                for copy_id in copy_ids:
                    app.send_task(COPY_TASK, args=(copy_id,), queue="copies", producer=producer)
            else:
                for start in range(0, len(copy_ids), per_message):
                    batch = list(copy_ids[start : start + per_message])
                    app.send_task(COPY_BATCH_TASK, args=(batch,), queue="copies", producer=producer)
    except Exception as error:  # kombu raises many kinds; every one means "not sent"
        log.warning(
            "publish_failed",
            copies=len(copy_ids),
            error=str(error),
            first_id=copy_ids[0] if copy_ids else None,
        )


class Doorbells:
    """Publishes from a thread of its own: the request that committed copies hands their
    ids over (:meth:`ring`) and answers at once; the thread sends every id handed over
    since its last send in one ``copy_orders`` message (a chunk at most; ``copy_order``
    for one id), at most one message per :data:`GATHER_SECONDS`. Under load a message
    carries many copies, and each create stops paying Celery's cost of a message
    (issue 20).

    Only committed ids are handed over (:func:`copying.copies.dispatch.unit_of_work`).
    A process that dies before the thread sent them leaves its copies ``pending``, which
    the sweeper announces again, as after a crash between commit and publish.
    """

    def __init__(self) -> None:
        self._waiting: list[str] = []
        self._sending = False
        self._idle = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def ring(self, copy_ids: Sequence[str]) -> None:
        """Hand ``copy_ids`` (committed) to the thread; returns without waiting for it."""
        with self._changed:
            self._waiting.extend(copy_ids)
            if self._thread is None or self._pid != os.getpid():  # none yet, or forked
                self._start()
            elif self._idle:  # a busy thread takes these on its next turn unasked
                self._changed.notify()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every id handed over was sent (or failed and was logged); whether it
        happened within ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(
                lambda: not self._waiting and not self._sending, timeout=timeout
            )

    def _start(self) -> None:
        self._pid = os.getpid()
        self._sending = False
        self._thread = threading.Thread(target=self._run, name="doorbells", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sent_at = 0.0
        while True:
            with self._changed:
                self._sending = False
                self._changed.notify_all()  # a flush waiting
                self._idle = True
                self._changed.wait_for(lambda: bool(self._waiting))
                self._idle = False
                self._sending = True
            # At most one message per GATHER_SECONDS: a steady stream of creates is sent
            # in messages of many; an id rung after a quiet spell goes at once.
            time.sleep(max(0.0, sent_at + GATHER_SECONDS - time.monotonic()))
            with self._changed:
                copy_ids, self._waiting = self._waiting, []
            sent_at = time.monotonic()
            # publish logs a broker outage and never raises: the thread goes on.
            if len(copy_ids) == 1:
                publish(copy_ids)
            else:
                publish(copy_ids, per_message=get_settings().chunk_size)


#: The web process's publisher (``api.app``): rung after each commit, flushed at exit.
doorbells = Doorbells()
atexit.register(doorbells.flush)


if failpoints.is_on(PUBLISH_TWICE, get_settings().failpoints):
    import worker.testing  # noqa: F401  (connects the test-only publish_twice hook)
