"""Publishing doorbells: only ids cross the broker.

Every copy doorbell is sent from here (the API, the sweeper, the renewals
tick and retries, through :func:`publish`), except the copy task's own retries,
which Celery re-sends itself. With the test-only switch ``publish_twice``
(``ORDERCOPY_FAILPOINTS=publish_twice=on``) each one of them, Celery's retries
included, goes out twice: what a broker that redelivers looks like.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import structlog
from celery import signals

from config import get_settings
from copying import failpoints
from worker.app import COPY_BATCH_TASK, COPY_TASK, app

log = structlog.get_logger("ordercopy.publisher")
PUBLISH_TWICE = "publish_twice"
_sending_twin = threading.local()


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


def publishes_twice() -> bool:
    return failpoints.is_on(PUBLISH_TWICE, get_settings().failpoints)


@signals.after_task_publish.connect
def _send_twin(
    sender: str | None = None,
    body: Any = None,
    headers: dict[str, Any] | None = None,
    routing_key: str | None = None,
    **_: Any,
) -> None:
    """Under ``publish_twice``: a copy doorbell that went out goes out once more, with
    the same arguments, delay (``eta``) and retry count."""
    if (
        sender not in (COPY_TASK, COPY_BATCH_TASK)
        or getattr(_sending_twin, "active", False)
        or not publishes_twice()
    ):
        return
    args, kwargs = (body[0], body[1]) if isinstance(body, list | tuple) else ((), {})
    headers = headers or {}
    _sending_twin.active = True
    try:
        app.send_task(
            sender,
            args=args,
            kwargs=kwargs,
            queue=routing_key or "copies",
            eta=headers.get("eta"),
            retries=headers.get("retries") or 0,
        )
    except Exception as error:
        log.warning(
            "publish_failed",
            copies=1,
            error=str(error),
            first_id=args[0] if args else None,
            twin=True,
        )
    finally:
        _sending_twin.active = False
