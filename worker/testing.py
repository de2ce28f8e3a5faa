"""Test-only behaviours of a process, loaded only when a switch asks for them.

``publish_twice`` (``ORDERCOPY_FAILPOINTS=publish_twice=on``, which the chaos suite
sets in every process): every copy doorbell, Celery's own retries included, goes out
twice, as from a broker that redelivers. ``worker.publisher`` imports this module when
the switch is on at start; a test imports it and turns the switch on and off.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog
from celery import signals

from config import get_settings
from copying.testing import failpoints
from worker.app import COPY_BATCH_TASK, COPY_TASK, app
from worker.publisher import PUBLISH_TWICE

log = structlog.get_logger("ordercopy.publisher")
_sending_twin = threading.local()


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
