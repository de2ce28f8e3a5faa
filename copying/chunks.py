"""Chunks: claimed copies run together, each stage one statement per table for all of them.

A copy run alone (``engine.run_claimed``) costs 18 statements in 4 transactions. A chunk
of claimed copies on their common path costs about a dozen statements in all, plus each
copy's own gateway call::

    build + reserve, for every copy (one transaction) ─► authorize each at its gateway
    (no transaction open) ─► record the answers, place and finish (one transaction)

It is the engine's path, not a second one: the same checkpoints and history events, the
same fence at the start of each transaction (a row lock on the copies still owned by
their runs, ``WHERE attempt = …``; the checkpoint that ends the transaction renews the
leases), the same idempotency keys and failpoints; only the statements are shared by the
chunk. A copy that leaves the common path goes on alone, from the checkpoint it reached,
through the engine (:attr:`Chunk.alone`; :func:`run_all` runs both):

* one resumed (a checkpoint already reached), or cancelling its source without placing;
* one whose build or placing meets any problem (the alone run meets it again and records
  it as a run alone would), or whose target is free;
* one whose payment is declined (alone, it asks again under the same key and records the
  decline), and, once placed, one that cancels its source.

A stage beaten by another transaction (stock taken meanwhile, a target no longer
placeable) rolls back, and its copies go on alone from their last checkpoint. While
gateway calls are out and while copies wait to go on alone, their leases are renewed
every third of a lease.

PostgreSQL only (``unnest``, ``UPDATE … FROM``): on SQLite every copy goes on alone.
"""

from __future__ import annotations

import contextvars
import os
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from copying import (
    copy_states,
    engine,
    failpoints,
    history,
    order_states,
    payments,
    renewals,
    stock,
    targets,
    wallet,
)
from copying.copy_states import Advance
from copying.engine import Clock, EngineConfig, Outcome, Run, park, place_key
from copying.errors import ErrorLog, LeaseLostError, TransientError, one_line
from copying.gateways import GatewayAnswer, Gateways
from copying.history import EventKind
from models import (
    CopyStep,
    CustomerPaymentSource,
    Mode,
    Order,
    utcnow,
)
from models.dialects import insert_rows

log = structlog.get_logger("ordercopy.chunks")


@dataclass
class Chunk:
    """What became of a chunk's copies."""

    #: Copies the chunk ended: completed, failed (runs used up) or lease lost.
    ended: dict[str, Outcome] = field(default_factory=dict)
    #: Copies to go on alone from their checkpoint (``engine.run_claimed``, not just claimed).
    alone: list[Run] = field(default_factory=list)
    #: Copies parked after transient trouble at their gateway: to be announced again.
    parked: dict[str, Exception] = field(default_factory=dict)
    #: Copies whose run met a bug (a gateway's, or a stage's): they keep their leases (the
    #: sweeper rescues them).
    crashed: list[str] = field(default_factory=list)
    #: Whether the chunk started its runs (logged them claimed): not on SQLite.
    started: bool = True

    def unsettled(self, runs: Sequence[Run]) -> list[Run]:
        """The runs of ``runs`` the chunk has neither ended, parked nor left crashed."""
        settled = {*self.ended, *self.parked, *self.crashed}
        return [r for r in runs if r.copy_id not in settled]


@dataclass
class _Copy:
    """A copy on the chunk's path: its run and the target made for it."""

    run: Run
    target: Order  # in no session: its columns, for the checks and the payment request
    values: dict[str, Any]  # the same, to insert
    clones: list[dict[str, Any]]  # its addresses, to insert
    lines: list[targets.Line]
    ships: bool
    request: payments.PaymentRequest | None = None
    answer: GatewayAnswer | None = None


class _Beaten(Exception):
    """Another transaction changed what a stage read: roll the stage back, go on alone."""


def run_chunk(
    sessions: sessionmaker[Session],
    runs: Sequence[Run],
    *,
    gateways: Gateways,
    config: EngineConfig,
    clock: Clock = utcnow,
) -> Chunk:
    """Run the claimed ``runs`` together as far as their common path goes (see above).

    Trouble stays in the chunk. A database error releases the leases of the copies it
    had not ended (best effort, so that the next claim comes at once) and parks them, to
    be announced again; anything else (a bug) is logged and leaves them crashed, keeping
    their leases for the sweeper, as a crash would.
    """
    chunk = Chunk()
    if sessions.kw["bind"].dialect.name != "postgresql":
        return Chunk(alone=list(runs), started=False)
    _log_each(runs, "chunk_claimed", "copy_claimed")
    try:
        failpoints.hit("after_claim")
        chunk.alone = [r for r in runs if not _on_path(r)]
        placing = _build_and_reserve(
            sessions, [r for r in runs if _on_path(r)], chunk, config, clock
        )
        if placing:
            failpoints.hit("after_build")
            failpoints.hit("after_reserve")
        authorized = _authorize(sessions, placing, gateways, chunk, config, clock)
        if authorized:
            _place_and_finish(sessions, authorized, chunk, config, clock)
            failpoints.hit("after_place")
    except (OperationalError, InterfaceError) as error:
        left = chunk.unsettled(runs)
        _renew(sessions, left, clock, timedelta(0), error=error)
        chunk.alone = []
        chunk.parked.update(dict.fromkeys((r.copy_id for r in left), error))
    except Exception:
        left = chunk.unsettled(runs)
        log.exception("chunk_crashed", copies=len(left))
        chunk.alone = []
        chunk.crashed += [r.copy_id for r in left]
    return chunk


@dataclass
class Ran:
    """What became of claimed copies (:func:`run_all`)."""

    #: Outcome by copy id: ``completed``, ``failed``, ``lease_lost`` or ``crashed`` (its
    #: lease kept, for the sweeper).
    outcome: dict[str, str] = field(default_factory=dict)
    #: Copies that met transient trouble, not ended: to be announced again (parked, or
    #: their leases given up, so the next claim comes at once).
    transient: dict[str, Exception] = field(default_factory=dict)

    def counts(self) -> Counter[str]:
        return Counter(self.outcome.values())


def run_all(
    sessions: sessionmaker[Session],
    runs: Sequence[Run],
    *,
    gateways: Gateways,
    config: EngineConfig,
    clock: Clock = utcnow,
) -> Ran:
    """Run claimed copies together as far as their common path goes (:func:`run_chunk`),
    then each of the rest alone from its checkpoint (``engine.run_claimed``), renewing
    the leases of those still waiting every third of a lease. One copy's trouble never
    stops the others."""
    chunk = run_chunk(sessions, runs, gateways=gateways, config=config, clock=clock)
    ran = Ran(
        outcome={
            **{copy_id: outcome.value for copy_id, outcome in chunk.ended.items()},
            **dict.fromkeys(chunk.crashed, CRASHED),
        },
        transient=dict(chunk.parked),
    )
    waiting, renewed = list(chunk.alone), time.monotonic()
    beat = config.lease.total_seconds() / 3
    while waiting:
        run = waiting.pop(0)
        if waiting and time.monotonic() - renewed > beat:
            _renew(sessions, waiting, clock, config.lease)
            renewed = time.monotonic()
        with structlog.contextvars.bound_contextvars(order_copy_id=run.copy_id):
            try:
                outcome = engine.run_claimed(
                    sessions,
                    run,
                    gateways=gateways,
                    config=config,
                    clock=clock,
                    just_claimed=not chunk.started,
                )
            except (TransientError, OperationalError, InterfaceError) as error:
                ran.transient[run.copy_id] = error
                continue
            except Exception:
                log.exception("copy_run_crashed")
                ran.outcome[run.copy_id] = CRASHED
                continue
        ran.outcome[run.copy_id] = outcome.value
    return ran


#: A copy whose run met a bug: it keeps its lease (the sweeper rescues it).
CRASHED = "crashed"


def _on_path(run: Run) -> bool:
    """A fresh run with no errors, placing its target or not cancelling its source."""
    return (
        run.step is None
        and run.target_order_id is None
        and not run.errors
        and (run.options.place_target_order or not run.options.cancel_source_order)
    )


# --- build + reserve ------------------------------------------------------------------


def _build_and_reserve(
    sessions: sessionmaker[Session],
    runs: list[Run],
    chunk: Chunk,
    config: EngineConfig,
    clock: Clock,
) -> list[_Copy]:
    """Build every target, take its stock and write the checkpoints, in one transaction;
    a copy not placing its target completes here. Returns the copies to authorize."""
    if not runs:
        return []
    now = clock()
    built: list[_Copy] = []
    try:
        with sessions.begin() as session:
            owned = _fence(session, runs, chunk)
            built = _build(session, owned, chunk, now.date())
            wanted: Counter[tuple[Mode, str]] = Counter()
            for copy in built:
                if copy.run.options.place_target_order:
                    for code, quantity in targets.demand(copy.lines).items():
                        wanted[copy.run.mode, code] += quantity
            if not stock.reserve_many(session, wanted):  # the lines say they hold it
                raise _Beaten
            for copy in built:
                run = copy.run
                run.target_order_id = copy.target.id
                run.reach(CopyStep.TARGET_BUILT)
                if run.options.place_target_order:
                    run.reach(CopyStep.STOCK_RESERVED)
                    copy.request = payments.request_for(
                        session, copy.target, place_key(run.copy_id), fresh=True
                    )
            done = _advance(session, [c.run for c in built], now, config.lease)
    except _Beaten:  # raised before any run moved on: they go alone from their claim
        log.info("chunk_beaten", stage="reserve", copies=len(built))
        chunk.alone += [c.run for c in built]
        return []
    _completed(chunk, done)
    return [c for c in built if c.request is not None]


def _build(session: Session, runs: list[Run], chunk: Chunk, today: date) -> list[_Copy]:
    """Read what the targets are made of (one query per table), plan each, and write the
    targets of the copies on the common path (one statement per table); the others are
    left to go on alone."""
    # ``held`` keeps what was loaded alive (the session holds it weakly) while planning.
    sources, chosen, held = _prefetch(session, runs)
    contents = targets.load_contents_many(session, sources)
    addresses = targets.read_addresses(session, sources.values())
    stock_left: dict[tuple[Mode, str], int] = {}
    built: list[_Copy] = []
    for run in runs:
        entry_id = chosen.get(run.copy_id)
        copy = _plan(session, run, sources, entry_id, contents, addresses, stock_left, today)
        if copy is None:
            chunk.alone.append(run)
        else:
            built.append(copy)
    del held
    if built:
        targets.insert_addresses(session, [row for c in built for row in c.clones])
        insert_rows(session, order_states.ORDERS, [targets.order_row(c.values) for c in built])
        targets.insert_lines_many(
            session,
            [(c.target.id, c.run.mode, c.lines) for c in built],
            reserving={c.target.id for c in built if c.run.options.place_target_order},
        )
    return built


def _prefetch(
    session: Session, runs: list[Run]
) -> tuple[dict[str, targets.SourceOrder], dict[str, str | None], list[object]]:
    """Read the runs' source orders (the columns a target is built from), the wallet entry
    each reusing run charges (its subscription's current one, by copy id), and load those
    entries, one query each: ``wallet.entry_to_reuse`` then finds them in the session, as
    long as the third value (every object loaded: the session holds them weakly) is
    kept."""
    sources: dict[str, targets.SourceOrder] = {
        row.id: row
        for row in session.execute(
            select(*targets.SOURCE_COLUMNS).where(Order.id.in_({r.source_order_id for r in runs}))
        )
    }
    wallets = [r for r in runs if r.options.reuse_wallet]
    entries = renewals.wallet_entries_for(
        session, [(r.subscription_id, r.wallet_entry_id) for r in wallets]
    )
    chosen = {r.copy_id: entry for r, entry in zip(wallets, entries, strict=True)}
    entry_ids = set()
    for run in wallets:  # the chosen entry, else the source's own
        source = sources.get(run.source_order_id)
        entry_ids.add(
            chosen[run.copy_id] or (source.customer_payment_source_id if source else None)
        )
    entry_ids.discard(None)
    loaded: list[object] = []
    if entry_ids:
        loaded += session.scalars(
            select(CustomerPaymentSource).where(CustomerPaymentSource.id.in_(entry_ids))
        ).all()
    return sources, chosen, loaded


def _plan(
    session: Session,
    run: Run,
    sources: dict[str, targets.SourceOrder],
    entry_id: str | None,
    contents: dict[str, targets.Contents],
    addresses: dict[str, dict[str, Any]],
    stock_left: dict[tuple[Mode, str], int],
    today: date,
) -> _Copy | None:
    """The copy's target, or None when anything would keep it off the common path."""
    source = sources.get(run.source_order_id)
    if source is None:
        return None
    entry = None
    if run.options.reuse_wallet:
        entry, problem = wallet.entry_to_reuse(session, source, entry_id, today)
        if problem is not None:
            return None
    have = contents.get(source.id)
    if have is None or not any(line.item_type in targets.COPYABLE for line in have.lines):
        return None
    errors = ErrorLog()
    priced = targets.price_lines(have, source.currency_code, errors)
    if errors:
        return None
    clones, billing_id, shipping_id = targets.address_clones(source, addresses)
    values = targets.target_values(
        source,
        priced,
        billing_address_id=billing_id,
        shipping_address_id=shipping_id,
        payment_source=entry,
    )
    target = Order(**values)
    if run.options.place_target_order:
        if target.total_amount_cents == 0 or order_states.problems_placing(
            target, priced, have.skus
        ):
            return None
        demand = targets.demand(priced)
        for code in demand:  # what the chunk's earlier copies left
            stock_left.setdefault((run.mode, code), have.skus[code].stock_quantity)
        if any(quantity > stock_left[run.mode, code] for code, quantity in demand.items()):
            return None
        for code, quantity in demand.items():
            stock_left[run.mode, code] -= quantity
    return _Copy(run, target, values, clones, priced, order_states.ships(priced, have.skus))


# --- authorize ------------------------------------------------------------------------


def _authorize(
    sessions: sessionmaker[Session],
    copies: list[_Copy],
    gateways: Gateways,
    chunk: Chunk,
    config: EngineConfig,
    clock: Clock,
) -> list[_Copy]:
    """Ask each copy's gateway, no transaction open; returns the copies authorized."""
    authorized = []
    answers = _ask_all(sessions, gateways, copies, config, clock)
    for copy, answer in zip(copies, answers, strict=True):
        run = copy.run
        if isinstance(answer, OperationalError | InterfaceError):
            raise answer
        if isinstance(answer, TransientError):
            try:
                if park(sessions, run, answer, config=config, clock=clock) is Outcome.FAILED:
                    chunk.ended[run.copy_id] = Outcome.FAILED
                else:
                    chunk.parked[run.copy_id] = answer
            except LeaseLostError:
                _lost(chunk, [run])
            continue
        if isinstance(answer, Exception):
            log.error("copy_run_crashed", exc_info=answer, **run.log_fields())
            chunk.crashed.append(run.copy_id)
            continue
        failpoints.hit("after_authorize")
        copy.answer = answer
        if answer.authorized:
            authorized.append(copy)
        else:  # alone, it asks again under the same key and records the decline
            chunk.alone.append(run)
    return authorized


def _ask_all(
    sessions: sessionmaker[Session],
    gateways: Gateways,
    copies: list[_Copy],
    config: EngineConfig,
    clock: Clock,
) -> list[GatewayAnswer | Exception]:
    """Each copy's answer, or what its gateway raised: up to ``config.gateway_concurrency``
    calls at once (remote calls wait on the network, not on this process), each with the
    caller's context (its log fields). The copies' leases are renewed every third of a
    lease while calls are still out."""

    def ask(copy: _Copy) -> GatewayAnswer | Exception:
        assert copy.request is not None
        try:
            return payments.ask(gateways, copy.request)
        except Exception as error:  # sorted out by the caller, in order
            return error

    runs = [c.run for c in copies]
    beat = config.lease.total_seconds() / 3
    if config.gateway_concurrency <= 1 or len(copies) <= 1:
        answers, renewed = [], time.monotonic()
        for copy in copies:
            if time.monotonic() - renewed > beat:
                _renew(sessions, runs, clock, config.lease)
                renewed = time.monotonic()
            answers.append(ask(copy))
        return answers
    pool = _pool(config.gateway_concurrency)
    calls = [pool.submit(contextvars.copy_context().run, ask, copy) for copy in copies]
    try:
        while wait(calls, timeout=beat).not_done:
            _renew(sessions, runs, clock, config.lease)
    finally:
        for call in calls:  # interrupted (a time limit): calls not started are dropped
            call.cancel()
    return [call.result() for call in calls]


_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _pool(size: int) -> ThreadPoolExecutor:
    """This process's threads for gateway calls (a forked child makes its own)."""
    key = (os.getpid(), size)
    if key not in _pools:
        _pools[key] = ThreadPoolExecutor(size, thread_name_prefix="gateway")
    return _pools[key]


# --- place + finish -------------------------------------------------------------------


def _place_and_finish(
    sessions: sessionmaker[Session],
    copies: list[_Copy],
    chunk: Chunk,
    config: EngineConfig,
    clock: Clock,
) -> None:
    """Record the answers, place the targets and write the checkpoints, in one
    transaction; a copy not cancelling its source completes here."""
    now = clock()
    placed: list[_Copy] = []
    try:
        with sessions.begin() as session:
            owned = {r.copy_id for r in _fence(session, [c.run for c in copies], chunk)}
            placed = [c for c in copies if c.run.copy_id in owned]
            payments.record_answers(
                session,
                [(c.run.mode, c.request, c.answer) for c in placed],  # type: ignore[misc]
                now,
            )
            if not _unchanged(session, placed, now):
                raise _Beaten
            if not order_states.place_many_unloaded(
                session, {c.target.id: c.ships for c in placed}, now, authorized=True
            ):
                raise _Beaten
            for copy in placed:
                copy.run.reached_now.clear()
                copy.run.reach(CopyStep.TARGET_PLACED)
            done = _advance(session, [c.run for c in placed], now, config.lease)
    except _Beaten:
        log.info("chunk_beaten", stage="place", copies=len(placed))
        chunk.alone += [c.run for c in placed]
        return
    _completed(chunk, done)
    chunk.alone += [c.run for c in placed if c.run.options.cancel_source_order]  # to cancel it


def _unchanged(session: Session, copies: list[_Copy], now: datetime) -> bool:
    """Whether every target is still exactly what its payment was asked for, and its
    wallet entry can still pay (the targets' rows locked, in id order). When one is not,
    the chunk rolls back and its copies go on alone, where each records why."""
    asked = {c.target.id: c.request for c in copies}
    rows = session.execute(
        select(*payments.ASKED_COLUMNS)
        .where(Order.id.in_(list(asked)))
        .order_by(Order.id)
        .with_for_update()
    ).all()
    if len(rows) != len(asked) or wallet.problems_paying(session, rows, now.date()):
        return False
    return not any(payments.changes_since(row, asked[row.id]) for row in rows)  # type: ignore[arg-type]


# --- writing the runs' progress ----------------------------------------------------------


def _fence(session: Session, runs: list[Run], chunk: Chunk) -> list[Run]:
    """Fence every run (see ``engine._Runner._step``; the leases are renewed by the
    transaction's advance); returns those still owning their copy."""
    owned = copy_states.lock_many(session, [(r.copy_id, r.attempt) for r in runs])
    _lost(chunk, [r for r in runs if r.copy_id not in owned])
    return [r for r in runs if r.copy_id in owned]


def _advance(session: Session, runs: list[Run], now: datetime, lease: timedelta) -> list[Run]:
    """Write each run's checkpoint, or its end where it has nothing left to do (it places no
    target, or cancels no source), with their history and the renewals completed. Returns
    the runs ended: they count as such once the transaction commits (:func:`_completed`)."""
    done = [r for r in runs if not (r.options.cancel_source_order or r.at(CopyStep.STOCK_RESERVED))]
    finished = {r.copy_id for r in done}
    copy_states.advance_many(
        session,
        [
            Advance(r.copy_id, r.attempt, r.step, r.target_order_id, r.copy_id in finished)  # type: ignore[arg-type]
            for r in runs
        ],
        now,
        lease,
    )
    # As alone: a transaction that ends a run records its end, not the checkpoints it passed.
    going_on = [r for r in runs if r.copy_id not in finished]
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
            EventKind.COMPLETED,
            {"step": r.step, "errors": {}},
        )
        for r in done
    ]
    history.append(session, events)
    renewals.record_completed(session, [r.subscription_id for r in done if r.subscription_id], now)
    # Per copy at debug (the history has each checkpoint), once per chunk at info.
    if going_on:
        _log_each(going_on, "chunk_checkpoint", "copy_checkpoint", step=going_on[0].step)
    return done


def _completed(chunk: Chunk, runs: list[Run]) -> None:
    _log_each(runs, "chunk_completed", "copy_completed")
    for run in runs:
        chunk.ended[run.copy_id] = Outcome.COMPLETED


def _log_each(runs: Sequence[Run], chunk_event: str, copy_event: str, **fields: Any) -> None:
    """One line for the chunk at info (``chunk_event``: the copies' ids, to grep for, and
    ``fields``), one per copy at debug (``copy_event``, as a copy run alone logs it at
    info): two lines per copy cost a chunk of renewals about 5% of its worker CPU."""
    if runs:
        log.info(chunk_event, copies=len(runs), order_copy_ids=[r.copy_id for r in runs], **fields)
    for run in runs:
        log.debug(copy_event, **run.log_fields())


def _lost(chunk: Chunk, runs: list[Run]) -> None:
    for run in runs:
        log.warning("copy_lease_lost", **run.log_fields())
        chunk.ended[run.copy_id] = Outcome.LEASE_LOST


def _renew(
    sessions: sessionmaker[Session],
    runs: Sequence[Run],
    clock: Clock,
    lease: timedelta,
    *,
    error: Exception | None = None,
) -> None:
    """Renew the leases of ``runs`` that still own their copies, best effort: a chunk's
    heartbeat while it waits on gateways or runs copies alone. With a zero lease and the
    ``error`` that stopped the chunk: give them up, so that the next claim comes at once
    (``engine``'s release, for many)."""
    if not runs:
        return
    message = one_line(error) if error is not None else ""
    try:
        with sessions.begin() as session:
            owned = copy_states.renew_many(
                session, [(r.copy_id, r.attempt) for r in runs], clock(), lease
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
    except (OperationalError, InterfaceError):
        pass  # the database is away: the leases run out
    if error is not None:
        log.warning("chunk_database_error", error=message, copies=len(runs))
