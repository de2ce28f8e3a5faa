"""The end of every transaction of a run: its checkpoint, or its end.

:func:`close` is the only writer of ``completed`` and ``failed``, of the history events
that say so, of a renewal's outcome on its subscription and of the failure policy's
retry (announced after commit): whether a copy ends alone or with 199 others, after
its last stage or given up by the sweeper, it ends here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from copying.copies import copy_states, history, lifecycle
from copying.copies.copy_states import Written
from copying.copies.history import EventKind
from copying.errors import ErrorKey, LeaseLostError
from copying.orders import payments, stock
from copying.runs.run import Outcome, Run, Stage, place_key
from copying.subscriptions import renewals
from copying.webhooks import events as webhook_events
from copying.webhooks import topics
from models import CopyStatus, CopyStep, Order, OrderCopy

log = structlog.get_logger("ordercopy.runs")


def close(
    session: Session,
    runs: Sequence[Run],
    now: datetime,
    lease: timedelta,
    *,
    end: bool = False,
) -> dict[str, Outcome]:
    """Write each run's checkpoint (its lease renewed to end ``lease`` from now, the steps it
    reached in this transaction recorded), or its end where nothing is left for it to do
    (or, with ``end``, in any case): one statement for all of them, and one per table
    after. Returns the outcomes of the runs ended; they count once the transaction commits.

    The runs were fenced at the start of the transaction (``copy_states.lock_many``);
    raises LeaseLostError if one no longer owns its copy all the same. Does not commit.
    """
    ending = [r for r in runs if end or r.next_stage() is Stage.FINISH]
    outcomes = {r.copy_id: _settle(session, r, now) for r in ending}
    rows = [
        Written(
            r.copy_id,
            r.attempt,
            CopyStatus(outcomes.get(r.copy_id, CopyStatus.IN_PROGRESS)),
            r.step,
            r.target_order_id,
            r.errors.as_dict(),
            r.errors.count,
        )
        for r in runs
    ]
    written = copy_states.write_many(session, rows, now, lease)
    if len(written) != len(rows):
        lost = sorted({r.copy_id for r in runs} - written)
        raise LeaseLostError(f"order copies {', '.join(lost)}: their runs no longer own them")
    going_on = [r for r in runs if r.copy_id not in outcomes]
    events = [
        e
        for r in going_on
        for e in history.checkpoints(r.copy_id, r.mode, r.attempt, r.reached_now)
    ]
    events += [
        history.Event(
            r.copy_id,
            r.mode,
            r.attempt,
            EventKind(outcomes[r.copy_id].value),
            {"step": r.step, "errors": r.errors.as_dict()},
        )
        for r in ending
    ]
    history.append(session, events)
    completed = [r for r in ending if outcomes[r.copy_id] is Outcome.COMPLETED]
    webhook_events.record(
        session,
        [
            *(
                webhook_events.Change(order_id, r.mode, topic)
                for r in runs
                for order_id, topic in r.orders_changed
            ),
            *(
                webhook_events.Change(
                    r.copy_id,
                    r.mode,
                    topics.of_copy(topics.COMPLETE if r in completed else topics.FAIL, r.copy_type),
                )
                for r in ending
            ),
        ],
        now,
    )
    renewals.record_completed(
        session,
        [r.subscription_id for r in completed if r.subscription_id and not r.retries],
        now,
        retried=[r.subscription_id for r in completed if r.subscription_id and r.retries],
    )
    for run in ending:
        if run.subscription_id is not None and run not in completed:
            _renewal_failed(session, run, now)
    if going_on:
        log_each(going_on, "chunk_checkpoint", "copy_checkpoint", step=going_on[0].step)
    log_each(completed, "chunk_completed", "copy_completed")
    for run in ending:
        if run not in completed:
            log.info("copy_failed", errors_count=run.errors.count, **run.log_fields())
    return outcomes


def _settle(session: Session, run: Run, now: datetime) -> Outcome:
    """The run's outcome, what it holds given back if it ends before placing."""
    if run.at(CopyStep.STOCK_RESERVED) and run.target_order_id:
        # Ended between asking for its payment and recording the answer (given up): the
        # gateway may hold it. Recorded as asked for, the sweeper voids it.
        target = session.get_one(Order, run.target_order_id)
        request = payments.request_for(session, target, place_key(run.copy_id))
        if request.recorded is None and not request.waiting:
            payments.record_requests(session, [(run.mode, request)], now)
        stock.release(session, run.target_order_id, run.mode)
        run.step = CopyStep.TARGET_BUILT
    if not run.errors and run.target_order_id is None:
        # No stage lets a run end so with nothing done; should one ever, it fails.
        run.errors.add(ErrorKey.TARGET_ORDER, "no target order was built")
    elif (
        not run.errors
        and run.options.place_target_order
        and not run.reached(CopyStep.TARGET_PLACED)
    ):
        run.errors.add(ErrorKey.TARGET_ORDER, "the target order was not placed")
    # skip_errors skips business errors; a run given up on never finished its work.
    ok = not run.errors or (
        run.options.skip_errors
        and run.target_order_id is not None
        and not run.errors.has(ErrorKey.ORDER_COPY)
    )
    return Outcome.COMPLETED if ok else Outcome.FAILED


def _renewal_failed(session: Session, run: Run, now: datetime) -> None:
    """A failed renewal counts on its subscription, whose failure policy may retry it."""
    assert run.subscription_id is not None
    delay = renewals.record_failed(
        session,
        run.subscription_id,
        copy_id=run.copy_id,
        retries=run.retries,
        errors=run.errors.as_dict(),
        now=now,
    )
    if delay is not None:
        lifecycle.retry(
            session, run.copy_id, run.mode, by="failure_policy", now=now, not_before=now + delay
        )


def give_up(session: Session, copy: OrderCopy, now: datetime, reason: str) -> None:
    """Fail an abandoned ``in_progress`` copy whose runs are used up (the sweeper's call).

    Releases stock a dead run reserved. Raises LeaseLostError if a run owns it
    after all. Does not commit.
    """
    run = Run.of(copy)
    run.errors.add(ErrorKey.ORDER_COPY, reason)
    close(session, [run], now, timedelta(0), end=True)


def log_each(runs: Sequence[Run], chunk_event: str, copy_event: str, **fields: Any) -> None:
    """One line for the runs at info (``chunk_event``: the copies' ids, to grep for, and
    ``fields``), one per copy at debug (``copy_event``): two lines per copy cost a chunk
    of renewals about 5% of its worker CPU."""
    if runs:
        log.info(chunk_event, copies=len(runs), order_copy_ids=[r.copy_id for r in runs], **fields)
    for run in runs:
        log.debug(copy_event, **run.log_fields())
