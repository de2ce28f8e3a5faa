"""Retrying a failed copy: from its last checkpoint, same target, never a second charge."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from copying.copies import lifecycle
from copying.copies.dispatch import unit_of_work
from copying.errors import CopyStateError, NotFoundError
from copying.orders import placing
from copying.runs import Outcome
from models import (
    AuthorizationStatus,
    CopyStatus,
    CopyStep,
    CustomerPaymentSource,
    Mode,
    Order,
    OrderCopy,
    OrderStatus,
    PaymentStatus,
    Sku,
)
from tests.factories import (
    authorizations,
    copy_events,
    create_copy,
    customer_orders,
    gateway_charge,
    make_shop,
)
from tests.runs import execute_one


def _retry(sessions, published, copy_id, clock, *, by="ops", mode=Mode.TEST):
    with unit_of_work(sessions, published) as s:
        return lifecycle.retry(s, copy_id, mode, by=by, now=clock.now)


def test_restocked_copy_completes_on_retry_with_the_same_target(
    sessions, gateways, clock, published
):
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=1)
    copy = create_copy(sessions, shop.source.id, place_target_order=True)
    started = clock.now
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED
    with sessions.begin() as s:
        failed = s.get_one(OrderCopy, copy.id)
    first_errors = {"line_items": [f"SKU {shop.sku.code} is out of stock (2 requested, 1 left)"]}
    assert failed.errors_log == first_errors
    assert failed.target_order_id is not None

    with sessions.begin() as s:
        s.get_one(Sku, shop.sku.id).stock_quantity = 10
    clock.advance(60)
    retried = _retry(sessions, published, copy.id, clock)

    assert published == [copy.id]
    assert retried.status == CopyStatus.PENDING
    assert (retried.errors_log, retried.errors_count) == ({}, 0)
    assert (retried.failed_at, retried.completed_at, retried.claims) == (None, None, 0)
    assert (retried.started_at, retried.dispatched_at) == (started, clock.now)
    assert retried.target_order_id == failed.target_order_id

    clock.advance(5)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        [payment] = authorizations(s, target.id)
        stock = s.get_one(Sku, shop.sku.id).stock_quantity
        all_orders = customer_orders(s, shop.customer.id)
        events = copy_events(s, copy.id)
    assert row.target_order_id == failed.target_order_id
    assert [o.id for o in all_orders] == [shop.source.id, target.id]
    assert (row.status, row.errors_log, row.errors_count) == (CopyStatus.COMPLETED, {}, 0)
    assert (row.started_at, row.completed_at, row.failed_at) == (started, clock.now, None)
    assert (row.attempt, row.claims) == (2, 1)
    assert (target.status, target.payment_status) == (OrderStatus.PLACED, PaymentStatus.AUTHORIZED)
    assert (payment.idempotency_key, payment.status) == (
        f"order_copy:{copy.id}:place",
        AuthorizationStatus.AUTHORIZED,
    )
    assert stock == 8
    # The latest attempt is clean; the failed one stays readable in the history.
    [retried_event] = [e for e in events if e.kind == "retried"]
    assert retried_event.attempt == 1
    assert retried_event.data == {"by": "ops", "previous_errors": first_errors}
    [failed_event] = [e for e in events if e.kind == "failed"]
    assert failed_event.data["errors"] == first_errors
    assert [e.kind for e in events][-2:] == ["checkpoint", "completed"]


def test_declined_then_fixed_card_authorizes_under_a_new_key(sessions, gateways, clock, published):
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=10, price=1000, token="tok_declined")
    copy = create_copy(sessions, shop.source.id, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED
    with sessions.begin() as s:
        failed = s.get_one(OrderCopy, copy.id)
        assert s.get_one(Sku, shop.sku.id).stock_quantity == 10

    with sessions.begin() as s:
        s.get_one(CustomerPaymentSource, shop.entry.id).payment_source_token = "tok_visa"
    _retry(sessions, published, copy.id, clock)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    key = f"order_copy:{copy.id}:place"
    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        payments = sorted(authorizations(s, target.id), key=lambda a: a.idempotency_key)
        charges = [gateway_charge(s, key), gateway_charge(s, f"{key}:2")]
        stock = s.get_one(Sku, shop.sku.id).stock_quantity
        events = copy_events(s, copy.id)
    assert row.target_order_id == failed.target_order_id
    assert (row.status, row.errors_log, row.errors_count) == (CopyStatus.COMPLETED, {}, 0)
    assert [(a.idempotency_key, a.status) for a in payments] == [
        (key, AuthorizationStatus.DECLINED),
        (f"{key}:2", AuthorizationStatus.AUTHORIZED),
    ]
    assert [(c.token, c.outcome) for c in charges] == [
        ("tok_declined", "declined"),
        ("tok_visa", "authorized"),
    ]
    assert (target.status, target.payment_source_token) == (OrderStatus.PLACED, "tok_visa")
    assert stock == 8
    [retried_event] = [e for e in events if e.kind == "retried"]
    assert retried_event.data["previous_errors"] == {"payment": ["payment declined: card declined"]}


def test_retry_resumes_after_the_placed_checkpoint_and_never_charges_twice(
    sessions, gateways, clock, published
):
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=10)
    copy = create_copy(sessions, shop.source.id, place_target_order=True, cancel_source_order=True)
    # The source is still pending: the target is placed, then cancelling the source fails.
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED
    with sessions.begin() as s:
        failed = s.get_one(OrderCopy, copy.id)
        [first_payment] = authorizations(s, failed.target_order_id)
    assert failed.step == CopyStep.TARGET_PLACED
    assert list(failed.errors_log) == ["source_order"]

    assert placing.place_order(sessions, shop.source.id, Mode.TEST, gateways=gateways) == []
    _retry(sessions, published, copy.id, clock)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        source = s.get_one(Order, shop.source.id)
        [payment] = authorizations(s, row.target_order_id)
        stock = s.get_one(Sku, shop.sku.id).stock_quantity
        all_orders = customer_orders(s, shop.customer.id)
    assert (row.status, row.step, row.errors_log) == (
        CopyStatus.COMPLETED,
        CopyStep.SOURCE_CANCELLED,
        {},
    )
    assert row.target_order_id == failed.target_order_id
    assert len(all_orders) == 2
    assert (payment.id, payment.gateway_reference) == (
        first_payment.id,
        first_payment.gateway_reference,
    )
    assert source.status == OrderStatus.CANCELLED
    # 10 - 2 (target) - 2 (source placed by hand) + 2 (source cancelled)
    assert stock == 8


@pytest.mark.parametrize(
    "status", [CopyStatus.PENDING, CopyStatus.IN_PROGRESS, CopyStatus.COMPLETED]
)
def test_only_failed_copies_can_be_retried(sessions, clock, published, status):
    with sessions.begin() as s:
        shop = make_shop(s)
    copy = create_copy(sessions, shop.source.id)
    with sessions.begin() as s:
        s.execute(update(OrderCopy).where(OrderCopy.id == copy.id).values(status=status))

    with unit_of_work(sessions, published) as s, pytest.raises(CopyStateError) as raised:
        lifecycle.retry(s, copy.id, Mode.TEST, by="ops", now=clock.now)

    assert (raised.value.copy_id, raised.value.status) == (copy.id, status)
    assert raised.value.message == "only failed copies can be retried"
    assert published == []
    with sessions.begin() as s:
        assert s.get_one(OrderCopy, copy.id).status == status
        assert "retried" not in [e.kind for e in copy_events(s, copy.id)]


def test_a_second_retry_of_the_same_failure_is_refused(sessions, gateways, clock, published):
    with sessions.begin() as s:
        shop = make_shop(s, stock=0)
    copy = create_copy(sessions, shop.source.id)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED

    _retry(sessions, published, copy.id, clock)
    with pytest.raises(CopyStateError):
        _retry(sessions, published, copy.id, clock)

    assert published == [copy.id]


def test_retry_of_an_unknown_copy_is_not_found(sessions, clock, published):
    with pytest.raises(NotFoundError):
        _retry(sessions, published, "NoSuchCopy", clock)
    assert published == []


def test_retry_of_a_copy_of_the_other_mode_is_not_found(sessions, gateways, clock, published):
    with sessions.begin() as s:
        shop = make_shop(s, stock=0)
    copy = create_copy(sessions, shop.source.id)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED

    with pytest.raises(NotFoundError):
        _retry(sessions, published, copy.id, clock, mode=Mode.LIVE)

    assert published == []
    with sessions.begin() as s:
        assert s.get_one(OrderCopy, copy.id).status == CopyStatus.FAILED


def test_a_target_placed_by_hand_is_not_placed_again(sessions, gateways, clock, published):
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=10, token="tok_declined")
    copy = create_copy(sessions, shop.source.id, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED
    with sessions.begin() as s:
        target_id = s.get_one(OrderCopy, copy.id).target_order_id
        target = s.get_one(Order, target_id)
        target.payment_source_token = "tok_visa"
        s.get_one(
            CustomerPaymentSource, target.customer_payment_source_id
        ).payment_source_token = "tok_visa"
    # A person fixes the card on the target and places it.
    assert placing.place_order(sessions, target_id, Mode.TEST, gateways=gateways) == []

    _retry(sessions, published, copy.id, clock)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        payments = authorizations(s, target_id)
        stock = s.get_one(Sku, shop.sku.id).stock_quantity
    assert (row.status, row.step, row.errors_log) == (
        CopyStatus.COMPLETED,
        CopyStep.TARGET_PLACED,
        {},
    )
    assert row.target_order_id == target_id
    assert sorted((a.idempotency_key.rsplit(":", 1)[0], a.status) for a in payments) == [
        (f"order:{target_id}:place", AuthorizationStatus.AUTHORIZED),
        (f"order_copy:{copy.id}", AuthorizationStatus.DECLINED),
    ]
    assert stock == 8


def test_a_target_cancelled_by_hand_fails_the_retry(sessions, gateways, clock, published):
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=10, token="tok_declined")
    copy = create_copy(sessions, shop.source.id, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED
    with sessions.begin() as s:
        target_id = s.get_one(OrderCopy, copy.id).target_order_id
        target = s.get_one(Order, target_id)
        target.payment_source_token = "tok_visa"
        s.get_one(
            CustomerPaymentSource, target.customer_payment_source_id
        ).payment_source_token = "tok_visa"
    # A person places the target by hand, then thinks better of it.
    assert placing.place_order(sessions, target_id, Mode.TEST, gateways=gateways) == []
    assert placing.cancel_order(sessions, target_id, Mode.TEST, gateways=gateways) == []

    _retry(sessions, published, copy.id, clock)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, target_id)
        stock = s.get_one(Sku, shop.sku.id).stock_quantity
    assert row.errors_log == {"target_order": [f"target order {target_id} was cancelled"]}
    assert (row.errors_count, row.failed_at) == (1, clock.now)
    assert row.target_order_id == target_id
    assert target.status == OrderStatus.CANCELLED
    assert stock == 10
