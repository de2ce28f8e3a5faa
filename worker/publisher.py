"""Publishing doorbells: only ids cross the broker.

Every copy doorbell is sent from here (the API, the sweeper, the renewals
tick and retries, through :func:`publish`), except the copy task's own retries,
which Celery re-sends itself. A process started with the test-only switch
``publish_twice`` (``ORDERCOPY_FAILPOINTS=publish_twice=on``) loads
``worker.testing``, which sends each of them twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from config import get_settings
from copying.testing import failpoints
from worker.app import COPY_BATCH_TASK, COPY_TASK, app

log = structlog.get_logger("ordercopy.publisher")
PUBLISH_TWICE = "publish_twice"


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


if failpoints.is_on(PUBLISH_TWICE, get_settings().failpoints):
    import worker.testing  # noqa: F401  (connects the test-only publish_twice hook)
