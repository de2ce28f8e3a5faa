"""The pipeline: copies run together end as each would alone, in fewer statements; trouble
stays with the copies it touches."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import structlog.testing
from sqlalchemy import event, select, update
from sqlalchemy.exc import OperationalError

from copying.copies import copy_states, lifecycle
from copying.orders import placing
from copying.orders.gateways import GatewayUnavailableError, TestGateway
from copying.runs import Outcome, Ran, RunConfig, claim, execute, stages
from copying.testing import failpoints
from models import (
    CopyStatus,
    CopyStep,
    Mode,
    Order,
    OrderCopy,
    OrderStatus,
    OrderSubscription,
    PaymentStatus,
    Sku,
    SubscriptionStatus,
    db,
    new_public_id,
)
from tests.copying.clock import FixedClock
from tests.copying.gateways import Meddling, SlowGateway
from tests.copying.statements import counting_statements
from tests.factories import (
    Line,
    Shop,
    authorizations,
    copy_events,
    create_copy,
    make_customer,
    make_order,
    make_shop,
    make_sku,
    make_subscription,
    make_wallet_entry,
    order_lines,
)
from tests.invariants import violations
from tests.runs import execute_one

LEASE = RunConfig().lease
PLACING = {"place_target_order": True, "reuse_wallet": True}


def _shops(sessions, n: int, **world: Any) -> list[Shop]:
    with sessions.begin() as s:
        return [make_shop(s, **world) for _ in range(n)]


def _copies(sessions, clock, shops: list[Shop], **options: Any) -> list[str]:
    return [create_copy(sessions, shop.source.id, now=clock.now, **options).id for shop in shops]


def _claim(sessions, copy_ids: list[str], config, clock) -> None:
    runs = claim(sessions, copy_ids, config=config, clock=clock)
    assert [r.copy_id for r in runs] == copy_ids


@contextmanager
def listening(target: Any, name: str, listener: Any) -> Iterator[None]:
    event.listen(target, name, listener)
    try:
        yield
    finally:
        event.remove(target, name, listener)


def _run(sessions, copy_ids, gateways, config, clock) -> Ran:
    return execute(sessions, copy_ids, gateways=gateways, config=config, clock=clock)


def _result(sessions, copy_id: str, shop: Shop) -> dict[str, Any]:
    """What a copy left, with the ids that differ between equivalent worlds taken out."""
    with sessions.begin() as s:
        copy = s.get_one(OrderCopy, copy_id)
        target = s.get(Order, copy.target_order_id) if copy.target_order_id else None
        names = {shop.sku.code: "<sku>", shop.entry.id: "<entry>"}
        if target is not None:
            names[target.id] = "<target>"

        def anonymous(text: str) -> str:
            for real, name in names.items():
                text = text.replace(real, name)
            return text

        return {
            "copy": (
                copy.status,
                copy.step,
                {k: [anonymous(m) for m in v] for k, v in copy.errors_log.items()},
                copy.errors_count,
            ),
            "target": target
            and (
                target.status,
                target.payment_status,
                target.fulfillment_status,
                target.subtotal_amount_cents,
                target.total_amount_cents,
            ),
            "lines": target
            and [
                (line.item_type, line.quantity, line.unit_amount_cents, line.total_amount_cents)
                for line in order_lines(s, target.id)
            ],
            "authorizations": target
            and sorted((a.status, a.amount_cents) for a in authorizations(s, target.id)),
            "events": [(e.kind, e.attempt, e.data.get("step")) for e in copy_events(s, copy_id)],
        }


def _violations(sessions, copy_ids, shops: list[Shop], stock: int) -> list[str]:
    with sessions.begin() as s:
        return violations(s, copy_ids, {shop.sku.code: stock for shop in shops})


# --- claiming ahead ----------------------------------------------------------------------


def test_claim_ahead_takes_the_named_copy_then_the_oldest_due_pending_ones(
    sessions, gateways, config, clock
):
    shops = _shops(sessions, 9)
    at = [clock.now + timedelta(seconds=n) for n in range(9)]
    ids = [
        create_copy(sessions, shop.source.id, now=t).id for shop, t in zip(shops, at, strict=True)
    ]
    not_due, aborted, completed, running, oldest, older, newer, solo, own = ids
    clock.advance(60)
    with sessions.begin() as s:
        s.execute(
            update(OrderCopy)
            .where(OrderCopy.id == not_due)
            .values(next_attempt_at=clock.now + timedelta(minutes=5))
        )
        lifecycle.abort(s, aborted, Mode.TEST, by="test")
    assert execute_one(sessions, completed, gateways=gateways, clock=clock) == Outcome.COMPLETED
    _claim(sessions, [running], config, clock)  # its lease is live

    assert [r.copy_id for r in claim(sessions, [solo], config=config, clock=clock)] == [solo]
    runs = claim(sessions, [own], config=config, clock=clock, ahead=2)

    assert [r.copy_id for r in runs] == [own, oldest, older]
    with sessions.begin() as s:
        status = dict(s.execute(select(OrderCopy.id, OrderCopy.status)).all())
        last = {i: copy_events(s, i)[-1].kind for i in (own, oldest, older)}
    assert status[newer] == status[not_due] == CopyStatus.PENDING
    assert (status[aborted], status[completed]) == (CopyStatus.ABORTED, CopyStatus.COMPLETED)
    assert last == dict.fromkeys((own, oldest, older), "claimed")


def test_claim_ahead_counts_only_other_copies_when_the_named_one_is_the_oldest(
    sessions, config, clock
):
    shops = _shops(sessions, 3)
    own, first, second = (
        create_copy(sessions, shop.source.id, now=clock.now + timedelta(seconds=n)).id
        for n, shop in enumerate(shops)
    )

    runs = claim(sessions, [own], config=config, clock=clock, ahead=2)

    assert [r.copy_id for r in runs] == [own, first, second]


def test_claim_ahead_skips_pending_copies_another_transaction_holds(committed, config, clock):
    shops = _shops(committed, 3)
    own, held, free = (
        create_copy(committed, shop.source.id, now=clock.now + timedelta(seconds=n)).id
        for n, shop in zip((2, 0, 1), shops, strict=True)
    )
    with db.engine().connect() as other:
        other.execute(select(OrderCopy.id).where(OrderCopy.id == held).with_for_update())

        runs = claim(committed, [own], config=config, clock=clock, ahead=5)

        other.rollback()
    assert [r.copy_id for r in runs] == [own, free]
    with committed.begin() as s:
        assert s.get_one(OrderCopy, held).status == CopyStatus.PENDING


# --- the common path ---------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("place", [True, False])
def test_a_chunk_ends_each_copy_as_it_would_end_alone(
    sessions, gateways, config, place, concurrency
):
    """Also with the gateway calls made several at once (from threads)."""
    config = replace(config, gateway_concurrency=concurrency)
    options = {"place_target_order": place, "reuse_wallet": True}
    clock = FixedClock()
    chunked, single = _shops(sessions, 3), _shops(sessions, 3)
    chunk_ids = _copies(sessions, clock, chunked, **options)
    single_ids = _copies(sessions, clock, single, **options)

    ran = _run(sessions, chunk_ids, gateways, config, clock)
    for copy_id in single_ids:
        assert execute_one(sessions, copy_id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    assert (ran.outcome, ran.transient) == (dict.fromkeys(chunk_ids, Outcome.COMPLETED), {})
    together = [_result(sessions, i, shop) for i, shop in zip(chunk_ids, chunked, strict=True)]
    alone = [_result(sessions, i, shop) for i, shop in zip(single_ids, single, strict=True)]
    assert together == alone
    assert together[0]["copy"][0] == CopyStatus.COMPLETED
    assert together[0]["target"][0] == (OrderStatus.PLACED if place else OrderStatus.PENDING)
    assert _violations(sessions, chunk_ids + single_ids, chunked + single, stock=10) == []


def test_a_chunk_charges_each_target_to_its_own_wallet_entry_or_none(sessions, gateways, config):
    """Copies reusing the wallet and copies not, in one chunk (one not first): each target
    gets the payment source it would get alone (the chunk inserts its targets together)."""
    clock = FixedClock()
    plain, paid = _shops(sessions, 2)
    ids = [
        create_copy(sessions, plain.source.id, now=clock.now, reuse_wallet=False).id,
        create_copy(sessions, paid.source.id, now=clock.now, reuse_wallet=True).id,
    ]
    ran = _run(sessions, ids, gateways, config, clock)
    assert ran.outcome == dict.fromkeys(ids, Outcome.COMPLETED)
    with sessions.begin() as s:
        charged = [
            s.execute(
                select(
                    Order.customer_payment_source_id,
                    Order.payment_method,
                    Order.payment_gateway,
                    Order.payment_source_token,
                ).where(Order.id == s.get_one(OrderCopy, copy_id).target_order_id)
            ).one()
            for copy_id in ids
        ]
    entry = paid.entry
    assert charged == [
        (None, None, None, None),
        (entry.id, entry.payment_method, entry.gateway, entry.payment_source_token),
    ]
    assert entry.payment_source_token is not None


def test_a_chunk_logs_its_claims_and_completions_once_naming_its_copies(sessions, gateways, config):
    """One info line per stage for the chunk, with every copy's id to grep for; the
    per-copy lines are at debug."""
    clock = FixedClock()
    ids = _copies(sessions, clock, _shops(sessions, 3), **PLACING)
    with structlog.testing.capture_logs() as logged:
        ran = _run(sessions, ids, gateways, config, clock)
    assert ran.outcome == dict.fromkeys(ids, Outcome.COMPLETED)
    by_event: dict[str, list[dict[str, Any]]] = {}
    for line in logged:
        by_event.setdefault(line["event"], []).append(line)
    for what in ("claimed", "completed"):
        (line,) = by_event[f"chunk_{what}"]
        assert (line["log_level"], line["copies"], line["order_copy_ids"]) == ("info", 3, ids)
        each = by_event[f"copy_{what}"]
        assert [(e["log_level"], e["order_copy_id"]) for e in each] == [("debug", i) for i in ids]
    (checkpoint,) = by_event["chunk_checkpoint"]  # placing: reserved, then placed and ended
    assert (checkpoint["step"], checkpoint["order_copy_ids"]) == ("stock_reserved", ids)


def test_a_copy_alone_is_a_chunk_of_one_in_the_logs(sessions, gateways, config):
    clock = FixedClock()
    [copy_id] = _copies(sessions, clock, _shops(sessions, 1), **PLACING)
    with structlog.testing.capture_logs() as logged:
        assert _run(sessions, [copy_id], gateways, config, clock).outcome == {
            copy_id: Outcome.COMPLETED
        }
    lines = [(e["event"], e["log_level"], e.get("copies")) for e in logged]
    assert [line for line in lines if line[1] == "info"] == [
        ("chunk_claimed", "info", 1),
        ("chunk_checkpoint", "info", 1),
        ("chunk_completed", "info", 1),
    ]


def test_statements_of_a_chunk_grow_only_by_each_copys_gateway_call(sessions, gateways, config):
    clock = FixedClock()
    with counting_statements() as one_call:
        TestGateway(db.engine).authorize(
            idempotency_key=f"test_pipeline:{new_public_id()}",
            order_id="order00001",
            token="tok_visa",
            amount_cents=100,
            currency_code="USD",
        )
    per_call = len(one_call)

    def statements(n: int) -> list[str]:
        ids = _copies(sessions, clock, _shops(sessions, n), **PLACING)
        with counting_statements() as sent:
            ran = _run(sessions, ids, gateways, config, clock)
        assert ran.outcome == dict.fromkeys(ids, Outcome.COMPLETED)
        return sent

    one, two, ten = statements(1), statements(2), statements(10)

    assert per_call >= 1
    assert len(two) - len(one) == per_call, "\n".join(two)
    assert len(ten) - len(two) == 8 * per_call, "\n".join(ten)


def test_copies_not_placing_their_target_complete_in_the_first_transaction(sessions, config, clock):
    shops = _shops(sessions, 3)
    ids = _copies(sessions, clock, shops, place_target_order=False)

    with counting_statements() as sent:
        ran = _run(sessions, ids, {}, config, clock)

    assert ran.outcome == dict.fromkeys(ids, Outcome.COMPLETED)
    assert sum(s.startswith("SAVEPOINT") for s in sent) == 2  # the claim, one unit of work
    with sessions.begin() as s:
        for copy_id in ids:
            copy = s.get_one(OrderCopy, copy_id)
            assert (copy.status, copy.step) == (CopyStatus.COMPLETED, CopyStep.TARGET_BUILT)
            assert s.get_one(Order, copy.target_order_id).status == OrderStatus.PENDING
    assert _violations(sessions, ids, shops, stock=10) == []


# --- copies leaving the common path ------------------------------------------------------


def _declined(s) -> tuple[Shop, dict[str, Any]]:
    return make_shop(s, token="tok_declined"), PLACING


def _out_of_stock(s) -> tuple[Shop, dict[str, Any]]:
    return make_shop(s, quantity=3, stock=1), PLACING


def _wallet_disabled(s) -> tuple[Shop, dict[str, Any]]:
    shop = make_shop(s)
    shop.entry.disabled = True
    return shop, PLACING


def _no_payment_source(s) -> tuple[Shop, dict[str, Any]]:
    return make_shop(s), {"place_target_order": True, "reuse_wallet": False}


def _free(s) -> tuple[Shop, dict[str, Any]]:
    return make_shop(s, price=0), PLACING


@pytest.mark.parametrize("concurrency", [1, 3])
@pytest.mark.parametrize(
    "world",
    [_declined, _out_of_stock, _wallet_disabled, _no_payment_source, _free, "resumed"],
)
def test_a_copy_leaving_the_common_path_ends_in_its_chunk_as_it_would_alone(
    sessions, gateways, config, world, concurrency
):
    config = replace(config, gateway_concurrency=concurrency)
    clock = FixedClock()
    goods = _shops(sessions, 2)
    good_ids = _copies(sessions, clock, goods, **PLACING)
    if world == "resumed":  # a crashed run left it at a checkpoint; its lease ran out
        odd_shop, single_shop = _shops(sessions, 2)
        odd, single = _copies(sessions, clock, [odd_shop, single_shop], **PLACING)
        for copy_id in (odd, single):
            with failpoints.enabled("after_build"):
                crashed = execute_one(sessions, copy_id, gateways=gateways, clock=clock)
            assert crashed == Outcome.CRASHED
        clock.advance(LEASE.total_seconds())
    else:
        with sessions.begin() as s:
            (odd_shop, options), (single_shop, _) = world(s), world(s)
        odd, single = _copies(sessions, clock, [odd_shop, single_shop], **options)
    ids = [good_ids[0], odd, good_ids[1]]

    ran = _run(sessions, ids, gateways, config, clock)

    expected = execute_one(sessions, single, gateways=gateways, clock=clock)
    assert ran.outcome == {**dict.fromkeys(good_ids, Outcome.COMPLETED), odd: expected}
    assert _result(sessions, odd, odd_shop) == _result(sessions, single, single_shop)
    with sessions.begin() as s:
        assert all(
            s.get_one(Sku, shop.sku.id).stock_quantity >= 0
            for shop in [odd_shop, single_shop, *goods]
        )
        stock = {shop.sku.code: s.get_one(Sku, shop.sku.id).stock_quantity for shop in goods}
    assert stock == dict.fromkeys(stock, 8)


def test_of_two_copies_wanting_the_last_units_the_first_claimed_completes(
    sessions, gateways, config, clock
):
    with sessions.begin() as s:
        sku = make_sku(s, stock=3)
        sources = []
        for _ in range(2):
            customer = make_customer(s)
            entry = make_wallet_entry(s, customer)
            sources.append(make_order(s, [Line(sku, 2)], customer=customer, wallet_entry=entry))
    first, second = (create_copy(sessions, o.id, **PLACING).id for o in sources)

    ran = _run(sessions, [first, second], gateways, config, clock)

    assert ran.outcome == {first: Outcome.COMPLETED, second: Outcome.FAILED}
    with sessions.begin() as s:
        copy = s.get_one(OrderCopy, second)
        assert copy.errors_log == {
            "line_items": [f"SKU {sku.code} is out of stock (2 requested, 1 left)"]
        }
        assert s.get_one(Sku, sku.id).stock_quantity == 1
        assert violations(s, [first, second], {sku.code: 3}) == []


def test_stock_taken_meanwhile_reruns_the_stage_for_each_copy_on_its_own(
    committed, gateways, config
):
    """Another transaction takes a SKU's last units between the chunk's read and its
    reservation: the chunk's build rolls back and runs again for each copy, where the
    copy short of stock records it and the other completes."""
    clock = FixedClock()
    shops = _shops(committed, 2)
    ids = _copies(committed, clock, shops, **PLACING)
    drained = shops[0].sku.id

    def take_it(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith("INSERT INTO line_items") and not taken:
            taken.append(statement)
            with db.engine().begin() as other:
                other.execute(update(Sku).where(Sku.id == drained).values(stock_quantity=0))

    taken: list[str] = []
    with (
        listening(db.engine(), "before_cursor_execute", take_it),
        structlog.testing.capture_logs() as logged,
    ):
        ran = _run(committed, ids, gateways, config, clock)

    assert taken
    assert ran.outcome == {ids[0]: Outcome.FAILED, ids[1]: Outcome.COMPLETED}
    assert [e["stage"] for e in logged if e["event"] == "chunk_beaten"] == ["stock"]
    with committed.begin() as s:
        copy = s.get_one(OrderCopy, ids[0])
        assert copy.errors_log == {
            "line_items": [f"SKU {shops[0].sku.code} is out of stock (2 requested, 0 left)"]
        }
        assert s.get_one(Sku, drained).stock_quantity == 0
        assert s.get_one(Sku, shops[1].sku.id).stock_quantity == 8


def test_copies_cancelling_their_source_complete_in_their_chunk(sessions, gateways, config, clock):
    shops = _shops(sessions, 2)
    for shop in shops:
        assert placing.place_order(sessions, shop.source.id, Mode.TEST, gateways=gateways) == []
    ids = _copies(sessions, clock, shops, cancel_source_order=True, **PLACING)

    ran = _run(sessions, ids, gateways, config, clock)

    assert ran.outcome == dict.fromkeys(ids, Outcome.COMPLETED)
    with sessions.begin() as s:
        for copy_id in ids:
            copy = s.get_one(OrderCopy, copy_id)
            assert copy.step == CopyStep.SOURCE_CANCELLED
            assert s.get_one(Order, copy.target_order_id).status == OrderStatus.PLACED
        for shop in shops:
            source = s.get_one(Order, shop.source.id)
            assert (source.status, source.payment_status) == (
                OrderStatus.CANCELLED,
                PaymentStatus.VOIDED,
            )
    assert _violations(sessions, ids, shops, stock=10) == []


def test_a_copy_whose_lease_was_taken_over_ends_lease_lost(sessions, gateways, config, clock):
    shops = _shops(sessions, 3)
    ids = _copies(sessions, clock, shops, **PLACING)
    taken = ids[1]

    def take_over() -> None:
        with sessions.begin() as s:
            s.execute(
                update(OrderCopy)
                .where(OrderCopy.id == taken)
                .values(lease_expires_at=clock.now - timedelta(seconds=1))
            )
            taken_over.append(copy_states.claim(s, taken, clock.now, LEASE, config.max_claims))

    taken_over: list[Any] = []
    meddling = {"test": Meddling(gateways, take_over)}
    ran = _run(sessions, ids, meddling, config, clock)

    assert ran.outcome == {
        ids[0]: Outcome.COMPLETED,
        taken: Outcome.LEASE_LOST,
        ids[2]: Outcome.COMPLETED,
    }
    with sessions.begin() as s:
        row = s.get_one(OrderCopy, taken)
        assert (row.status, row.attempt, row.step) == (
            CopyStatus.IN_PROGRESS,
            2,
            CopyStep.STOCK_RESERVED,
        )
    clock.advance(LEASE.total_seconds())  # the newer run died too: the next one finishes
    assert execute_one(sessions, taken, gateways=gateways, clock=clock) == Outcome.COMPLETED
    assert _violations(sessions, ids, shops, stock=10) == []


def test_transient_gateway_trouble_parks_only_that_copy(sessions, gateways, config, clock):
    with sessions.begin() as s:
        good, flaky, other = make_shop(s), make_shop(s, token="tok_flaky"), make_shop(s)
    ids = _copies(sessions, clock, [good, flaky, other], **PLACING)

    ran = _run(sessions, ids, gateways, config, clock)

    assert ran.outcome == {ids[0]: Outcome.COMPLETED, ids[2]: Outcome.COMPLETED}
    assert list(ran.transient) == [ids[1]]
    with sessions.begin() as s:
        row = s.get_one(OrderCopy, ids[1])
        kinds = [e.kind for e in copy_events(s, ids[1])]
    assert (row.status, row.step, row.lease_expires_at) == (
        CopyStatus.IN_PROGRESS,
        CopyStep.STOCK_RESERVED,
        clock.now,
    )
    assert kinds[-1] == "transient_error"


def test_renewals_completed_in_a_chunk_count_once_each(sessions, gateways, config, clock):
    shops = _shops(sessions, 2)
    with sessions.begin() as s:
        twice, once = (
            make_subscription(
                s, shop.source, starts_at=clock.now, status=SubscriptionStatus.RUNNING
            ).id
            for shop in shops
        )
    renewing = {twice: shops[0], once: shops[1]}
    ids = [
        create_copy(sessions, renewing[sub].source.id, order_subscription_id=sub, **PLACING).id
        for sub in (twice, once, twice)
    ]
    clock.advance(60)

    ran = _run(sessions, ids, gateways, config, clock)

    assert ran.outcome == dict.fromkeys(ids, Outcome.COMPLETED)
    with sessions.begin() as s:
        subscriptions = {i: s.get_one(OrderSubscription, i) for i in (twice, once)}
        seen = {
            i: (sub.status, sub.occurrencies, sub.last_run_at, sub.succeeded_on_last_run)
            for i, sub in subscriptions.items()
        }
        assert violations(s, ids, {shop.sku.code: 10 for shop in shops}) == []
    assert seen == {
        twice: (SubscriptionStatus.ACTIVE, 2, clock.now, True),
        once: (SubscriptionStatus.ACTIVE, 1, clock.now, True),
    }


def test_on_sqlite_a_chunk_runs_through_the_same_stages(sqlite, config, clock):
    sessions, gateways = sqlite
    shops = _shops(sessions, 3)
    with sessions.begin() as s:
        declined = make_shop(s, token="tok_declined")
    ids = _copies(sessions, clock, [*shops, declined], **PLACING)

    ran = _run(sessions, ids, gateways, config, clock)

    assert ran.outcome == {**dict.fromkeys(ids[:3], Outcome.COMPLETED), ids[3]: Outcome.FAILED}
    with sessions.begin() as s:
        assert [e.kind for e in copy_events(s, ids[0])] == [
            "created",
            "claimed",
            "checkpoint",
            "checkpoint",
            "completed",
        ]
        assert s.get_one(OrderCopy, ids[3]).errors_log["payment"][0].startswith("payment declined")
        assert violations(s, ids, {shop.sku.code: 10 for shop in [*shops, declined]}) == []


# --- trouble stays with the copies it touches ---------------------------------------------


def test_a_database_error_hands_the_chunk_back_with_its_leases_given_up(sessions, gateways, config):
    clock = FixedClock()
    ids = _copies(sessions, clock, _shops(sessions, 3), **PLACING)

    with failpoints.enabled("after_build", "dberror"):
        ran = _run(sessions, ids, gateways, config, clock)

    assert (set(ran.transient), ran.outcome) == (set(ids), {})
    with sessions.begin() as s:
        for copy_id in ids:
            copy = s.get_one(OrderCopy, copy_id, populate_existing=True)
            assert (copy.status, copy.step) == (CopyStatus.IN_PROGRESS, CopyStep.STOCK_RESERVED)
            assert copy.lease_expires_at == clock.now  # given up: claimable at once
            assert copy_events(s, copy_id)[-1].kind == "transient_error"
    assert [r.copy_id for r in claim(sessions, ids, config=config, clock=clock)] == ids


def test_a_bug_leaves_the_chunk_crashed_with_its_leases_kept(sessions, gateways, config):
    clock = FixedClock()
    ids = _copies(sessions, clock, _shops(sessions, 2), **PLACING)

    with failpoints.enabled("after_build", "raise"):
        ran = _run(sessions, ids, gateways, config, clock)

    assert (ran.outcome, ran.transient) == (dict.fromkeys(ids, Outcome.CRASHED), {})
    assert claim(sessions, ids, config=config, clock=clock) == []  # leases held
    clock.advance(LEASE.total_seconds())
    assert len(claim(sessions, ids, config=config, clock=clock)) == 2  # the sweeper's


def test_a_bug_in_a_stage_crashes_only_the_copy_that_meets_it(
    sessions, gateways, config, monkeypatch
):
    """The stage is rolled back and run again for each copy on its own: the others go on."""
    clock = FixedClock()
    shops = _shops(sessions, 3)
    for shop in shops:
        assert placing.place_order(sessions, shop.source.id, Mode.TEST, gateways=gateways) == []
    ids = _copies(sessions, clock, shops, cancel_source_order=True)
    broken = ids[1]
    cancel = stages.cancel

    def buggy(session, runs, now):
        if any(r.copy_id == broken for r in runs):
            raise RuntimeError("a bug")
        return cancel(session, runs, now)

    monkeypatch.setattr(stages, "cancel", buggy)
    ran = _run(sessions, ids, gateways, config, clock)

    assert ran.outcome == {
        ids[0]: Outcome.COMPLETED,
        broken: Outcome.CRASHED,
        ids[2]: Outcome.COMPLETED,
    }
    with sessions.begin() as s:
        row = s.get_one(OrderCopy, broken)
        assert (row.status, row.step) == (CopyStatus.IN_PROGRESS, CopyStep.TARGET_BUILT)


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_chunk_keeps_its_leases_while_slow_gateways_answer(committed, gateways, concurrency):
    """Gateway calls outlasting a lease: the chunk renews its copies' leases meanwhile, so
    a claimer trying all along (a sweeper's doorbell) never takes one over."""
    config = RunConfig(lease=timedelta(seconds=1.5), gateway_concurrency=concurrency)
    with committed.begin() as s:
        shops = [make_shop(s) for _ in range(4)]
    ids = [create_copy(committed, shop.source.id, **PLACING).id for shop in shops]
    taken: list[str] = []
    done = threading.Event()

    def claimer() -> None:
        while not done.wait(0.2):
            taken.extend(r.copy_id for r in claim(committed, ids, config=config))

    thread = threading.Thread(target=claimer)
    thread.start()
    try:
        ran = execute(
            committed, ids, gateways={"test": SlowGateway(gateways["test"], 1.0)}, config=config
        )
    finally:
        done.set()
        thread.join()
    assert taken == []
    assert ran.outcome == dict.fromkeys(ids, Outcome.COMPLETED)


class VoidFails:
    """The test gateway, whose voids of one order's holds time out."""

    name = "test"

    def __init__(self, gateway: TestGateway, failing_keys: set[str]) -> None:
        self.gateway, self.failing_keys = gateway, failing_keys

    def authorize(self, **request: Any) -> Any:
        return self.gateway.authorize(**request)

    def void(self, *, idempotency_key: str, **request: Any) -> None:
        if idempotency_key in self.failing_keys:
            raise GatewayUnavailableError("test gateway: void timed out")
        self.gateway.void(idempotency_key=idempotency_key, **request)


def test_a_void_that_times_out_parks_only_its_copy(sessions, gateways, config, clock):
    shops = _shops(sessions, 2)
    for shop in shops:
        assert placing.place_order(sessions, shop.source.id, Mode.TEST, gateways=gateways) == []
    with sessions.begin() as s:
        failing = {a.idempotency_key for a in authorizations(s, shops[0].source.id)}
    ids = _copies(sessions, clock, shops, cancel_source_order=True, **PLACING)

    ran = _run(sessions, ids, {"test": VoidFails(gateways["test"], failing)}, config, clock)

    assert ran.outcome == {ids[1]: Outcome.COMPLETED}
    assert list(ran.transient) == [ids[0]]
    with sessions.begin() as s:
        row = s.get_one(OrderCopy, ids[0])
        assert (row.status, row.step) == (CopyStatus.IN_PROGRESS, CopyStep.SOURCE_CANCELLED)
        assert copy_events(s, ids[0])[-1].kind == "transient_error"
    clock.advance(1)  # its lease given up: the next run voids and completes it
    assert execute_one(sessions, ids[0], gateways=gateways, clock=clock) == Outcome.COMPLETED
    assert _violations(sessions, ids, shops, stock=10) == []


def test_a_deadlock_reruns_the_stage_for_each_copy_on_its_own(
    sessions, gateways, config, monkeypatch
):
    clock = FixedClock()
    shops = _shops(sessions, 3)
    for shop in shops:
        assert placing.place_order(sessions, shop.source.id, Mode.TEST, gateways=gateways) == []
    ids = _copies(sessions, clock, shops, cancel_source_order=True, **PLACING)
    cancel, calls = stages.cancel, []

    def deadlocked(session, runs, now):
        calls.append(len(runs))
        if len(runs) > 1:
            raise OperationalError("UPDATE skus …", None, Deadlock())
        return cancel(session, runs, now)

    monkeypatch.setattr(stages, "cancel", deadlocked)
    with structlog.testing.capture_logs() as logged:
        ran = _run(sessions, ids, gateways, config, clock)

    assert ran.outcome == dict.fromkeys(ids, Outcome.COMPLETED)
    assert calls == [3, 1, 1, 1]
    assert [e["stage"] for e in logged if e["event"] == "chunk_beaten"] == ["conflict"]
    assert _violations(sessions, ids, shops, stock=10) == []


class Deadlock(Exception):
    sqlstate = "40P01"


class TimeLimit(Exception):
    """What a task's time limit raises in the middle of a run."""


def test_what_the_caller_asks_to_see_is_raised_not_taken_for_a_bug(
    sessions, gateways, config, monkeypatch
):
    clock = FixedClock()
    ids = _copies(sessions, clock, _shops(sessions, 2), **PLACING)

    def out_of_time(session, runs, now):
        raise TimeLimit

    monkeypatch.setattr(stages, "place", out_of_time)
    with pytest.raises(TimeLimit):
        _run(sessions, ids, gateways, replace(config, reraise=(TimeLimit,)), clock)
    with sessions.begin() as s:  # left at their checkpoints, their leases kept
        steps = {s.get_one(OrderCopy, i).step for i in ids}
    assert steps == {CopyStep.STOCK_RESERVED}
    assert claim(sessions, ids, config=config, clock=clock) == []
