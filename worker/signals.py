"""Process wiring: logging once per process, fresh connections after fork, log context."""

from __future__ import annotations

from typing import Any

import structlog
from celery import signals

from config import get_settings
from config.logging import configure_logging
from copying.testing import failpoints
from worker.app import COPY_TASK


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(get_settings())


@signals.worker_process_init.connect
def _init_process(**_: Any) -> None:
    failpoints.load(get_settings().failpoints)


@signals.task_prerun.connect
def _bind_task(task_id: str | None = None, task: Any = None, args: Any = None, **_: Any) -> None:
    structlog.contextvars.clear_contextvars()
    fields: dict[str, Any] = {"task_id": task_id, "task": getattr(task, "name", None)}
    if getattr(task, "name", None) == COPY_TASK and args:
        fields["order_copy_id"] = args[0]
    structlog.contextvars.bind_contextvars(**fields)


@signals.task_postrun.connect
def _unbind_task(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()
