"""Executing order copies: one per message, or a batch of them (renewal storms)."""

from __future__ import annotations

from collections import Counter

import structlog
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from copying import engine
from copying.errors import TransientError
from copying.gateways import Gateways
from models import db
from worker import runtime
from worker.app import COPY_BATCH_TASK, COPY_TASK, app
from worker.publisher import publish

log = structlog.get_logger("ordercopy.tasks")

TRANSIENT = (TransientError, OperationalError, InterfaceError)


@app.task(
    name=COPY_TASK,
    acks_late=True,
    ignore_result=True,
    autoretry_for=TRANSIENT,
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


#: Copies of a batch claimed in one statement: the last of them starts well within its lease.
CLAIMED_AT_ONCE = 10


@app.task(name=COPY_BATCH_TASK, acks_late=True, ignore_result=True)
def copy_orders(order_copy_ids: list[str]) -> dict[str, int]:
    """Run many copies from one message: Celery's cost per message is paid once per batch,
    and claims are made ``CLAIMED_AT_ONCE`` at a time. Each copy then runs, fenced and
    checkpointed, on its own, as from its own message.

    A copy that meets transient trouble goes on alone, in a ``copy_order`` message of its own
    that retries with backoff; one that meets a bug keeps its lease, which the sweeper
    rescues. Either way the rest of the batch runs. A process that dies midway spends a
    claim of each copy of its chunk not yet run (the sweeper re-announces them once their
    leases expire).
    """
    sessions, gateways, config = db.sessions(), runtime.gateways(), runtime.engine_config()
    outcomes: Counter[str] = Counter()
    ids = list(dict.fromkeys(order_copy_ids))
    for start in range(0, len(ids), CLAIMED_AT_ONCE):
        chunk = ids[start : start + CLAIMED_AT_ONCE]
        try:
            runs = engine.claim(sessions, chunk, config=config)
        except TRANSIENT as error:
            log.warning("copies_handed_on", copies=len(chunk), error=str(error).splitlines()[0])
            publish(chunk)
            outcomes["handed_on"] += len(chunk)
            continue
        outcomes[engine.Outcome.NOT_CLAIMED.value] += len(chunk) - len(runs)
        for run in runs:
            _run_one(sessions, run, gateways, config, outcomes)
    log.info("copy_batch_done", copies=len(order_copy_ids), **outcomes)
    return dict(outcomes)


def _run_one(
    sessions: sessionmaker[Session],
    run: engine.Run,
    gateways: Gateways,
    config: engine.EngineConfig,
    outcomes: Counter[str],
) -> None:
    with structlog.contextvars.bound_contextvars(order_copy_id=run.copy_id):
        try:
            outcome = engine.run_claimed(sessions, run, gateways=gateways, config=config)
            outcomes[outcome.value] += 1
        except TRANSIENT as error:
            log.warning("copy_handed_on", error=str(error).splitlines()[0])
            publish([run.copy_id])
            outcomes["handed_on"] += 1
        except Exception:
            log.exception("copy_run_crashed")
            outcomes["crashed"] += 1
