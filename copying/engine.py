"""Order copies: create one, execute it, retry it.

``execute`` is DESIGN.md's "What a copy does", as a run of short transactions
separated by checkpoints (``order_copies.step``)::

    claim ─► build target (+ wallet) ─► reserve stock ─► authorize (remote) ─► place
          ─► cancel source ─► void its payments (remote) ─► finish

Building and reserving share one transaction (two checkpoints, one commit); the
payment to ask for is read in it too. Each transaction ends with a fenced write
of the checkpoint (``WHERE attempt = :attempt``): a run that lost its lease
finds nothing to update and rolls back. No transaction is open across a gateway
call. A run that crashes is resumed by the next claim from its last checkpoint:
the target order is rebuilt in place until it is placed, and the gateway is
asked again under the same idempotency key, so nothing is built or charged twice.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Engine, Row
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from copying import (
    copy_states,
    failpoints,
    history,
    order_states,
    orders,
    payments,
    renewals,
    stock,
    targets,
    wallet,
)
from copying.dispatch import publish_after_commit
from copying.errors import (
    CopyInputError,
    CopyStateError,
    ErrorKey,
    ErrorLog,
    LeaseLostError,
    NotFoundError,
    TransientError,
    keys_of,
    one_line,
)
from copying.gateways import GatewayAnswer, Gateways
from copying.history import EventKind
from copying.options import CopyOptions
from models import (
    CopyStatus,
    CopyStep,
    Mode,
    Order,
    OrderCopy,
    OrderStatus,
    PaymentAuthorization,
    new_public_id,
    utcnow,
)

log = structlog.get_logger("ordercopy.engine")

Clock = Callable[[], datetime]

MAX_TEXT = 255
MAX_METADATA_BYTES = 16 * 1024
STEPS = list(CopyStep)


@dataclass(frozen=True)
class EngineConfig:
    lease: timedelta = timedelta(seconds=30)
    max_claims: int = 8
    #: Gateway calls a chunk of copies makes at once (``chunks``).
    gateway_concurrency: int = 1


class Outcome(enum.StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    NOT_CLAIMED = "not_claimed"
    LEASE_LOST = "lease_lost"


# --- create ---------------------------------------------------------------------------


def check_copy_input(
    *,
    mode: Any,
    reference: Any,
    reference_origin: Any,
    metadata: Any,
    idempotency_key: Any = None,
) -> None:
    """Raise CopyInputError naming the first bad input."""
    if not isinstance(mode, Mode):
        raise CopyInputError("mode", f"{mode!r} is not one of test, live")
    for name, text in (
        ("reference", reference),
        ("reference_origin", reference_origin),
        ("idempotency_key", idempotency_key),
    ):
        if text is not None and not isinstance(text, str):
            raise CopyInputError(name, "must be a string")
        if text is not None and len(text) > MAX_TEXT:
            raise CopyInputError(name, f"is {len(text)} characters long, the limit is {MAX_TEXT}")
        if text is not None and "\x00" in text:
            raise CopyInputError(name, "must not contain NUL characters")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise CopyInputError("metadata", "must be an object of key-value pairs")
        try:
            size = len(json.dumps(metadata, allow_nan=False).encode())
        except (TypeError, ValueError) as error:
            raise CopyInputError("metadata", f"is not JSON: {error}") from None
        if size > MAX_METADATA_BYTES:
            raise CopyInputError("metadata", f"is {size} bytes, the limit is {MAX_METADATA_BYTES}")


def create(
    session: Session,
    *,
    mode: Mode,
    source_order_id: str,
    options: CopyOptions | None = None,
    reference: str | None = None,
    reference_origin: str | None = None,
    metadata: dict[str, Any] | None = None,
    order_subscription_id: str | None = None,
    customer_payment_source_id: str | None = None,
    idempotency_key: str | None = None,
    period_key: str | None = None,
    now: datetime | None = None,
) -> OrderCopy:
    """Add a ``pending`` copy of ``source_order_id`` and announce it after commit.

    Raises CopyInputError, writing nothing, on bad input. Does not commit.
    """
    options = options or CopyOptions()
    check_copy_input(
        mode=mode,
        reference=reference,
        reference_origin=reference_origin,
        metadata=metadata,
        idempotency_key=idempotency_key,
    )
    source = session.get(Order, source_order_id) if isinstance(source_order_id, str) else None
    if source is None or source.mode != mode:
        raise CopyInputError(
            "source_order", f"order {source_order_id!r} does not exist in {mode} mode"
        )
    now = now or utcnow()
    copy = OrderCopy(
        id=new_public_id(),
        mode=mode,
        status=CopyStatus.PENDING,
        source_order_id=source.id,
        order_subscription_id=order_subscription_id,
        customer_payment_source_id=customer_payment_source_id,
        reference=reference,
        reference_origin=reference_origin,
        metadata_=metadata or {},
        errors_log={},
        errors_count=0,
        attempt=0,
        claims=0,
        dispatched_at=now,
        idempotency_key=idempotency_key,
        period_key=period_key,
        created_at=now,
        updated_at=now,
        **options.as_columns(),
    )
    session.add(copy)
    session.flush()
    history.record(session, copy.id, mode, 0, EventKind.CREATED, **options.as_columns())
    publish_after_commit(session, [copy.id])
    log.info(
        "copy_created", order_copy_id=copy.id, source_order_id=source.id, **options.as_columns()
    )
    return copy


# --- retry ----------------------------------------------------------------------------


def retry(
    session: Session,
    copy_id: str,
    mode: Mode,
    *,
    by: str,
    now: datetime | None = None,
    not_before: datetime | None = None,
) -> OrderCopy:
    """Put a ``failed`` copy back to ``pending`` for a new run from its last checkpoint.

    The failed run's errors move to the copy's history. With ``not_before`` the
    run waits until then (the sweeper announces it when due); otherwise it is
    announced after commit. Raises NotFoundError or CopyStateError (another
    status, including a concurrent retry that won). Does not commit.
    """
    current = session.get(OrderCopy, copy_id)
    if current is None or current.mode != mode:
        raise NotFoundError(f"order copy {copy_id} does not exist in {mode} mode")
    previous = dict(current.errors_log)
    now = now or utcnow()
    if current.target_order_id is not None:
        # The copy takes its target back: an API write to it, holding its lock, ends first
        # (and one that comes after sees the copy unfinished: orders.check_not_owned).
        session.get(Order, current.target_order_id, with_for_update=True)
    row = copy_states.transition(
        session,
        copy_id,
        CopyStatus.PENDING,
        sources=frozenset({CopyStatus.FAILED}),
        claims=0,
        retries=OrderCopy.retries + 1,
        errors_log={},
        errors_count=0,
        failed_at=None,
        completed_at=None,
        lease_expires_at=None,
        next_attempt_at=not_before,
        dispatched_at=now,
        dispatches=0,
        updated_at=now,
    )
    if row is None:
        session.refresh(current)
        raise CopyStateError(copy_id, current.status, "only failed copies can be retried")
    waits = {"not_before": not_before.isoformat()} if not_before else {}
    history.record(
        session,
        copy_id,
        mode,
        row.attempt,
        EventKind.RETRIED,
        by=by,
        previous_errors=previous,
        **waits,
    )
    if not_before is None:
        publish_after_commit(session, [copy_id])
    log.info("copy_retried", order_copy_id=copy_id, by=by, step=row.step, not_before=not_before)
    return row


def abort(
    session: Session, copy_id: str, mode: Mode, *, by: str, now: datetime | None = None
) -> OrderCopy:
    """Move a ``pending`` copy to ``aborted``: it will never run (a queued message finds
    nothing to claim). Raises NotFoundError or CopyStateError. Does not commit."""
    current = session.get(OrderCopy, copy_id)
    if current is None or current.mode != mode:
        raise NotFoundError(f"order copy {copy_id} does not exist in {mode} mode")
    now = now or utcnow()
    row = copy_states.transition(
        session,
        copy_id,
        CopyStatus.ABORTED,
        sources=frozenset({CopyStatus.PENDING}),
        next_attempt_at=None,
        updated_at=now,
    )
    if row is None:
        session.refresh(current)
        raise CopyStateError(copy_id, current.status, "only pending copies can be aborted")
    history.record(session, copy_id, mode, row.attempt, EventKind.ABORTED, by=by)
    log.info("copy_aborted", order_copy_id=copy_id, by=by)
    return row


# --- execute --------------------------------------------------------------------------


@dataclass
class Run:
    """What one run knows of its copy, carried from transaction to transaction."""

    copy_id: str
    mode: Mode
    attempt: int
    claims: int
    source_order_id: str
    target_order_id: str | None
    wallet_entry_id: str | None
    subscription_id: str | None
    retries: int
    options: CopyOptions
    step: CopyStep | None
    errors: ErrorLog = field(default_factory=ErrorLog)
    #: Checkpoints reached in the current transaction, for its history events.
    reached_now: list[CopyStep] = field(default_factory=list)

    @classmethod
    def of(cls, copy: OrderCopy | Row[Any]) -> Run:
        """From the copy's row, as an object or as the columns a claim read back."""
        return cls(
            copy_id=copy.id,
            mode=copy.mode,
            attempt=copy.attempt,
            claims=copy.claims,
            source_order_id=copy.source_order_id,
            target_order_id=copy.target_order_id,
            wallet_entry_id=copy.customer_payment_source_id,
            subscription_id=copy.order_subscription_id,
            retries=copy.retries,
            options=CopyOptions.of(copy),
            step=copy.step,
            errors=ErrorLog(copy.errors_log),
        )

    def stopped(self) -> bool:
        """Errors end the run, unless the copy asked to skip them."""
        return bool(self.errors) and not self.options.skip_errors

    def reach(self, step: CopyStep) -> None:
        self.step = step
        self.reached_now.append(step)

    def at(self, step: CopyStep) -> bool:
        return self.step == step

    def reached(self, step: CopyStep) -> bool:
        return self.step is not None and STEPS.index(self.step) >= STEPS.index(step)

    def log_fields(self) -> dict[str, Any]:
        return {
            "order_copy_id": self.copy_id,
            "attempt": self.attempt,
            "step": self.step,
            "source_order_id": self.source_order_id,
            "target_order_id": self.target_order_id,
        }


def execute(
    sessions: sessionmaker[Session],
    copy_id: str,
    *,
    gateways: Gateways,
    config: EngineConfig | None = None,
    clock: Clock = utcnow,
) -> Outcome:
    """Run the copy from its last checkpoint to ``completed`` or ``failed``.

    Returns NOT_CLAIMED when another run owns it, it is finished, or it is
    not due; LEASE_LOST when a newer run took over midway. Transient trouble
    parks the copy for a quick re-claim and re-raises (the caller retries).
    """
    config = config or EngineConfig()
    runs = claim(sessions, [copy_id], config=config, clock=clock)
    if not runs:
        return Outcome.NOT_CLAIMED
    return run_claimed(sessions, runs[0], gateways=gateways, config=config, clock=clock)


def claim(
    sessions: sessionmaker[Session],
    copy_ids: Sequence[str],
    *,
    config: EngineConfig,
    clock: Clock = utcnow,
    ahead: int = 0,
) -> list[Run]:
    """Claim the copies of ``copy_ids`` that are due, in one transaction (a batch claims
    many at once), and with ``ahead`` up to that many other pending copies (PostgreSQL;
    see ``copy_states.claim_recorded``). Each then runs soon, its lease running from now: on
    its own with :func:`run_claimed`, or with others in ``chunks.run_chunk``."""
    bind = sessions.kw["bind"]
    claim = partial(
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
            return [Run.of(copy) for copy in claim(connection)]
    if bind.dialect.name == "postgresql":  # bound to a caller's transaction (as in tests)
        with sessions.begin() as session:
            return [Run.of(copy) for copy in claim(session.connection())]
    with sessions.begin() as session:
        claimed = copy_states.claim_many(
            session, copy_ids, clock(), config.lease, config.max_claims
        )
        runs = [Run.of(copy) for copy in claimed]
        history.record_many(
            session,
            EventKind.CLAIMED,
            [(r.copy_id, r.mode, r.attempt, {"step": r.step, "claims": r.claims}) for r in runs],
        )
    return runs


def run_claimed(
    sessions: sessionmaker[Session],
    run: Run,
    *,
    gateways: Gateways,
    config: EngineConfig,
    clock: Clock = utcnow,
    just_claimed: bool = True,
) -> Outcome:
    """Run a claimed copy from its last checkpoint to its end (see :func:`execute`).

    ``just_claimed`` False: the run got this copy part of the way with others
    (``chunks.run_chunk``) and goes on alone from the checkpoint it reached."""
    runner = _Runner(sessions, run, gateways, config, clock)
    with structlog.contextvars.bound_contextvars(attempt=run.attempt):
        if just_claimed:
            log.info("copy_claimed", **run.log_fields())
        try:
            if just_claimed:
                failpoints.hit("after_claim")
            try:
                return runner.go()
            except TransientError as error:
                if runner.park(error) is Outcome.FAILED:
                    return Outcome.FAILED
                raise
            except (OperationalError, InterfaceError) as error:
                runner.release(error)
                raise
        except LeaseLostError:  # also from parking: a newer run took over meanwhile
            log.warning("copy_lease_lost", **run.log_fields())
            return Outcome.LEASE_LOST


def park(
    sessions: sessionmaker[Session],
    run: Run,
    error: Exception,
    *,
    config: EngineConfig,
    clock: Clock = utcnow,
) -> Outcome | None:
    """After transient trouble outside a transaction (a gateway that did not answer): record
    it and let the next claim come at once; FAILED if the copy's runs are used up. Raises
    LeaseLostError if a newer run owns the copy."""
    return _Runner(sessions, run, {}, config, clock).park(error)


def place_key(copy_id: str) -> str:
    """The first idempotency key of the payment placing the copy's target asks for."""
    return f"order_copy:{copy_id}:place"


def give_up(session: Session, copy: OrderCopy, now: datetime, reason: str) -> None:
    """Fail an abandoned ``in_progress`` copy whose runs are used up (the sweeper's call).

    Releases stock a dead run reserved. Raises LeaseLostError if a run owns it
    after all. Does not commit.
    """
    run = Run.of(copy)
    run.errors.add(ErrorKey.ORDER_COPY, reason)
    _finish(session, run, now)


def _finish(session: Session, run: Run, now: datetime) -> Outcome:
    """Write the run's end: ``completed``, or ``failed`` with the stock it held released."""
    if run.step == CopyStep.STOCK_RESERVED and run.target_order_id:
        # Ended between asking for its payment and recording the answer (given up): the
        # gateway may hold it. Recorded as asked for, the sweeper voids it.
        target = session.get_one(Order, run.target_order_id)
        request = payments.request_for(session, target, place_key(run.copy_id))
        if request.recorded is None and not request.waiting:
            payments.record_requests(session, [(run.mode, request)], now)
        stock.release(session, run.target_order_id, run.mode)
        run.step = CopyStep.TARGET_BUILT
    # skip_errors skips business errors; a run given up on never finished its work.
    ok = not run.errors or (
        run.options.skip_errors
        and run.target_order_id is not None
        and not run.errors.has(ErrorKey.ORDER_COPY)
    )
    outcome = Outcome.COMPLETED if ok else Outcome.FAILED
    finished = copy_states.finish(
        session,
        run.copy_id,
        run.attempt,
        CopyStatus.COMPLETED if ok else CopyStatus.FAILED,
        completed_at=now if ok else None,
        failed_at=None if ok else now,
        lease_expires_at=None,
        step=run.step,
        target_order_id=run.target_order_id,
        errors_log=run.errors.as_dict(),
        errors_count=run.errors.count,
        updated_at=now,
    )
    if not finished:
        raise LeaseLostError(f"order copy {run.copy_id}: attempt {run.attempt} lost it")
    history.record(
        session,
        run.copy_id,
        run.mode,
        run.attempt,
        EventKind.COMPLETED if ok else EventKind.FAILED,
        step=run.step,
        errors=run.errors.as_dict(),
    )
    log.info(
        "copy_completed" if ok else "copy_failed",
        errors_count=run.errors.count,
        **run.log_fields(),
    )
    if run.subscription_id is not None:
        delay = renewals.record_renewal(
            session, run.subscription_id, completed=ok, retries=run.retries, now=now
        )
        if delay is not None:
            retry(
                session, run.copy_id, run.mode, by="failure_policy", now=now, not_before=now + delay
            )
    return outcome


class _Runner:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        run: Run,
        gateways: Gateways,
        config: EngineConfig,
        clock: Clock,
    ) -> None:
        self.sessions = sessions
        self.run = run
        self.gateways = gateways
        self.config = config
        self.clock = clock
        self.outcome: Outcome | None = None
        # Read or written earlier in this run, so that a later transaction need not read
        # them again. Resumed at a later checkpoint, the run reads them afresh.
        self.target: Order | None = None
        self.contents: targets.Contents | None = None

    @contextmanager
    def _step(self) -> Iterator[Session]:
        """One transaction of the run, fenced on entry and closed by the checkpoint (or finish).

        The fence comes first: it row-locks the copy, so a stalled older run stops
        here, before it reads or writes anything, instead of acting on a world a
        newer run already changed.
        """
        run = self.run
        run.reached_now.clear()
        with self.sessions.begin() as session:
            copy_states.fence(session, run.copy_id, run.attempt, self.clock(), self.config.lease)
            yield session
            if self.outcome is None:
                copy_states.fence(
                    session,
                    run.copy_id,
                    run.attempt,
                    self.clock(),
                    self.config.lease,
                    step=run.step,
                    target_order_id=run.target_order_id,
                    errors_log=run.errors.as_dict(),
                    errors_count=run.errors.count,
                )
                history.record_checkpoints(
                    session, run.copy_id, run.mode, run.attempt, run.reached_now
                )
        if self.outcome is None and run.reached_now:
            log.info("copy_checkpoint", **run.log_fields())

    def _finish_if(self, session: Session, condition: bool) -> None:
        if condition:
            self.outcome = _finish(session, self.run, self.clock())

    def go(self) -> Outcome:
        run = self.run
        request: payments.PaymentRequest | None = None
        reserving = False
        if run.step in (None, CopyStep.TARGET_BUILT):
            # Building and reserving share a transaction: each still ends at its checkpoint.
            with self._step() as session:
                new_target = self._build(session)
                done = run.stopped() or not (
                    (run.options.place_target_order and not run.reached(CopyStep.TARGET_PLACED))
                    or run.options.cancel_source_order
                )
                reserving = (
                    not done and run.options.place_target_order and run.at(CopyStep.TARGET_BUILT)
                )
                if reserving:
                    self._reserve(session)
                    done = run.stopped() or (
                        not run.at(CopyStep.STOCK_RESERVED) and not run.options.cancel_source_order
                    )
                    if not done and run.at(CopyStep.STOCK_RESERVED):
                        request = self._payment_request(session, fresh=new_target)
                self._finish_if(session, done)
            if self.outcome:
                return self.outcome
            failpoints.hit("after_build")
            if reserving:
                failpoints.hit("after_reserve")
        if run.at(CopyStep.STOCK_RESERVED):
            if request is None:  # resumed here: read it in a transaction of its own
                with self.sessions.begin() as session:
                    request = self._payment_request(session)
            answer = payments.ask(self.gateways, request)
            failpoints.hit("after_authorize")
            with self._step() as session:
                unkept = self._record_authorization(session, request, answer)
                self._finish_if(session, run.stopped() or not run.options.cancel_source_order)
            if unkept:
                orders.void_holds(self.sessions, self.gateways, unkept, self.clock())
            if self.outcome:
                return self.outcome
            failpoints.hit("after_place")
        if run.options.cancel_source_order and not run.reached(CopyStep.SOURCE_CANCELLED):
            with self._step() as session:
                to_void = self._cancel_source(session)
                self._finish_if(session, run.stopped() or not to_void)
            if self.outcome:
                return self.outcome
            failpoints.hit("after_cancel")
        return self._void_and_finish()

    # --- stages ---

    def _build(self, session: Session) -> bool:
        """(Re)build the target and reuse the wallet, unless the target is already placed.

        Returns whether the target is new (made in this transaction)."""
        run = self.run
        source = session.get(Order, run.source_order_id)
        if source is None:
            run.errors.add(ErrorKey.LINE_ITEMS, f"source order {run.source_order_id} is gone")
            return False
        target = (
            session.get(Order, run.target_order_id, with_for_update=True)
            if run.target_order_id
            else None
        )
        if target is not None and target.status not in order_states.PLACEABLE:
            # Placed by hand (or by a run whose checkpoint was lost): that holds.
            if target.status == OrderStatus.CANCELLED:
                run.errors.add(ErrorKey.TARGET_ORDER, f"target order {target.id} was cancelled")
            else:
                run.reach(CopyStep.TARGET_PLACED)
            return False
        entry, wallet_problem = None, None
        if run.options.reuse_wallet:
            entry_id = renewals.wallet_entry_for(session, run.subscription_id, run.wallet_entry_id)
            entry, wallet_problem = wallet.entry_to_reuse(
                session, source, entry_id, self.clock().date()
            )
        new = target is None
        built = targets.build_target(
            session, source, target, errors=run.errors, payment_source=entry
        )
        if built is None:
            return False
        target, self.contents = built
        self.target = target
        run.target_order_id = target.id
        run.reach(CopyStep.TARGET_BUILT)
        if run.options.reuse_wallet:
            run.errors.clear(ErrorKey.PAYMENT_SOURCE)
            if wallet_problem is not None:
                run.errors.add(ErrorKey.PAYMENT_SOURCE, wallet_problem)
        return new

    def _reserve(self, session: Session) -> None:
        """Check the target can be placed and hold its stock; place it now if it is free."""
        run = self.run
        run.errors.clear(*keys_of("place"))
        target = self.target or session.get(Order, run.target_order_id)
        if target is None:
            run.errors.add(ErrorKey.TARGET_ORDER, f"target order {run.target_order_id} is gone")
            return
        problems, self.contents = orders.reserve_if_placeable(session, target, self.contents)
        for problem in problems:
            run.errors.add(ErrorKey.TARGET_ORDER, problem)
        if problems:
            return
        if target.total_amount_cents == 0:
            order_states.place(target, *self.contents, self.clock(), authorized=False)
            run.reach(CopyStep.TARGET_PLACED)
        else:
            run.reach(CopyStep.STOCK_RESERVED)

    def _payment_request(self, session: Session, *, fresh: bool = False) -> payments.PaymentRequest:
        target = session.get_one(Order, self.run.target_order_id)
        request = payments.request_for(session, target, place_key(self.run.copy_id), fresh=fresh)
        if request.waiting:  # asked for again: the sweeper leaves it be for another window
            payments.record_requests(session, [(self.run.mode, request)], self.clock())
        return request

    def _record_authorization(
        self, session: Session, request: payments.PaymentRequest, answer: GatewayAnswer
    ) -> list[PaymentAuthorization]:
        """Record the answer and place the target, if it is still exactly what was asked
        for (re-read under its row lock); returns the hold to void when it is not."""
        run = self.run
        target_id = request.order_id
        if not request.waiting:
            payments.record_answer(session, run.mode, request, answer, self.clock())
        elif not payments.settle_request(session, request, answer, self.clock()):
            # The sweeper gave the key up while it was asked again: nothing keeps this
            # answer; the hold it may stand for is voided (again: voids are idempotent).
            abandoned = [(ErrorKey.PAYMENT, "the payment was given up as abandoned meanwhile")]
            return self._not_placed(
                session, target_id, abandoned, payments.under_key(session, request.idempotency_key)
            )
        target = session.get(Order, target_id, with_for_update=True, populate_existing=True)
        if target is None:
            run.errors.add(ErrorKey.TARGET_ORDER, f"target order {target_id} is gone")
            return payments.start_voiding(session, self.clock(), key=request.idempotency_key)
        if not answer.authorized:
            declined = [(ErrorKey.PAYMENT, f"payment declined: {answer.message}")]
            return self._not_placed(session, target_id, declined, [])
        problems = [
            (ErrorKey.TARGET_ORDER, f"changed while its payment was asked for: {change}")
            for change in payments.changes_since(target, request)
        ]
        entry_problem = wallet.problem_paying(session, target, self.clock().date())
        if entry_problem is not None:
            problems.append((ErrorKey.PAYMENT_SOURCE, entry_problem))
        if problems:
            unkept = payments.start_voiding(session, self.clock(), key=request.idempotency_key)
            return self._not_placed(session, target_id, problems, unkept)
        contents = self.contents or targets.load_contents(session, target_id)
        order_states.place(target, *contents, self.clock(), authorized=True)
        run.reach(CopyStep.TARGET_PLACED)
        return []

    def _not_placed(
        self,
        session: Session,
        target_id: str,
        problems: list[tuple[ErrorKey, str]],
        unkept: list[PaymentAuthorization],
    ) -> list[PaymentAuthorization]:
        """The target stays unplaced: its stock given back, the run back at its build,
        ``problems`` recorded; returns ``unkept``, the hold to void."""
        stock.release(session, target_id, self.run.mode)
        self.run.reach(CopyStep.TARGET_BUILT)
        for key, message in problems:
            self.run.errors.add(key, message)
        return unkept

    def _cancel_source(self, session: Session) -> list[str]:
        """Cancel the source and release its stock; returns its payments left to void."""
        run = self.run
        run.errors.clear(*keys_of("cancel"))
        if run.options.place_target_order and not run.reached(CopyStep.TARGET_PLACED):
            run.errors.add(ErrorKey.SOURCE_ORDER, "not cancelled: the target order was not placed")
            return []
        source = session.get(Order, run.source_order_id, with_for_update=True)
        problems = order_states.problems_cancelling(source) if source else ["source order is gone"]
        other = orders.owner(session, run.source_order_id)
        if other is not None:  # the target of a copy still running: that copy's to decide
            problems = [f"source order {run.source_order_id} belongs to order copy {other}"]
        if problems or source is None:
            for problem in problems:
                run.errors.add(ErrorKey.SOURCE_ORDER, problem)
            return []
        order_states.cancel(source, self.clock())
        stock.release(session, source.id, run.mode)
        run.reach(CopyStep.SOURCE_CANCELLED)
        return [a.id for a in payments.start_voiding(session, self.clock(), order_id=source.id)]

    def _void_and_finish(self) -> Outcome:
        """Void what the cancelled source still holds (remote, idempotent), then finish."""
        run = self.run
        voided: list[str] = []
        if run.step == CopyStep.SOURCE_CANCELLED:
            with self.sessions.begin() as session:
                held = payments.being_voided(session, run.source_order_id)
            voided, problems = payments.void_remote(self.gateways, held)
            for problem in problems:
                run.errors.add(ErrorKey.SOURCE_ORDER, problem)
            failpoints.hit("after_void")
        with self._step() as session:
            payments.mark_voided(session, voided, self.clock())
            failpoints.hit("before_finish")
            self._finish_if(session, True)
        assert self.outcome is not None
        return self.outcome

    def park(self, error: Exception) -> Outcome | None:
        """After transient trouble: let the next claim come at once, or give up if out of runs."""
        run = self.run
        now = self.clock()
        with self.sessions.begin() as session:
            history.record(
                session,
                run.copy_id,
                run.mode,
                run.attempt,
                EventKind.TRANSIENT_ERROR,
                step=run.step,
                message=one_line(error),
            )
            if run.claims >= self.config.max_claims:
                run.errors.add(
                    ErrorKey.ORDER_COPY, f"gave up after {run.claims} attempts: {one_line(error)}"
                )
                return _finish(session, run, now)
            copy_states.fence(
                session,
                run.copy_id,
                run.attempt,
                now,
                timedelta(0),
                step=run.step,
                target_order_id=run.target_order_id,
                errors_log=run.errors.as_dict(),
                errors_count=run.errors.count,
            )
        log.warning("copy_transient_error", error=one_line(error), **run.log_fields())
        return None

    def release(self, error: Exception) -> None:
        """After a database error inside a step: give up the lease, best effort, so the
        caller's quick retry can claim at once instead of waiting for it to expire.

        Writes nothing else: the failed step rolled back, and what this run holds in
        memory may be ahead of the database.
        """
        run = self.run
        try:
            with self.sessions.begin() as session:
                copy_states.fence(session, run.copy_id, run.attempt, self.clock(), timedelta(0))
                history.record(
                    session,
                    run.copy_id,
                    run.mode,
                    run.attempt,
                    EventKind.TRANSIENT_ERROR,
                    message=one_line(error),
                )
        except (OperationalError, InterfaceError, LeaseLostError):
            pass  # the database is still away (the lease expires) or a newer run took over
        log.warning("copy_database_error", error=str(error).splitlines()[0], **run.log_fields())
