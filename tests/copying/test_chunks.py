"""Chunks: claimed copies run together end as each would alone, in fewer statements."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import structlog.testing
from sqlalchemy import select, update

from copying import chunks, copy_states, engine, failpoints, orders
from copying.engine import EngineConfig, Outcome, Run
from copying.gateways import TestGateway
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
    utcnow,
)
from tests.copying.clock import FixedClock
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

LEASE = EngineConfig().lease
PLACING = {"place_target_order": True, "reuse_wallet": True}


def _shops(sessions, n: int, **world: Any) -> list[Shop]:
    with sessions.begin() as s:
        return [make_shop(s, **world) for _ in range(n)]


def _copies(sessions, clock, shops: list[Shop], **options: Any) -> list[str]:
    return [create_copy(sessions, shop.source.id, now=clock.now, **options).id for shop in shops]


def _claim(sessions, copy_ids: list[str], config, clock) -> list[Run]:
    runs = engine.claim(sessions, copy_ids, config=config, clock=clock)
    assert [r.copy_id for r in runs] == copy_ids
    return runs


def _chunk(sessions, copy_ids, gateways, config, clock) -> chunks.Chunk:
    runs = _claim(sessions, copy_ids, config, clock)
    return chunks.run_chunk(sessions, runs, gateways=gateways, config=config, clock=clock)


def _alone(sessions, chunk, gateways, config, clock) -> dict[str, Outcome]:
    """Run the chunk's copies left to go on alone, as the worker does."""
    return {
        run.copy_id: engine.run_claimed(
            sessions,
            run,
            gateways=gateways,
            config=config,
            clock=clock,
            just_claimed=not chunk.started,
        )
        for run in chunk.alone
    }


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
        engine.abort(s, aborted, Mode.TEST, by="test")
    assert engine.execute(sessions, completed, gateways=gateways, clock=clock) == Outcome.COMPLETED
    assert _claim(sessions, [running], config, clock)  # its lease is live

    assert [r.copy_id for r in engine.claim(sessions, [solo], config=config, clock=clock)] == [solo]
    runs = engine.claim(sessions, [own], config=config, clock=clock, ahead=2)

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

    runs = engine.claim(sessions, [own], config=config, clock=clock, ahead=2)

    assert [r.copy_id for r in runs] == [own, first, second]


def test_claim_ahead_skips_pending_copies_another_transaction_holds(committed, config, clock):
    shops = _shops(committed, 3)
    own, held, free = (
        create_copy(committed, shop.source.id, now=clock.now + timedelta(seconds=n)).id
        for n, shop in zip((2, 0, 1), shops, strict=True)
    )
    with db.engine().connect() as other:
        other.execute(select(OrderCopy.id).where(OrderCopy.id == held).with_for_update())

        runs = engine.claim(committed, [own], config=config, clock=clock, ahead=5)

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

    chunk = _chunk(sessions, chunk_ids, gateways, config, clock)
    for copy_id in single_ids:
        assert engine.execute(sessions, copy_id, gateways=gateways, clock=clock) == (
            Outcome.COMPLETED
        )

    assert chunk.ended == dict.fromkeys(chunk_ids, Outcome.COMPLETED)
    assert (chunk.alone, chunk.parked, chunk.crashed) == ([], {}, [])
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
    chunk = _chunk(sessions, ids, gateways, config, clock)
    assert chunk.ended == dict.fromkeys(ids, Outcome.COMPLETED)
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
        chunk = _chunk(sessions, ids, gateways, config, clock)
    assert chunk.ended == dict.fromkeys(ids, Outcome.COMPLETED)
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


def test_statements_of_a_chunk_grow_only_by_each_copys_gateway_call(sessions, gateways, config):
    clock = FixedClock()
    with counting_statements() as one_call:
        TestGateway(db.engine).authorize(
            idempotency_key=f"test_chunks:{new_public_id()}",
            token="tok_visa",
            amount_cents=100,
            currency_code="USD",
        )
    per_call = len(one_call)

    def statements(n: int) -> list[str]:
        ids = _copies(sessions, clock, _shops(sessions, n), **PLACING)
        runs = _claim(sessions, ids, config, clock)
        with counting_statements() as sent:
            chunk = chunks.run_chunk(sessions, runs, gateways=gateways, config=config, clock=clock)
        assert chunk.ended == dict.fromkeys(ids, Outcome.COMPLETED)
        return sent

    two, ten = statements(2), statements(10)

    assert per_call >= 1
    assert len(ten) - len(two) == 8 * per_call, "\n".join(ten)


def test_copies_not_placing_their_target_complete_in_the_first_transaction(sessions, config, clock):
    shops = _shops(sessions, 3)
    ids = _copies(sessions, clock, shops, place_target_order=False)
    runs = _claim(sessions, ids, config, clock)

    with counting_statements() as sent:
        chunk = chunks.run_chunk(sessions, runs, gateways={}, config=config, clock=clock)

    assert chunk.ended == dict.fromkeys(ids, Outcome.COMPLETED)
    assert sum(s.startswith("SAVEPOINT") for s in sent) == 1  # one unit of work
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


@pytest.mark.parametrize("concurrency", [1, 3])
@pytest.mark.parametrize(
    "world", [_declined, _out_of_stock, _wallet_disabled, _no_payment_source, "resumed"]
)
def test_a_copy_leaving_the_path_ends_alone_as_it_would_have_alone(
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
            with failpoints.enabled("after_build"), pytest.raises(failpoints.FailpointError):
                engine.execute(sessions, copy_id, gateways=gateways, clock=clock)
        clock.advance(LEASE.total_seconds())
    else:
        with sessions.begin() as s:
            (odd_shop, options), (single_shop, _) = world(s), world(s)
        odd, single = _copies(sessions, clock, [odd_shop, single_shop], **options)
    ids = [good_ids[0], odd, good_ids[1]]

    chunk = _chunk(sessions, ids, gateways, config, clock)

    assert chunk.ended == dict.fromkeys(good_ids, Outcome.COMPLETED)
    assert [r.copy_id for r in chunk.alone] == [odd]
    alone = _alone(sessions, chunk, gateways, config, clock)
    expected = engine.execute(sessions, single, gateways=gateways, clock=clock)
    assert alone == {odd: expected}
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

    chunk = _chunk(sessions, [first, second], gateways, config, clock)

    assert chunk.ended == {first: Outcome.COMPLETED}
    assert [r.copy_id for r in chunk.alone] == [second]
    assert _alone(sessions, chunk, gateways, config, clock) == {second: Outcome.FAILED}
    with sessions.begin() as s:
        copy = s.get_one(OrderCopy, second)
        assert copy.errors_log == {
            "line_items": [f"SKU {sku.code} is out of stock (2 requested, 1 left)"]
        }
        assert s.get_one(Sku, sku.id).stock_quantity == 1
        assert violations(s, [first, second], {sku.code: 3}) == []


def test_copies_cancelling_their_source_go_on_alone_once_placed(sessions, gateways, config, clock):
    shops = _shops(sessions, 2)
    for shop in shops:
        assert orders.place_order(sessions, shop.source.id, Mode.TEST, gateways=gateways) == []
    ids = _copies(sessions, clock, shops, cancel_source_order=True, **PLACING)

    chunk = _chunk(sessions, ids, gateways, config, clock)

    assert chunk.ended == {}
    assert [(r.copy_id, r.step) for r in chunk.alone] == [
        (copy_id, CopyStep.TARGET_PLACED) for copy_id in ids
    ]
    with sessions.begin() as s:
        for run in chunk.alone:
            assert s.get_one(OrderCopy, run.copy_id).step == CopyStep.TARGET_PLACED
            assert s.get_one(Order, run.target_order_id).status == OrderStatus.PLACED
    assert _alone(sessions, chunk, gateways, config, clock) == dict.fromkeys(ids, Outcome.COMPLETED)
    with sessions.begin() as s:
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
    runs = _claim(sessions, ids, config, clock)
    taken = ids[1]
    with sessions.begin() as s:
        s.execute(
            update(OrderCopy)
            .where(OrderCopy.id == taken)
            .values(lease_expires_at=clock.now - timedelta(seconds=1))
        )
        newer = Run.of(copy_states.claim(s, taken, clock.now, LEASE, config.max_claims))

    chunk = chunks.run_chunk(sessions, runs, gateways=gateways, config=config, clock=clock)

    assert chunk.ended == {
        ids[0]: Outcome.COMPLETED,
        taken: Outcome.LEASE_LOST,
        ids[2]: Outcome.COMPLETED,
    }
    assert chunk.alone == []
    with sessions.begin() as s:
        row = s.get_one(OrderCopy, taken)
        assert (row.status, row.attempt, row.step) == (CopyStatus.IN_PROGRESS, 2, None)
    outcome = engine.run_claimed(sessions, newer, gateways=gateways, config=config, clock=clock)
    assert outcome == Outcome.COMPLETED
    assert _violations(sessions, ids, shops, stock=10) == []


def test_transient_gateway_trouble_parks_only_that_copy(sessions, gateways, config, clock):
    with sessions.begin() as s:
        good, flaky, other = make_shop(s), make_shop(s, token="tok_flaky"), make_shop(s)
    ids = _copies(sessions, clock, [good, flaky, other], **PLACING)

    chunk = _chunk(sessions, ids, gateways, config, clock)

    assert chunk.ended == {ids[0]: Outcome.COMPLETED, ids[2]: Outcome.COMPLETED}
    assert list(chunk.parked) == [ids[1]]
    assert chunk.alone == []
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

    chunk = _chunk(sessions, ids, gateways, config, clock)

    assert chunk.ended == dict.fromkeys(ids, Outcome.COMPLETED)
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


def test_on_sqlite_every_copy_of_a_chunk_goes_on_alone(sqlite, config, clock):
    sessions, gateways = sqlite
    shops = _shops(sessions, 2)
    ids = _copies(sessions, clock, shops, **PLACING)
    runs = _claim(sessions, ids, config, clock)

    chunk = chunks.run_chunk(sessions, runs, gateways=gateways, config=config, clock=clock)

    assert (chunk.alone, chunk.started, chunk.ended) == (runs, False, {})
    with sessions.begin() as s:
        assert [s.get_one(OrderCopy, i).step for i in ids] == [None, None]
    assert _alone(sessions, chunk, gateways, config, clock) == dict.fromkeys(ids, Outcome.COMPLETED)
    with sessions.begin() as s:
        assert [e.kind for e in copy_events(s, ids[0])].count("claimed") == 1


# --- trouble stays in the chunk -----------------------------------------------------------


def test_a_database_error_parks_the_chunk_with_its_leases_given_up(sessions, gateways, config):
    clock = FixedClock()
    ids = _copies(sessions, clock, _shops(sessions, 3), **PLACING)

    with failpoints.enabled("after_build", "dberror"):
        chunk = _chunk(sessions, ids, gateways, config, clock)

    assert set(chunk.parked) == set(ids)
    assert (chunk.ended, chunk.alone, chunk.crashed) == ({}, [], [])
    with sessions.begin() as s:
        for copy_id in ids:
            copy = s.get_one(OrderCopy, copy_id, populate_existing=True)
            assert (copy.status, copy.step) == (CopyStatus.IN_PROGRESS, CopyStep.STOCK_RESERVED)
            assert copy.lease_expires_at == clock.now  # given up: claimable at once
            assert copy_events(s, copy_id)[-1].kind == "transient_error"
    assert [r.copy_id for r in engine.claim(sessions, ids, config=config, clock=clock)] == ids


def test_a_bug_leaves_the_chunk_crashed_with_its_leases_kept(sessions, gateways, config):
    clock = FixedClock()
    ids = _copies(sessions, clock, _shops(sessions, 2), **PLACING)

    with failpoints.enabled("after_build", "raise"):
        chunk = _chunk(sessions, ids, gateways, config, clock)

    assert sorted(chunk.crashed) == sorted(ids)
    assert (chunk.ended, chunk.alone, chunk.parked) == ({}, [], {})
    assert engine.claim(sessions, ids, config=config, clock=clock) == []  # leases held
    clock.advance(LEASE.total_seconds())
    assert len(engine.claim(sessions, ids, config=config, clock=clock)) == 2  # the sweeper's


class SlowGateway:
    """The test gateway, answering after a pause: a remote gateway on a bad day."""

    name = "test"

    def __init__(self, gateway: TestGateway, seconds: float) -> None:
        self.gateway, self.seconds = gateway, seconds

    def authorize(self, **request: Any) -> Any:
        time.sleep(self.seconds)
        return self.gateway.authorize(**request)

    def void(self, **request: Any) -> None:
        self.gateway.void(**request)


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_chunk_keeps_its_leases_while_slow_gateways_answer(committed, gateways, concurrency):
    """Gateway calls outlasting a lease: the chunk renews its copies' leases meanwhile, so
    a claimer trying all along (a sweeper's doorbell) never takes one over."""
    config = EngineConfig(lease=timedelta(seconds=1.5), gateway_concurrency=concurrency)
    with committed.begin() as s:
        shops = [make_shop(s) for _ in range(4)]
    ids = [create_copy(committed, shop.source.id, **PLACING).id for shop in shops]
    runs = _claim(committed, ids, config, utcnow)
    taken: list[str] = []
    done = threading.Event()

    def claimer() -> None:
        while not done.wait(0.2):
            taken.extend(r.copy_id for r in engine.claim(committed, ids, config=config))

    thread = threading.Thread(target=claimer)
    thread.start()
    try:
        chunk = chunks.run_chunk(
            committed, runs, gateways={"test": SlowGateway(gateways["test"], 1.0)}, config=config
        )
    finally:
        done.set()
        thread.join()
    assert taken == []
    assert chunk.ended == dict.fromkeys(ids, Outcome.COMPLETED)
