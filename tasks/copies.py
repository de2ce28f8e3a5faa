"""Executing order copies: from a copy's own message, or from a batch of them (renewals).

Either way the worker claims a chunk of copies at once and runs them together as far as
their common path goes (``copying.chunks``), then each of the rest alone from its
checkpoint (``copying.engine.run_claimed``): Celery's cost is paid per message, the
database's per chunk.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import structlog
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from copying import chunks, engine
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
def copy_order(order_copy_id: str) -> dict[str, int]:
    """Run the copy from its last checkpoint, with other due pending copies up to the chunk
    size (their own messages then find them taken and return, as a duplicate does).

    Transient trouble with this message's own copy is raised, and Celery retries the
    message with backoff; another copy of the chunk that meets it is announced again.
    Returns the number of copies by outcome (the worker's metrics count them).
    """
    sessions, gateways, config = db.sessions(), runtime.gateways(), runtime.engine_config()
    runs = engine.claim(sessions, [order_copy_id], config=config, ahead=runtime.chunk_size() - 1)
    outcomes: Counter[str] = Counter()
    own = _run(sessions, runs, gateways, config, outcomes, keep=order_copy_id)
    if isinstance(own, Exception):
        raise own
    if own == engine.Outcome.NOT_CLAIMED.value:
        outcomes[own] += 1
    # A message that found nothing to run (another chunk took its copy) is the common case
    # in a backlog: its line is a debug one.
    log.log(logging.INFO if runs else logging.DEBUG, "copy_task_done", outcome=own, **outcomes)
    return dict(outcomes)


@app.task(name=COPY_BATCH_TASK, acks_late=True, ignore_result=True)
def copy_orders(order_copy_ids: list[str]) -> dict[str, int]:
    """Run many copies from one message, claimed a chunk at a time.

    A copy that meets transient trouble goes on alone, in a ``copy_order`` message of its
    own that retries with backoff; one that meets a bug keeps its lease, which the sweeper
    rescues. Either way the rest of the batch runs. A process that dies midway spends a
    claim of each copy of its chunk not yet run (the sweeper re-announces them once their
    leases expire).
    """
    sessions, gateways, config = db.sessions(), runtime.gateways(), runtime.engine_config()
    outcomes: Counter[str] = Counter()
    ids = list(dict.fromkeys(order_copy_ids))
    size = runtime.chunk_size()
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        try:
            runs = engine.claim(sessions, chunk, config=config)
        except TRANSIENT as error:
            _hand_on(chunk, error, outcomes)
            continue
        outcomes[engine.Outcome.NOT_CLAIMED.value] += len(chunk) - len(runs)
        _run(sessions, runs, gateways, config, outcomes)
    log.info("copy_batch_done", copies=len(order_copy_ids), **outcomes)
    return dict(outcomes)


def _run(
    sessions: sessionmaker[Session],
    runs: Sequence[engine.Run],
    gateways: Gateways,
    config: engine.EngineConfig,
    outcomes: Counter[str],
    *,
    keep: str | None = None,
) -> str | Exception:
    """Run claimed copies together, then the rest alone; count their outcomes.

    Returns what became of copy ``keep``: its outcome, or the transient error it met (not
    handed on: the caller's retry is its message). Every other copy meeting one is handed
    on in a message of its own.
    """
    own: str | Exception = engine.Outcome.NOT_CLAIMED.value

    def hand_on(copy_ids: list[str], error: Exception) -> None:
        nonlocal own
        if keep in copy_ids:
            own, copy_ids = error, [i for i in copy_ids if i != keep]
        _hand_on(copy_ids, error, outcomes)

    try:
        chunk = chunks.run_chunk(sessions, runs, gateways=gateways, config=config)
    except TRANSIENT as error:  # the chunk's leases are released
        hand_on([r.copy_id for r in runs], error)
        return own
    for copy_id, outcome in chunk.ended.items():
        outcomes[outcome.value] += 1
        own = outcome.value if copy_id == keep else own
    for copy_id, trouble in chunk.parked.items():
        hand_on([copy_id], trouble)
    outcomes["crashed"] += len(chunk.crashed)
    for run in chunk.alone:
        with structlog.contextvars.bound_contextvars(order_copy_id=run.copy_id):
            try:
                outcome = engine.run_claimed(
                    sessions,
                    run,
                    gateways=gateways,
                    config=config,
                    just_claimed=not chunk.started,
                )
            except TRANSIENT as error:
                hand_on([run.copy_id], error)
                continue
            except Exception:
                log.exception("copy_run_crashed")
                outcomes["crashed"] += 1
                continue
        outcomes[outcome.value] += 1
        own = outcome.value if run.copy_id == keep else own
    return own


def _hand_on(copy_ids: list[str], error: Exception, outcomes: Counter[str]) -> None:
    if copy_ids:
        log.warning("copies_handed_on", copies=len(copy_ids), error=str(error).splitlines()[0])
        publish(copy_ids)
        outcomes["handed_on"] += len(copy_ids)
