"""Found by the chaos suite (fixed in worker/app.py): every message reached all three queues.

``worker/app.py`` declared ``Queue(name)`` for ``copies``, ``renewals`` and
``maintenance``. Celery bound each to the default exchange (``copies``) with
the default routing key (``copies``), so a message routed to any one of them
was delivered to all three: on Redis, ``_kombu.binding.copies`` listed the three
queues under the key ``copies``. Nothing broke (a duplicate doorbell finds its
copy claimed, a duplicate sweep or tick is idempotent), but a worker consuming
every queue ran each message three times, and no worker could be given only
``maintenance`` or only ``copies``.

The fix binds each queue to one direct exchange, ``ordercopy``, under its own
name. The exchange is new, so the stale bindings a deployed Redis still holds
(exchange ``copies``, key ``copies``) are never used again; the queue names,
and the messages waiting in them, stay as they were.
"""

from __future__ import annotations

import pytest

from worker.app import COPY_TASK, RENEWALS_TICK_TASK, SWEEP_TASK, app


@pytest.mark.parametrize("task", [COPY_TASK, SWEEP_TASK, RENEWALS_TICK_TASK])
def test_a_task_is_delivered_to_its_own_queue_only(task):
    target = app.amqp.router.route({}, task)["queue"]
    reached = sorted(
        name
        for name, queue in app.amqp.queues.items()
        if queue.exchange.name == target.exchange.name and queue.routing_key == target.routing_key
    )
    assert reached == [target.name]
