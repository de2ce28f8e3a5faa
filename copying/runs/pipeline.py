"""The one pipeline every copy runs through, alone or with 199 others.

DESIGN.md's "What a copy does", as short transactions separated by checkpoints
(``order_copies.step``), each for every run of the chunk at once::

    claim ─► build target (+ wallet) + reserve stock ─► authorize (remote) ─► place
          ─► cancel source ─► void its payments (remote) ─► finish

Each transaction starts by fencing its runs (``copy_states.lock_many``: a row lock on the
copies their runs still own, ``WHERE attempt = …``) and ends with each run's checkpoint or
end (``finish.close``, the only writer of ``completed`` and ``failed``). No transaction
is open across a gateway call; while calls are out the leases are renewed every third of
a lease. A run that crashes is resumed by the next claim from its last checkpoint: the
target is rebuilt in place until it is placed, and the gateway is asked again under the
same idempotency key, so nothing is built or charged twice.

A run that ends early (nothing left to do, or errors) ends in the transaction that found
it so; the others go on together. Trouble stays with the copies it touches: a stage
beaten by another transaction, or one that meets a bug, is rolled back and run again for
each copy on its own (a bug then crashes only its copy, which keeps its lease for the
sweeper); a database error gives up the leases of the copies not yet ended (best
effort: the next claim comes at once) and hands them back as transient; a gateway that
does not answer parks its copy for a quick re-claim.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

import structlog
import structlog.contextvars
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from copying.copies import copy_states, history
from copying.copies.history import EventKind
from copying.errors import ErrorKey, TransientError, one_line
from copying.orders import payments, placing
from copying.orders.gateways import Gateways
from copying.runs import finish, stages
from copying.runs.run import Clock, Outcome, Run, RunConfig, Stage
from copying.testing import failpoints
from copying.webhooks import events as webhook_events
from copying.webhooks import topics
from models import CopyStep, PaymentAuthorization, utcnow

log = structlog.get_logger("ordercopy.runs")

#: A stage: what it does to its runs in a transaction; it returns the holds no order
#: keeps, to void once it has committed.
StageFn = Callable[[Session, Sequence[Run], datetime], list[PaymentAuthorization] | None]

DATABASE_ERRORS = (OperationalError, InterfaceError)


@dataclass
class Ran:
    """What became of the copies asked to run (:func:`execute`)."""

    #: Outcome by copy id (``not_claimed`` for a copy asked for and not claimed).
    outcome: dict[str, Outcome] = field(default_factory=dict)
    #: Copies that met transient trouble, not ended: to be announced again (parked, or
    #: their leases given up, so the next claim comes at once).
    transient: dict[str, Exception] = field(default_factory=dict)

    def counts(self) -> Counter[str]:
        return Counter(outcome.value for outcome in self.outcome.values())

    def ran(self) -> int:
        """How many copies were claimed and run."""
        claimed = [o for o in self.outcome.values() if o is not Outcome.NOT_CLAIMED]
        return len(claimed) + len(self.transient)


def execute(
    sessions: sessionmaker[Session],
    copy_ids: Sequence[str],
    *,
    gateways: Gateways,
    config: RunConfig | None = None,
    clock: Clock = utcnow,
    ahead: int = 0,
) -> Ran:
    """Claim the copies of ``copy_ids`` that are due (and, with ``ahead``, up to that many
    other pending copies) and run them together to their ends (see above). Raises only
    when the claim itself meets a database error (nothing was claimed)."""
    config = config or RunConfig()
    runs = claim(sessions, copy_ids, config=config, clock=clock, ahead=ahead)
    ran = _Pipeline(sessions, gateways, config, clock).go(runs)
    claimed = {r.copy_id for r in runs}
    for copy_id in copy_ids:
        if copy_id not in claimed:
            ran.outcome[copy_id] = Outcome.NOT_CLAIMED
    return ran


def claim(
    sessions: sessionmaker[Session],
    copy_ids: Sequence[str],
    *,
    config: RunConfig,
    clock: Clock = utcnow,
    ahead: int = 0,
) -> list[Run]:
    """Claim the copies of ``copy_ids`` that are due, in one transaction, and with ``ahead``
    up to that many other pending copies (PostgreSQL; see ``copy_states.claim_recorded``).
    Their leases run from now."""
    bind = sessions.kw["bind"]
    claimed = partial(
        copy_states.claim_recorded,
        copy_ids=copy_ids,
        now=clock(),
        lease=config.lease,
        max_claims=config.max_claims,
        ahead=ahead,
    )
    if bind.dialect.name == "postgresql" and isinstance(bind, Engine):
        # One statement, with no transaction around it (autocommit).
        with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            return [Run.of(copy) for copy in claimed(connection)]
    if bind.dialect.name == "postgresql":  # bound to a caller's transaction (as in tests)
        with sessions.begin() as session:
            return [Run.of(copy) for copy in claimed(session.connection())]
    with sessions.begin() as session:
        now = clock()
        rows = copy_states.claim_many(session, copy_ids, now, config.lease, config.max_claims)
        runs = [Run.of(copy) for copy in rows]
        history.record_many(
            session,
            EventKind.CLAIMED,
            [(r.copy_id, r.mode, r.attempt, {"step": r.step, "claims": r.claims}) for r in runs],
        )
        # As the claim statement does on PostgreSQL: a copy's first claim starts it.
        started = [
            webhook_events.Change(r.copy_id, r.mode, topics.of_copy(topics.START, r.copy_type))
            for r in runs
        ]
        webhook_events.record(
            session, [c for c, r in zip(started, runs, strict=True) if r.claims == 1], now
        )
    return runs


class _Pipeline:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        gateways: Gateways,
        config: RunConfig,
        clock: Clock,
    ) -> None:
        self.sessions = sessions
        self.gateways = gateways
        self.config = config
        self.clock = clock
        self.ran = Ran()
        self.live: list[Run] = []
        self.beat = config.lease.total_seconds() / 3
        self.renewed = time.monotonic()

    def go(self, runs: list[Run]) -> Ran:
        if not runs:
            return self.ran
        self.live = list(runs)
        finish.log_each(runs, "chunk_claimed", "copy_claimed")
        try:
            with _bound(runs):
                failpoints.hit("after_claim")
                self._build([r for r in runs if r.step in (None, CopyStep.TARGET_BUILT)])
                self._authorize(self._at(Stage.AUTHORIZE))
                self._place(self._at(Stage.PLACE))
                self._cancel(self._at(Stage.CANCEL))
                self._void(self._at(Stage.VOID))
                self._in_transaction(self.live, self._finish, end=True)
        except self.config.reraise:
            raise
        except DATABASE_ERRORS as error:
            self._release(error)
        except Exception:
            log.exception("chunk_crashed", copies=len(self.live))
            self._end(self.live, Outcome.CRASHED)
        return self.ran

    # --- the stages, in order ---

    def _build(self, runs: list[Run]) -> None:
        if not runs:
            return
        self._in_transaction(
            runs,
            partial(stages.build, together=True),
            alone=partial(stages.build, together=False),
        )
        going_on = [r for r in runs if r in self.live]
        if going_on:
            failpoints.hit("after_build")
            if any(r.options.place_target_order for r in going_on):
                failpoints.hit("after_reserve")

    def _authorize(self, runs: list[Run]) -> None:
        if not runs:
            return
        unread = [r for r in runs if r.request is None]
        if unread:  # resumed at their reserved stock: read in a transaction of their own
            with self.sessions.begin() as session:
                stages.read_requests(session, unread, self.clock())
        answers = stages.ask_all(
            self.gateways,
            runs,
            concurrency=self.config.gateway_concurrency,
            beat=self.beat,
            heartbeat=lambda: self._renew(self.live, self.config.lease),
        )
        troubled = []
        for run, answer in zip(runs, answers, strict=True):
            if isinstance(answer, Exception):
                troubled.append((run, answer))
            else:
                run.answer = answer
        if any(r.answer is not None for r in runs):
            failpoints.hit("after_authorize")
        self._sort_out(troubled)

    def _place(self, runs: list[Run]) -> None:
        if runs:
            self._in_transaction(runs, stages.place)
            failpoints.hit("after_place")

    def _cancel(self, runs: list[Run]) -> None:
        if runs:
            self._in_transaction(runs, stages.cancel)
            failpoints.hit("after_cancel")

    def _void(self, runs: list[Run]) -> None:
        """Void what the cancelled sources still hold, a run at a time (remote,
        idempotent): a gateway's trouble stays with its copy."""
        if not runs:
            return
        with self.sessions.begin() as session:
            held = stages.being_voided(session, runs)
        troubled = []
        for run in runs:
            self._heartbeat()
            with _bound([run]):
                try:
                    stages.void(self.gateways, run, held[run.copy_id])
                except self.config.reraise:
                    raise
                except Exception as error:
                    troubled.append((run, error))
        failpoints.hit("after_void")
        self._sort_out(troubled)

    @staticmethod
    def _finish(session: Session, runs: Sequence[Run], now: datetime) -> None:
        payments.mark_voided(session, [i for r in runs for i in r.voided], now)
        stages.record_refunds(session, runs, now)
        failpoints.hit("before_finish")

    # --- transactions ---

    def _at(self, stage: Stage) -> list[Run]:
        return [r for r in self.live if r.next_stage() is stage]

    def _in_transaction(
        self,
        runs: list[Run],
        stage: StageFn,
        *,
        alone: StageFn | None = None,
        end: bool = False,
        lease: timedelta | None = None,
    ) -> None:
        """Run ``stage`` for ``runs`` in one transaction, fenced first and closed by each
        run's checkpoint or end (their leases renewed for ``lease``). Beaten by another
        transaction (stock taken meanwhile, a deadlock), or meeting a bug, it is rolled
        back and run again for each run on its own (``alone``: the stage off the common
        path); a run that meets a bug on its own crashes."""
        if not runs:
            return
        alone = alone or stage
        saved = [r.saved() for r in runs]
        try:
            return self._transaction(runs, stage, end=end, lease=lease)
        except self.config.reraise:
            raise
        except stages.Beaten as beaten:
            log.info("chunk_beaten", stage=str(beaten), copies=len(runs))
        except DATABASE_ERRORS as error:
            if not _conflict(error) or len(runs) == 1:
                raise
            log.info("chunk_beaten", stage="conflict", copies=len(runs), error=one_line(error))
        except Exception:
            if len(runs) == 1 and alone is stage:
                log.exception("copy_run_crashed", **runs[0].log_fields())
                self._end(runs, Outcome.CRASHED)
                return
            log.warning("chunk_split", copies=len(runs), exc_info=True)
        for run, before in zip(runs, saved, strict=True):
            run.restore(before)
        for run in runs:
            self._heartbeat()
            with _bound([run]):
                try:
                    self._transaction([run], alone, end=end, lease=lease)
                except self.config.reraise:
                    raise
                except DATABASE_ERRORS:
                    raise
                except Exception:
                    log.exception("copy_run_crashed", **run.log_fields())
                    self._end([run], Outcome.CRASHED)

    def _transaction(
        self, runs: list[Run], stage: StageFn, *, end: bool, lease: timedelta | None
    ) -> None:
        """One transaction of ``runs``; the holds its stage left unkept are voided once it
        has committed, each on its own."""
        now = self.clock()
        for run in runs:
            run.reached_now.clear()
            run.orders_changed.clear()
        with self.sessions.begin() as session:
            owned = copy_states.lock_many(session, [(r.copy_id, r.attempt) for r in runs], now)
            mine = [r for r in runs if r.copy_id in owned]
            unkept = stage(session, mine, now) or []
            ended = finish.close(
                session, mine, now, self.config.lease if lease is None else lease, end=end
            )
        self.renewed = time.monotonic()
        self._lost([r for r in runs if r.copy_id not in owned])
        for outcome in set(ended.values()):
            self._end([r for r in mine if ended.get(r.copy_id) is outcome], outcome)
        for payment_id, problems in placing.void_each(
            self.sessions, self.gateways, unkept, now
        ).items():
            log.warning("payment_not_voided", payment_id=payment_id, problems=problems)

    # --- what becomes of the runs ---

    def _end(self, runs: Iterable[Run], outcome: Outcome) -> None:
        for run in list(runs):  # runs may be self.live
            self.ran.outcome[run.copy_id] = outcome
            if run in self.live:
                self.live.remove(run)

    def _lost(self, runs: list[Run]) -> None:
        for run in runs:
            log.warning("copy_lease_lost", **run.log_fields())
        self._end(runs, Outcome.LEASE_LOST)

    def _sort_out(self, troubled: list[tuple[Run, Exception]]) -> None:
        """After trouble outside a transaction, a copy at a time (a gateway call): a
        database error stops the chunk; transient trouble parks its copy; a bug crashes
        only its copy."""
        parked = []
        for run, error in troubled:
            if isinstance(error, DATABASE_ERRORS):
                raise error
            if isinstance(error, TransientError):
                parked.append((run, error))
            else:
                log.error("copy_run_crashed", exc_info=error, **run.log_fields())
                self._end([run], Outcome.CRASHED)
        self._park(parked)

    def _park(self, parked: Sequence[tuple[Run, Exception]]) -> None:
        """Record transient trouble met outside a transaction and let the next claim come
        at once (the lease given up), or fail the copies whose runs are used up."""
        if not parked:
            return
        errors = {run.copy_id: error for run, error in parked}

        def park(session: Session, runs: Sequence[Run], now: datetime) -> None:
            history.append(
                session,
                [
                    history.Event(
                        run.copy_id,
                        run.mode,
                        run.attempt,
                        EventKind.TRANSIENT_ERROR,
                        {"step": run.step, "message": one_line(errors[run.copy_id])},
                    )
                    for run in runs
                ],
            )
            for run in runs:
                if run.claims >= self.config.max_claims:
                    message = one_line(errors[run.copy_id])
                    run.errors.add(
                        ErrorKey.ORDER_COPY, f"gave up after {run.claims} attempts: {message}"
                    )

        runs = [run for run, _ in parked]
        self._in_transaction(runs, park, lease=timedelta(0))
        for run in runs:
            if run in self.live:  # parked, not ended
                error = errors[run.copy_id]
                log.warning("copy_transient_error", error=one_line(error), **run.log_fields())
                self.ran.transient[run.copy_id] = error
                self.live.remove(run)

    def _release(self, error: Exception) -> None:
        """After a database error: give up the leases of the runs not ended, best effort,
        so that the next claim comes at once; they are handed back as transient. Writes
        nothing else: the failed transaction rolled back, and what the runs hold in
        memory may be ahead of the database."""
        left = list(self.live)
        self._renew(left, timedelta(0), error=error)
        for run in left:
            self.ran.transient[run.copy_id] = error
        self.live = []

    def _heartbeat(self) -> None:
        """Renew the live runs' leases if a third of a lease went by since the last
        write: while copies wait for their turn, one after another."""
        if time.monotonic() - self.renewed > self.beat:
            self._renew(self.live, self.config.lease)

    def _renew(
        self, runs: Sequence[Run], lease: timedelta, *, error: Exception | None = None
    ) -> None:
        """Renew the leases of ``runs`` that still own their copies, best effort: the
        heartbeat while gateway calls are out. With a zero lease and the ``error`` that
        stopped the runs: give them up, recording why."""
        if not runs:
            return
        message = one_line(error) if error is not None else ""
        try:
            with self.sessions.begin() as session:
                owned = copy_states.renew_many(
                    session, [(r.copy_id, r.attempt) for r in runs], self.clock(), lease
                )
                if error is not None:
                    history.append(
                        session,
                        [
                            history.Event(
                                r.copy_id,
                                r.mode,
                                r.attempt,
                                EventKind.TRANSIENT_ERROR,
                                {"message": message},
                            )
                            for r in runs
                            if r.copy_id in owned
                        ],
                    )
            self.renewed = time.monotonic()
        except DATABASE_ERRORS:
            pass  # the database is away: the leases run out
        if error is not None:
            log.warning("copy_database_error", error=message, copies=len(runs))


#: PostgreSQL's SQLSTATEs for a transaction that lost to another: deadlock_detected,
#: serialization_failure. Run again one copy at a time, they no longer meet.
_CONFLICTS = frozenset({"40P01", "40001"})


def _conflict(error: Exception) -> bool:
    return getattr(getattr(error, "orig", None), "sqlstate", None) in _CONFLICTS


def _bound(runs: Sequence[Run]) -> AbstractContextManager[None]:
    """A run alone's log fields, bound for every line logged meanwhile (a chunk's lines
    name their copies themselves)."""
    if len(runs) != 1:
        return nullcontext()
    return structlog.contextvars.bound_contextvars(
        order_copy_id=runs[0].copy_id, attempt=runs[0].attempt
    )
