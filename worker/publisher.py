"""Publishing doorbells: only ids cross the broker."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from worker.app import COPY_TASK, app

log = structlog.get_logger("ordercopy.publisher")


def publish(copy_ids: Sequence[str]) -> None:
    """Send one ``copy_order`` message per id, after commit.

    A broker outage is logged, not raised: the rows are committed, and the
    sweeper re-sends copies that stay ``pending``.
    """
    try:
        with app.producer_or_acquire() as producer:
            for copy_id in copy_ids:
                app.send_task(COPY_TASK, args=(copy_id,), queue="copies", producer=producer)
    except Exception as error:  # kombu raises many kinds; every one means "not sent"
        log.warning(
            "publish_failed",
            copies=len(copy_ids),
            error=str(error),
            first_id=copy_ids[0] if copy_ids else None,
        )
