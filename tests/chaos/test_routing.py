"""Found by the chaos suite (fixed in worker/app.py): every message reached all three queues.

``worker/app.py`` declares ``Queue(name)`` for ``copies``, ``renewals`` and
``maintenance``. Celery binds each to the default exchange (``copies``) with
the default routing key (``copies``), so a message routed to any one of them
is delivered to all three: on Redis, ``_kombu.binding.copies`` lists the three
queues under the key ``copies``. Nothing breaks (a duplicate doorbell finds its
copy claimed, a duplicate sweep or tick is idempotent), but a worker consuming
every queue runs each message three times, and no worker can be given only
``maintenance`` or only ``copies``.

Proposed fix (worker/app.py, not this suite's to make)::

    task_queues=[Queue(n, Exchange(f"ordercopy.{n}"), routing_key=n) for n in QUEUES]

New exchange names, so that the stale bindings already in a deployed Redis
(exchange ``copies``, key ``copies``) are never used again; the queue names,
and the messages waiting in them, stay as they are.
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
