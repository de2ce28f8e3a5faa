"""Executing one order copy."""

from __future__ import annotations

import structlog
from sqlalchemy.exc import InterfaceError, OperationalError

from copying import engine
from copying.errors import TransientError
from models import db
from worker import runtime
from worker.app import COPY_TASK, app

log = structlog.get_logger("ordercopy.tasks")


@app.task(
    name=COPY_TASK,
    acks_late=True,
    ignore_result=True,
    autoretry_for=(TransientError, OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=6,
)
def copy_order(order_copy_id: str) -> str:
    """Run the copy from its last checkpoint; a duplicate message finds it claimed and returns."""
    outcome = engine.execute(
        db.sessions(), order_copy_id, gateways=runtime.gateways(), config=runtime.engine_config()
    )
    log.info("copy_task_done", outcome=outcome.value)
    return outcome.value
