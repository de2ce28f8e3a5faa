"""Executing order copies: from a copy's own message, or from a batch of them (renewals).

Either way the worker claims a chunk of copies at once and runs them together through
the one pipeline (``copying.runs.execute``): Celery's cost is paid per message, the
database's per chunk. Copies that meet transient trouble are announced again, each in a
message of its own, which Celery retries with backoff.
"""

from __future__ import annotations

import logging
from collections import Counter

import structlog
from sqlalchemy.exc import InterfaceError, OperationalError

from copying import runs
from copying.errors import TransientError
from models import db
from worker import metrics, runtime
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
def copy_order(order_copy_id: str) -> dict[str, int]:
    """Run the copy from its last checkpoint, with other due pending copies up to the chunk
    size (their own messages then find them taken and return, as a duplicate does).

    Transient trouble with this message's own copy is raised, and Celery retries the
    message with backoff; another copy of the chunk that meets it is announced again.
    Returns the number of copies by outcome.
    """
    ran = runs.execute(
        db.sessions(),
        [order_copy_id],
        gateways=runtime.gateways(),
        config=runtime.run_config(),
        ahead=runtime.chunk_size() - 1,
    )
    claimed = ran.ran()
    own_error = ran.transient.pop(order_copy_id, None)
    counts = _counted(ran)
    if own_error is not None:
        counts["retried"] += 1
    metrics.count_runs(counts)
    # A message that found nothing to run (another chunk took its copy) is the common case
    # in a backlog: its line is a debug one.
    log.log(logging.INFO if claimed else logging.DEBUG, "copy_task_done", **counts)
    if own_error is not None:
        raise own_error
    return dict(counts)


@app.task(name=COPY_BATCH_TASK, acks_late=True, ignore_result=True)
def copy_orders(order_copy_ids: list[str]) -> dict[str, int]:
    """Run many copies from one message, claimed a chunk at a time.

    A copy that meets a bug keeps its lease, which the sweeper rescues; the rest of the
    batch runs. A process that dies midway spends a claim of each copy of its chunk not
    yet run (the sweeper re-announces them once their leases expire).
    """
    sessions, gateways, config = db.sessions(), runtime.gateways(), runtime.run_config()
    counts: Counter[str] = Counter()
    ids = list(dict.fromkeys(order_copy_ids))
    size = runtime.chunk_size()
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        try:
            ran = runs.execute(sessions, chunk, gateways=gateways, config=config)
        except TRANSIENT as error:  # the claim's: nothing was claimed
            counts["handed_on"] += _hand_on(dict.fromkeys(chunk, error))
            continue
        counts += _counted(ran)
    metrics.count_runs(counts)
    log.info("copy_batch_done", copies=len(order_copy_ids), **counts)
    return dict(counts)


def _counted(ran: runs.Ran) -> Counter[str]:
    """The copies by outcome, those that met transient trouble announced again."""
    counts = ran.counts()
    counts["handed_on"] += _hand_on(ran.transient)
    return counts


def _hand_on(troubled: dict[str, Exception]) -> int:
    """Announce each copy again in a message of its own; returns how many."""
    if troubled:
        error = next(iter(troubled.values()))
        log.warning("copies_handed_on", copies=len(troubled), error=str(error).splitlines()[0])
        publish(list(troubled))
    return len(troubled)
