"""The stages of a run, each for any number of runs at once.

Each stage takes the runs it is given, inside the transaction the pipeline opened and
fenced for them (``runs.pipeline``), and leaves its result on each run: the checkpoint it
reached, or the problems it met in ``run.errors``. Copies on the common path (a new
target, nothing wrong with it) share each statement: one per table for all of them, so a
chunk of 200 costs about what one copy costs. A copy off that path (a target rebuilt
when resumed, a problem to record, a target free of charge) goes through the same stage
on its own statements, in the same transaction.

A stage that another transaction beat (stock taken meanwhile, a target no longer
placeable) raises :class:`Beaten`: the pipeline rolls it back and runs it again for each
copy on its own, off the common path, where each records what it meets.
"""

from __future__ import annotations

import contextvars
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from copying.errors import ErrorKey, ErrorLog, keys_of
from copying.orders import (
    order_states,
    payments,
    placing,
    promotions,
    stock,
    targets,
    transactions,
    wallet,
)
from copying.orders.gateways import GatewayAnswer, Gateways
from copying.runs.run import Run, place_key
from copying.subscriptions import renewals
from copying.webhooks import topics
from models import CopyStep, CustomerPaymentSource, Mode, Order, OrderStatus, PaymentAuthorization
from models.dialects import insert_rows
from models.order_copies import RECURRING


class Beaten(Exception):
    """Another transaction changed what a stage read: roll the stage back, and run it
    again for each copy on its own."""


# --- build (and reserve, in the same transaction) ------------------------------------------


@dataclass
class _Planned:
    """A copy on the common path: the target made for it, to insert with the others'."""

    run: Run
    target: Order  # in no session: its columns
    values: dict[str, Any]
    clones: list[dict[str, Any]]  # its addresses
    contents: targets.Contents


def build(session: Session, runs: Sequence[Run], now: datetime, *, together: bool) -> None:
    """Build (or rebuild, when resumed) each run's target and reuse its wallet entry; a run
    placing its target then holds its stock (placed at once if free of charge) and knows
    the payment to ask for. ``together``: new targets with nothing wrong with them are
    planned and written with one statement per table (copies applying promotions, of a
    source with a coupon, or placing bundle lines, are built on their own)."""
    fresh = [
        r
        for r in runs
        if together
        and r.target_order_id is None
        and not r.errors
        and not r.options.apply_promotions
    ]
    planned, others = _plan_all(session, fresh, now.date()) if fresh else ([], [])
    _write_planned(session, planned)
    new = {p.run.copy_id for p in planned}
    for run in [r for r in runs if r not in fresh] + others:
        if _build_one(session, run, now):
            new.add(run.copy_id)
        if run.options.place_target_order and run.at(CopyStep.TARGET_BUILT) and not run.stopped():
            _reserve_one(session, run, now)
    asking = [r for r in runs if r.at(CopyStep.STOCK_RESERVED)]
    for run in asking:
        assert run.target is not None
        run.request = payments.request_for(
            session, run.target, place_key(run.copy_id), fresh=run.copy_id in new
        )
    _touch_waiting(session, asking, now)


def _plan_all(session: Session, runs: list[Run], today: date) -> tuple[list[_Planned], list[Run]]:
    """Read what the targets are made of (one query per table) and plan each; returns the
    planned copies and the runs whose plan met anything (built on their own)."""
    # ``held`` keeps what was loaded alive (the session holds it weakly) while planning.
    sources, chosen, held = _prefetch(session, runs)
    contents = targets.load_contents_many(session, sources)
    # A renewal in automatic mode builds its target from its subscription's items.
    items = targets.load_items_many(session, {r.subscription_id for r in runs if r.subscription_id})
    addresses = targets.read_addresses(session, sources.values())
    stock_left: dict[tuple[Mode, str], int] = {}
    planned: list[_Planned] = []
    others: list[Run] = []
    for run in runs:
        renewing = items.get(run.subscription_id or "")
        have = renewing.contents if renewing else contents.get(run.source_order_id)
        plan = _plan(
            session,
            run,
            sources,
            chosen.get(run.copy_id),
            have,
            renewing.bundles if renewing else None,
            addresses,
            stock_left,
            today,
        )
        if plan is None:
            others.append(run)
        else:
            planned.append(plan)
    del held
    return planned, others


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
    have: targets.Contents | None,
    bundles: dict[str, targets.BundleTerms | None] | None,
    addresses: dict[str, dict[str, Any]],
    stock_left: dict[tuple[Mode, str], int],
    today: date,
) -> _Planned | None:
    """The copy's target, or None when anything keeps it off the common path (a problem to
    record, a coupon to check, a target free of charge, stock the chunk's earlier copies
    took, bundle lines to take their SKUs' stock)."""
    source = sources.get(run.source_order_id)
    if source is None or source.coupon_code is not None:
        return None
    entry = None
    if run.options.reuse_wallet:
        entry, problem = wallet.entry_to_reuse(session, source, entry_id, today)
        if problem is not None:
            return None
    if have is None or not targets.has_goods(have.lines):
        return None
    errors = ErrorLog()
    priced = targets.copy_lines(have, source.currency_code, errors, bundles)
    if errors or any(line.coupon_code is not None for line in priced):
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
        if (
            target.total_amount_cents == 0
            or order_states.problems_placing(target, priced, have.skus)
            # Its bundle lines take their SKUs' stock: reserved on its own (stock.reserve).
            or targets.has_bundles(priced)
        ):
            return None
        demand = targets.demand(priced)
        for code in demand:  # what the chunk's earlier copies left
            stock_left.setdefault((run.mode, code), have.skus[code].stock_quantity)
        if any(quantity > stock_left[run.mode, code] for code, quantity in demand.items()):
            return None
        for code, quantity in demand.items():
            stock_left[run.mode, code] -= quantity
    return _Planned(run, target, values, clones, targets.Contents(priced, have.skus))


def _write_planned(session: Session, planned: list[_Planned]) -> None:
    """Insert the planned targets (one statement per table) and take the stock of those
    placed; raises Beaten when another transaction took some of it since it was read."""
    if not planned:
        return
    reserving = [p for p in planned if p.run.options.place_target_order]
    targets.insert_addresses(session, [row for p in planned for row in p.clones])
    insert_rows(session, order_states.ORDERS, [targets.order_row(p.values) for p in planned])
    targets.insert_lines_many(
        session,
        [(p.target.id, p.run.mode, p.contents.lines) for p in planned],
        reserving={p.target.id for p in reserving},
    )
    wanted: Counter[tuple[Mode, str]] = Counter()
    for p in reserving:
        for code, quantity in targets.demand(p.contents.lines).items():
            wanted[p.run.mode, code] += quantity
    if not stock.reserve_many(session, wanted):  # the lines say they hold it
        raise Beaten("stock")
    for p in planned:
        run = p.run
        run.target, run.contents, run.target_order_id = p.target, p.contents, p.target.id
        run.reach(CopyStep.TARGET_BUILT)
        if run.options.place_target_order:
            run.reach(CopyStep.STOCK_RESERVED)


def _build_one(session: Session, run: Run, now: datetime) -> bool:
    """(Re)build the run's target on its own statements, recording what it meets, unless
    the target is already placed. Returns whether the target is new."""
    today = now.date()
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
        entry, wallet_problem = wallet.entry_to_reuse(session, source, entry_id, today)
    new = target is None
    coupon_code, then = _promotions(session, run, source, now)
    subscribed = targets.load_items_many(
        session, [run.subscription_id] if run.subscription_id else []
    ).get(run.subscription_id or "")
    built = targets.build_target(
        session,
        source,
        target,
        errors=run.errors,
        contents=subscribed.contents if subscribed else None,
        bundles=subscribed.bundles if subscribed else None,
        payment_source=entry,
        coupon_code=coupon_code,
        then=then,
    )
    if built is None:
        return False
    run.target, run.contents = built
    run.target_order_id = run.target.id
    run.reach(CopyStep.TARGET_BUILT)
    if run.options.reuse_wallet:
        run.errors.clear(ErrorKey.PAYMENT_SOURCE)
        if wallet_problem is not None:
            run.errors.add(ErrorKey.PAYMENT_SOURCE, wallet_problem)
    return new


def _promotions(
    session: Session, run: Run, source: Order, now: datetime
) -> tuple[str | None, Callable[[list[targets.Line]], list[targets.Line]]]:
    """The coupon the target carries (the source's, unless it is no longer valid: then an
    error, or with ``ignore_invalid_coupon`` not copied and no error), and what becomes of
    the lines copied: a coupon not copied takes the promotion lines it unlocked with it;
    ``apply_promotions`` makes the promotion lines again, as of ``now``.

    A renewal keeps the price its subscription was sold at (Commerce Layer's recurring
    copies have neither option): its lines are copied frozen, discounts included, and
    the coupon is neither checked nor carried (its lines keep their discount without
    it), so no renewal takes one of its uses."""
    run.errors.clear(ErrorKey.COUPON_CODE)
    if run.copy_type == RECURRING:
        return None, lambda lines: [line._replace(coupon_code=None) for line in lines]
    code = source.coupon_code
    problem = (
        promotions.problem_with_coupon(session, run.mode, code, source.currency_code, now)
        if code is not None
        else None
    )
    if problem is not None and not run.options.ignore_invalid_coupon:
        run.errors.add(ErrorKey.COUPON_CODE, problem)
    kept = code if problem is None else None

    def then(lines: list[targets.Line]) -> list[targets.Line]:
        if code is not None and kept is None:
            lines = promotions.without_coupon(lines, code)
        if run.options.apply_promotions:
            lines = promotions.apply(session, run.mode, source.currency_code, kept, lines, now)
        return lines

    return kept, then


def _reserve_one(session: Session, run: Run, now: datetime) -> None:
    """Check the run's target can be placed and hold its stock; place it now if free."""
    run.errors.clear(*keys_of("place"))
    target = run.target or session.get(Order, run.target_order_id)
    if target is None:
        run.errors.add(ErrorKey.TARGET_ORDER, f"target order {run.target_order_id} is gone")
        return
    problems, run.contents = placing.reserve_if_placeable(session, target, run.contents)
    for problem in problems:
        run.errors.add(ErrorKey.TARGET_ORDER, problem)
    if problems:
        return
    if target.total_amount_cents == 0:
        order_states.place(target, *run.contents, now, authorized=False)
        run.reach(CopyStep.TARGET_PLACED)
        run.orders_changed.append((target.id, topics.ORDER_PLACE))
    else:
        run.reach(CopyStep.STOCK_RESERVED)


def _touch_waiting(session: Session, runs: Sequence[Run], now: datetime) -> None:
    """A payment asked for before and never answered is asked for again: the sweeper
    leaves it be for another window."""
    waiting = [(r.mode, r.request) for r in runs if r.request is not None and r.request.waiting]
    if waiting:
        payments.record_requests(session, waiting, now)


# --- authorize (remote: no transaction open) -----------------------------------------------


def read_requests(session: Session, runs: Sequence[Run], now: datetime) -> None:
    """The payment each run resumed at its reserved stock asks for (read afresh)."""
    for run in runs:
        target = session.get_one(Order, run.target_order_id)
        run.request = payments.request_for(session, target, place_key(run.copy_id))
    _touch_waiting(session, runs, now)


def ask_all(
    gateways: Gateways,
    runs: Sequence[Run],
    *,
    concurrency: int,
    beat: float,
    heartbeat: Callable[[], None],
) -> list[GatewayAnswer | Exception]:
    """Each run's answer, or what its gateway raised: up to ``concurrency`` calls at once
    (remote calls wait on the network, not on this process), each with the caller's
    context (its log fields). ``heartbeat`` renews the runs' leases every ``beat``
    seconds while calls are still out."""

    def ask(run: Run) -> GatewayAnswer | Exception:
        assert run.request is not None
        try:
            return payments.ask(gateways, run.request)
        except Exception as error:  # sorted out by the caller, in order
            return error

    if concurrency <= 1 or len(runs) <= 1:
        answers, renewed = [], time.monotonic()
        for run in runs:
            if time.monotonic() - renewed > beat:
                heartbeat()
                renewed = time.monotonic()
            answers.append(ask(run))
        return answers
    pool = _pool(concurrency)
    calls = [pool.submit(contextvars.copy_context().run, ask, run) for run in runs]
    try:
        while wait(calls, timeout=beat).not_done:
            heartbeat()
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


# --- place ---------------------------------------------------------------------------------


def place(session: Session, runs: Sequence[Run], now: datetime) -> list[PaymentAuthorization]:
    """Record each answer and place each target that is still exactly what its payment
    was asked for, its wallet entry still able to pay (the targets re-read under their
    row locks, in id order); the others stay unplaced, their stock given back and why
    recorded. Returns the holds no order keeps, to void."""
    unkept: list[PaymentAuthorization] = []
    fresh = [r for r in runs if not _request(r).waiting]
    payments.record_answers(session, [(r.mode, _request(r), _answer(r)) for r in fresh], now)
    settled = list(fresh)
    for run in runs:
        if not _request(run).waiting:
            continue
        if payments.settle_request(session, _request(run), _answer(run), now):
            settled.append(run)
        else:
            # The sweeper gave the key up while it was asked again: nothing keeps this
            # answer; the hold it may stand for is voided (again: voids are idempotent).
            given_up = [(ErrorKey.PAYMENT, "the payment was given up as abandoned meanwhile")]
            _not_placed(session, run, given_up)
            unkept += payments.under_key(session, _request(run).idempotency_key)
    rows = {
        row.id: row
        for row in session.execute(
            select(*payments.ASKED_COLUMNS)
            .where(Order.id.in_([_request(r).order_id for r in settled]))
            .order_by(Order.id)
            .with_for_update()
        )
    }
    paying = wallet.problems_paying(session, list(rows.values()), now.date())
    to_place: list[Run] = []
    for run in settled:
        request, answer = _request(run), _answer(run)
        row = rows.get(request.order_id)
        if row is None:
            run.errors.add(ErrorKey.TARGET_ORDER, f"target order {request.order_id} is gone")
            unkept += payments.start_voiding(session, now, key=request.idempotency_key)
            continue
        if not answer.succeeded:
            _not_placed(session, run, [(ErrorKey.PAYMENT, f"payment declined: {answer.message}")])
            continue
        problems = [
            (ErrorKey.TARGET_ORDER, f"changed while its payment was asked for: {change}")
            for change in payments.changes_since(row, request)
        ]
        if row.id in paying:
            problems.append((ErrorKey.PAYMENT_SOURCE, paying[row.id]))
        if problems:
            unkept += payments.start_voiding(session, now, key=request.idempotency_key)
            _not_placed(session, run, problems)
            continue
        to_place.append(run)
    _place_all(session, to_place, now)
    return unkept


def _place_all(session: Session, runs: list[Run], now: datetime) -> None:
    if not runs:
        return
    unread = [r.target_order_id for r in runs if r.contents is None]
    read = targets.load_contents_many(session, unread) if unread else {}  # type: ignore[arg-type]
    shipping = {}
    for run in runs:
        assert run.target_order_id is not None
        contents = run.contents or read.get(run.target_order_id, targets.Contents([], {}))
        shipping[run.target_order_id] = order_states.ships(*contents)
    # Checked under the rows' locks just now: nothing can have moved them since.
    if not order_states.place_many_unloaded(session, shipping, now, authorized=True):
        raise Beaten("place")
    for run, target_id in zip(runs, shipping, strict=True):
        run.reach(CopyStep.TARGET_PLACED)
        run.orders_changed.append((target_id, topics.ORDER_PLACE))


def _not_placed(session: Session, run: Run, problems: list[tuple[ErrorKey, str]]) -> None:
    """The target stays unplaced: its stock given back, the run back at its build,
    ``problems`` recorded."""
    assert run.target_order_id is not None
    stock.release(session, run.target_order_id, run.mode)
    run.reach(CopyStep.TARGET_BUILT)
    for key, message in problems:
        run.errors.add(key, message)


def _request(run: Run) -> payments.PaymentRequest:
    assert run.request is not None
    return run.request


def _answer(run: Run) -> GatewayAnswer:
    assert run.answer is not None
    return run.answer


# --- cancel the source, void its holds -----------------------------------------------------


def cancel(session: Session, runs: Sequence[Run], now: datetime) -> None:
    """Cancel each run's source and give back its stock; its holds are marked for voiding
    (``run.voiding``). A source is cancelled only once its copy has a target, placed when
    it places one, and never while it is the target of another unfinished copy."""
    for run in runs:
        run.errors.clear(*keys_of("cancel"))
        if run.target_order_id is None:  # the customer would be left with no order at all
            run.errors.add(ErrorKey.SOURCE_ORDER, "not cancelled: no target order was built")
            continue
        if run.options.place_target_order and not run.reached(CopyStep.TARGET_PLACED):
            run.errors.add(ErrorKey.SOURCE_ORDER, "not cancelled: the target order was not placed")
            continue
        source = session.get(Order, run.source_order_id, with_for_update=True)
        problems = order_states.problems_cancelling(source) if source else ["source order is gone"]
        other = placing.owner(session, run.source_order_id)
        if other is not None:  # the target of a copy still running: that copy's to decide
            problems = [f"source order {run.source_order_id} belongs to order copy {other}"]
        elif source is not None and not problems:
            problems = transactions.problems_cancelling(session, source)
        if problems or source is None:
            for problem in problems:
                run.errors.add(ErrorKey.SOURCE_ORDER, problem)
            continue
        refund = transactions.refund_on_cancel(session, source, now)
        order_states.cancel(source, now)
        stock.release(session, source.id, run.mode)
        run.reach(CopyStep.SOURCE_CANCELLED)
        run.orders_changed.append((source.id, topics.ORDER_CANCEL))
        run.voiding = [a.id for a in payments.start_voiding(session, now, order_id=source.id)]
        run.refunding = [refund] if refund is not None else []


def being_voided(session: Session, runs: Sequence[Run]) -> dict[str, list[PaymentAuthorization]]:
    """The holds of each run's cancelled source still to void, by copy id; and, for a run
    resumed, the refunds of its source asked for and not answered (``run.refunding``)."""
    for run in runs:
        if run.refunding is None:
            run.refunding = transactions.refunds_asked(session, run.source_order_id)
    return {r.copy_id: payments.being_voided(session, r.source_order_id) for r in runs}


def void(gateways: Gateways, run: Run, held: list[PaymentAuthorization]) -> None:
    """Void the source's holds and make its refunds at their gateways (idempotent; no
    transaction open): the answers are recorded by :func:`record_refunds`."""
    run.voided, problems = payments.void_remote(gateways, held)
    for problem in problems:
        run.errors.add(ErrorKey.SOURCE_ORDER, problem)
    run.refunded = [(asked, transactions.ask(gateways, asked)) for asked in run.refunding or []]


def record_refunds(session: Session, runs: Sequence[Run], now: datetime) -> None:
    """Record the answers to the cancelled sources' refunds, each under its order's row
    lock; a decline is an error of the copy (the source stays cancelled). Does not commit."""
    for run in runs:
        for asked, answer in run.refunded:
            source = session.get(Order, asked.order_id, with_for_update=True)
            if source is None:  # deleted meanwhile, its payment rows with it
                continue
            recorded = transactions.settle(session, source, asked, answer, now)
            if not recorded.succeeded:
                run.errors.add(
                    ErrorKey.SOURCE_ORDER,
                    f"source order {source.id} is cancelled, but its refund was declined:"
                    f" {recorded.message}",
                )
