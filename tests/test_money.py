"""The money checker (tests/money.py) catches each broken promise it names, and only that.

Each test writes a state straight into the database, as a bug would leave it:
an order placed the way the domain places one (its authorization recorded,
the gateway's ledger holding it, its stock taken), then one thing broken.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update

from copying.orders import placing
from models import (
    AuthorizationStatus,
    CopyStatus,
    Coupon,
    CustomerPaymentSource,
    LineItem,
    Mode,
    Order,
    OrderCopy,
    OrderStatus,
    PaymentAuthorization,
    PaymentStatus,
    PaymentTransaction,
    Sku,
    TestGatewayCharge,
    TestGatewayTransaction,
    TransactionKind,
    new_public_id,
    utcnow,
)
from tests.factories import (
    Line,
    create_copy,
    make_coupon,
    make_customer,
    make_order,
    make_promotion,
    make_shop,
    make_sku,
    make_wallet_entry,
)
from tests.money import MONEY_INVARIANTS, check, settle, settle_and_check, violations

STOCK = 10


def broken(found: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: sentences for name, sentences in found.items() if sentences}


def found_in(sessions, initial_stock):
    with sessions.begin() as s:
        return broken(check(s, initial_stock))


def hold(
    s,
    order,
    *,
    key=None,
    amount=None,
    currency=None,
    status=AuthorizationStatus.AUTHORIZED,
    outcome="authorized",
    voided=False,
    recorded=True,
    at_gateway=True,
):
    """A payment for ``order``: our record and the test gateway's ledger row."""
    key = key or f"order:{order.id}:place"
    amount = order.total_amount_cents if amount is None else amount
    currency = currency or order.currency_code
    now = utcnow()
    if recorded:
        s.add(
            PaymentAuthorization(
                id=new_public_id(),
                mode=order.mode,
                order_id=order.id,
                amount_cents=amount,
                currency_code=currency,
                gateway="test",
                gateway_reference=f"ch_{new_public_id()}",
                idempotency_key=key,
                status=status,
                message="approved",
                voided_at=now if status == AuthorizationStatus.VOIDED else None,
            )
        )
    if at_gateway:
        s.add(
            TestGatewayCharge(
                idempotency_key=key,
                token="tok_visa",
                amount_cents=amount,
                currency_code=currency,
                failures=0,
                outcome=outcome,
                reference=f"ch_{new_public_id()}",
                message="approved",
                voided_at=now if voided else None,
                created_at=now,
            )
        )
    s.flush()
    return key


def place(s, order, sku=None, *, held=True):
    """Mark ``order`` placed as the domain does: held (unless free), its stock taken."""
    if held and order.total_amount_cents > 0:
        hold(s, order)
    order.status = OrderStatus.PLACED
    order.placed_at = utcnow()
    order.payment_status = (
        PaymentStatus.AUTHORIZED if order.total_amount_cents > 0 else PaymentStatus.FREE
    )
    if sku is not None:
        for line in s.query(LineItem).filter_by(order_id=order.id, sku_code=sku.code):
            sku.stock_quantity -= line.quantity
    s.flush()
    return order


def placed_shop(sessions, **extra):
    """A placed order of 2 of 1,000 cents, and the initial stock."""
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=STOCK, **extra)
        place(s, shop.source, shop.sku)
    return shop, {shop.sku.code: STOCK}


def test_orders_placed_free_pending_and_cancelled_as_the_domain_leaves_them_break_nothing(
    committed,
):
    with committed.begin() as s:
        shop = make_shop(s, quantity=2, stock=STOCK)
        place(s, shop.source, shop.sku)
        free_sku = make_sku(s, price=0, stock=STOCK)
        free = place(s, make_order(s, [Line(free_sku, 1)]), free_sku)
        make_order(s, [Line(shop.sku, 1)])  # pending, nothing held
        cancelled = make_order(s, [Line(shop.sku, 3)])
        hold(s, cancelled, status=AuthorizationStatus.VOIDED, voided=True)
        cancelled.status = OrderStatus.CANCELLED
        cancelled.payment_status = PaymentStatus.VOIDED
        declined = make_order(s, [Line(shop.sku, 1)])
        hold(s, declined, status=AuthorizationStatus.DECLINED, outcome="declined")
    with committed.begin() as s:
        found = check(s, {shop.sku.code: STOCK, free_sku.code: STOCK})
    assert set(found) == set(MONEY_INVARIANTS)
    assert broken(found) == {}
    assert free.payment_status == PaymentStatus.FREE


def test_the_domain_placing_and_cancelling_breaks_nothing(committed, gateways):
    with committed.begin() as s:
        first, second = make_shop(s, stock=STOCK), make_shop(s, stock=STOCK)
    for shop in (first, second):
        assert placing.place_order(committed, shop.source.id, Mode.TEST, gateways=gateways) == []
    assert placing.cancel_order(committed, second.source.id, Mode.TEST, gateways=gateways) == []
    assert settle_and_check(committed, {first.sku.code: STOCK, second.sku.code: STOCK}) == []


def test_a_placed_order_whose_only_hold_was_voided_is_caught(committed):
    # Issue 13, item 1: a losing double click voided the winner's hold.
    shop, stock = placed_shop(committed)
    with committed.begin() as s:
        s.execute(
            update(PaymentAuthorization)
            .where(PaymentAuthorization.order_id == shop.source.id)
            .values(status=AuthorizationStatus.VOIDED, voided_at=utcnow())
        )
        s.execute(update(TestGatewayCharge).values(voided_at=utcnow()))
    order = f"order {shop.source.id} (placed, total 2000 USD)"
    assert found_in(committed, stock) == {
        "placed_orders_hold_their_total": [f"{order} holds no live authorization"]
    }


def test_a_placed_order_holding_two_payments_is_caught(committed):
    shop, stock = placed_shop(committed)
    with committed.begin() as s:
        second = hold(s, shop.source, key=f"order_copy:{new_public_id()}:place")
    first = f"order:{shop.source.id}:place"
    assert found_in(committed, stock) == {
        "placed_orders_hold_their_total": [
            f"order {shop.source.id} (placed, total 2000 USD) holds 2 live authorizations: "
            f"{sorted([first, second])}"
        ]
    }


def test_a_hold_of_another_amount_than_the_total_is_caught(committed):
    # Issue 13, item 2: lines added while _place asked the gateway for the old total.
    shop, stock = placed_shop(committed)
    with committed.begin() as s:
        s.execute(
            update(Order).where(Order.id == shop.source.id).values(total_amount_cents=101_000)
        )
    assert found_in(committed, stock) == {
        "placed_orders_hold_their_total": [
            f"order {shop.source.id} (placed, total 101000 USD) holds 2000 USD under "
            f"order:{shop.source.id}:place"
        ]
    }


def test_a_hold_in_another_currency_is_caught(committed):
    with committed.begin() as s:
        shop = make_shop(s, stock=STOCK)
        hold(s, shop.source, currency="EUR")
        place(s, shop.source, shop.sku, held=False)
    assert found_in(committed, {shop.sku.code: STOCK}) == {
        "placed_orders_hold_their_total": [
            f"order {shop.source.id} (placed, total 2000 USD) holds 2000 EUR under "
            f"order:{shop.source.id}:place"
        ]
    }


def test_a_placed_order_not_marked_authorized_is_caught(committed):
    shop, stock = placed_shop(committed)
    with committed.begin() as s:
        s.execute(
            update(Order)
            .where(Order.id == shop.source.id)
            .values(payment_status=PaymentStatus.UNPAID)
        )
    assert found_in(committed, stock) == {
        "placed_orders_hold_their_total": [
            f"order {shop.source.id} (placed, total 2000 USD) has payment_status unpaid, "
            "not authorized"
        ]
    }


def test_a_free_order_holding_a_payment_or_not_free_is_caught(committed):
    with committed.begin() as s:
        sku = make_sku(s, price=0, stock=STOCK)
        order = place(s, make_order(s, [Line(sku, 1)]), sku)
        key = hold(s, order, amount=500)
        order.payment_status = PaymentStatus.AUTHORIZED
    free = f"order {order.id} (placed, total 0 USD) is free"
    assert found_in(committed, {sku.code: STOCK}) == {
        "placed_orders_hold_their_total": [
            f"{free} but holds authorizations [{key!r}]",
            f"{free} but its payment_status is authorized",
        ]
    }


def test_pending_and_cancelled_orders_holding_a_payment_are_caught(committed):
    with committed.begin() as s:
        sku = make_sku(s, stock=STOCK)
        pending = make_order(s, [Line(sku, 1)])
        pending_key = hold(s, pending)
        cancelled = make_order(s, [Line(sku, 1)])
        cancelled_key = hold(s, cancelled)
        cancelled.status = OrderStatus.CANCELLED
    expected = {
        pending.id: f"order {pending.id} (pending, total 1000 USD) holds live authorization "
        f"{pending_key} of 1000 USD",
        cancelled.id: f"order {cancelled.id} (cancelled, total 1000 USD) holds live "
        f"authorization {cancelled_key} of 1000 USD",
    }
    found = found_in(committed, {sku.code: STOCK})
    assert found["no_hold_off_placed_orders"] == [expected[i] for i in sorted(expected)]
    # The gateway's live holds belong to orders that are not placed: said there too.
    assert sorted(found["gateway_agrees"]) == sorted(
        f"the gateway holds 1000 USD under {key} for order {order.id}, which is {status}"
        for key, order, status in (
            (pending_key, pending, "pending"),
            (cancelled_key, cancelled, "cancelled"),
        )
    )
    assert set(found) == {"no_hold_off_placed_orders", "gateway_agrees"}


def test_a_live_hold_at_the_gateway_that_no_order_records_is_caught(committed):
    shop, stock = placed_shop(committed)
    with committed.begin() as s:
        orphan = hold(s, shop.source, key="order:Nowhere123:place", amount=700, recorded=False)
    assert found_in(committed, stock) == {
        "gateway_agrees": [f"the gateway holds 700 USD under {orphan}, which no order records"]
    }


def test_a_live_hold_at_the_gateway_recorded_as_voided_is_caught(committed):
    shop, stock = placed_shop(committed)
    with committed.begin() as s:
        key = hold(
            s, shop.source, key=f"order:{shop.source.id}:place:2", status=AuthorizationStatus.VOIDED
        )
    assert found_in(committed, stock) == {
        "gateway_agrees": [
            f"the gateway holds 2000 USD under {key}, which order {shop.source.id} records "
            "as voided"
        ]
    }


def test_a_recorded_hold_the_gateway_voided_declined_never_made_or_holds_otherwise_is_caught(
    committed,
):
    with committed.begin() as s:
        sku = make_sku(s, stock=4 * STOCK)
        shapes = {
            "voided": {"voided": True},
            "declined": {"outcome": "declined"},
            "missing": {"at_gateway": False},
        }
        placed = {}
        for name, shape in shapes.items():
            order = make_order(s, [Line(sku, 1)])
            hold(s, order, **shape)
            placed[name] = place(s, order, sku, held=False)
        other = place(s, make_order(s, [Line(sku, 1)]), sku, held=False)
        hold(s, other, recorded=False, amount=999)
        hold(s, other, at_gateway=False)
    sentences = {
        placed["voided"].id: "but the gateway voided it",
        placed["declined"].id: "but the gateway answered declined",
        placed["missing"].id: "but the gateway never charged that key",
        other.id: "but the gateway holds 999 USD",
    }
    assert found_in(committed, {sku.code: 4 * STOCK}) == {
        "gateway_agrees": [
            f"authorization order:{order_id}:place of order {order_id} is recorded as "
            f"1000 USD authorized, {sentences[order_id]}"
            for order_id in sorted(sentences)
        ]
    }


def test_stock_that_drifted_from_what_placed_orders_hold_is_caught(committed):
    shop, stock = placed_shop(committed)  # 10 at first, 2 placed: 8 left
    with committed.begin() as s:
        other = make_sku(s, stock=5)
        s.execute(update(Sku).where(Sku.id == shop.sku.id).values(stock_quantity=6))
    assert found_in(committed, {**stock, other.code: 5}) == {
        "stock_matches_placed_lines": [
            f"SKU {shop.sku.code}: 6 in stock, expected 8 (10 at first, 2 on placed orders)"
        ]
    }


def test_lines_added_to_a_placed_order_after_its_stock_was_taken_are_caught(committed):
    # Issue 13, item 3: a line item written while the order was being placed.
    shop, stock = placed_shop(committed)
    with committed.begin() as s:
        s.execute(update(LineItem).where(LineItem.order_id == shop.source.id).values(quantity=5))
    found = found_in(committed, stock)
    assert found == {
        "stock_matches_placed_lines": [
            f"SKU {shop.sku.code}: 8 in stock, expected 5 (10 at first, 5 on placed orders)"
        ]
    }


def _coupon_order(s, code):
    """A pending order of 1 of 1,000 cents with the coupon ``code`` (10% off) on it."""
    coupon = make_coupon(s, make_promotion(s), code)
    customer = make_customer(s)
    order = make_order(
        s,
        [Line(make_sku(s, stock=STOCK), 1)],
        customer=customer,
        wallet_entry=make_wallet_entry(s, customer),
        coupon_code=code,
        promotions_at=utcnow(),
    )
    return coupon, order


def test_the_domain_taking_and_giving_back_coupon_uses_breaks_nothing(committed, gateways):
    with committed.begin() as s:
        _, kept = _coupon_order(s, "KEPT")
        _, cancelled = _coupon_order(s, "GONE")
    for order in (kept, cancelled):
        assert placing.place_order(committed, order.id, Mode.TEST, gateways=gateways) == []
    assert placing.cancel_order(committed, cancelled.id, Mode.TEST, gateways=gateways) == []
    with committed.begin() as s:
        counts = dict(s.execute(select(Coupon.code, Coupon.usage_count)).all())
    assert counts == {"KEPT": 1, "GONE": 0}
    assert settle_and_check(committed, {}) == []


def test_coupon_uses_counted_but_not_held_or_held_off_placed_orders_are_caught(committed):
    with committed.begin() as s:
        counted, placed = _coupon_order(s, "COUNTED")
        _, pending = _coupon_order(s, "PENDING")
        place(s, placed)  # placed without taking the coupon's use
        counted.usage_count = 1
        s.execute(
            update(LineItem)
            .where(LineItem.order_id == pending.id, LineItem.coupon_code.is_not(None))
            .values(reserved_quantity=1)
        )
    found = found_in(committed, {})
    assert list(found) == ["coupon_uses_match_placed_orders"]
    assert sorted(found["coupon_uses_match_placed_orders"]) == sorted(
        [
            f"placed order {placed.id}'s line of coupon COUNTED holds 0 uses",
            f"order {pending.id} (pending) holds a use of coupon PENDING",
            "coupon COUNTED counts 1 uses, placed orders hold 0",
        ]
    )


def test_settle_waits_for_unfinished_copies_and_says_which_it_gave_up_on(committed):
    shop, stock = placed_shop(committed)
    copy = create_copy(committed, shop.source.id)
    ticks = iter(range(1000))
    unsettled = settle(committed, timeout=3, interval=0, clock=lambda: float(next(ticks)))
    assert unsettled == [
        f"not settled after 3 s: order copy {copy.id} is still pending (step None)"
    ]
    assert next(ticks) == 4  # the deadline from 0, polled at 1, 2 and 3, then gave up
    assert settle_and_check(committed, stock, timeout=0) == [
        f"not settled after 0 s: order copy {copy.id} is still pending (step None)"
    ]
    with committed.begin() as s:
        s.execute(
            update(OrderCopy)
            .where(OrderCopy.id == copy.id)
            .values(status=CopyStatus.COMPLETED, completed_at=utcnow() + timedelta(seconds=1))
        )
    assert settle(committed, timeout=0) == []
    with committed.begin() as s:
        assert violations(s, stock) == []


def test_a_hold_made_on_another_token_than_the_order_pays_with_is_caught(committed):
    # Issue 13, item 2: the payment source switched while _place asked the gateway.
    shop, stock = placed_shop(committed)
    with committed.begin() as s:
        s.execute(
            update(Order)
            .where(Order.id == shop.source.id)
            .values(payment_source_token="tok_declined")
        )
    assert found_in(committed, stock) == {
        "gateway_agrees": [
            f"authorization order:{shop.source.id}:place of order {shop.source.id} is recorded "
            "as 2000 USD authorized, but the gateway holds it on token 'tok_visa' while the "
            "order pays with 'tok_declined'"
        ]
    }


def test_a_placed_order_paying_with_another_customers_wallet_entry_is_caught(committed):
    # Issue 13, item 4: the customer changed after the card was attached. An entry deleted
    # after its order was placed is not: the order still says where its payment came from.
    shop, stock = placed_shop(committed)
    gone, gone_stock = placed_shop(committed)
    with committed.begin() as s:
        stranger = make_customer(s)
        s.execute(update(Order).where(Order.id == shop.source.id).values(customer_id=stranger.id))
        s.execute(delete(CustomerPaymentSource).where(CustomerPaymentSource.id == gone.entry.id))
    assert found_in(committed, {**stock, **gone_stock}) == {
        "placed_orders_pay_with_their_customers_wallet": [
            f"order {shop.source.id} (placed) pays with wallet entry {shop.entry.id} "
            f"of customer {shop.customer.id}, but the order is customer {stranger.id}'s"
        ]
    }


# --- after the authorization: captures, refunds, voids ----------------------------------


def captured_shop(sessions, gateways, *, refund=None):
    """A shop whose order the domain placed and captured (2 of 1,000 cents), and refunded
    ``refund`` cents of when given."""
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=STOCK)
    assert placing.place_order(sessions, shop.source.id, Mode.TEST, gateways=gateways) == []
    placing.capture_order(sessions, shop.source.id, Mode.TEST, gateways=gateways)
    if refund is not None:
        placing.refund_order(
            sessions, shop.source.id, Mode.TEST, refund, field="amount", gateways=gateways
        )
    return shop, {shop.sku.code: STOCK}


def test_the_domain_capturing_refunding_voiding_and_cancelling_breaks_nothing(committed, gateways):
    refunded, stock = captured_shop(committed, gateways, refund=500)
    cancelled, more = captured_shop(committed, gateways, refund=700)
    with committed.begin() as s:
        voided = make_shop(s, quantity=1, stock=STOCK)
    assert placing.place_order(committed, voided.source.id, Mode.TEST, gateways=gateways) == []

    assert placing.cancel_order(committed, cancelled.source.id, Mode.TEST, gateways=gateways) == []
    assert placing.void_order(committed, voided.source.id, Mode.TEST, gateways=gateways) == []

    with committed.begin() as s:
        statuses = {
            order_id: s.get(Order, order_id).payment_status
            for order_id in (refunded.source.id, cancelled.source.id, voided.source.id)
        }
    assert list(statuses.values()) == [
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
        PaymentStatus.VOIDED,
    ]
    assert settle_and_check(committed, {**stock, **more, voided.sku.code: STOCK}) == []


def test_a_capture_above_its_authorization_is_caught(committed, gateways):
    shop, stock = captured_shop(committed, gateways)
    with committed.begin() as s:
        capture = s.scalars(select(PaymentTransaction)).one()
        capture.amount_cents += 1
        s.execute(update(TestGatewayTransaction).values(amount_cents=capture.amount_cents))
        authorization_id = capture.authorization_id
    assert found_in(committed, stock) == {
        "captured_within_authorized": [
            f"authorization {authorization_id} of order {shop.source.id} of 2000 cents had"
            " 2001 captured"
        ]
    }


def test_refunds_above_their_capture_are_caught(committed, gateways):
    shop, stock = captured_shop(committed, gateways, refund=1500)
    with committed.begin() as s:
        [refund] = s.scalars(
            select(PaymentTransaction).where(PaymentTransaction.kind == TransactionKind.REFUND)
        ).all()
        refund.amount_cents = 2500  # as if a second refund got past the check
        s.execute(
            update(TestGatewayTransaction)
            .where(TestGatewayTransaction.idempotency_key == refund.idempotency_key)
            .values(amount_cents=2500)
        )
        capture_id = refund.capture_id
    order = f"order {shop.source.id} (placed, payment partially_refunded)"
    assert found_in(committed, stock) == {
        "refunded_within_captured": [
            f"capture {capture_id} of order {shop.source.id} took 2000 cents, 2500 were refunded",
            f"{order} captured 2000 cents and refunded 2500",
            f"{order} captured 2000 cents and refunded 2500: it should be refunded",
        ]
    }


def test_a_refund_at_the_gateway_that_no_row_records_is_caught(committed, gateways):
    shop, stock = captured_shop(committed, gateways)
    with committed.begin() as s:
        capture = s.scalars(select(PaymentTransaction)).one()
    key = f"order:{shop.source.id}:refund:9"
    answer = gateways["test"].refund(
        idempotency_key=key,
        order_id=shop.source.id,
        capture_key=capture.idempotency_key,
        capture_reference=capture.gateway_reference,
        amount_cents=300,
        currency_code="USD",
    )
    assert answer.succeeded
    assert found_in(committed, stock) == {
        "gateway_transactions_agree": [
            f"the gateway made a refund of 300 cents under {key}, which no row records"
        ]
    }


def test_a_cancelled_order_keeping_what_was_captured_is_caught(committed, gateways):
    shop, stock = captured_shop(committed, gateways)
    with committed.begin() as s:
        order = s.get(Order, shop.source.id)
        order.status = OrderStatus.CANCELLED  # as if cancelled without its refund
        s.get(Sku, shop.sku.id).stock_quantity = STOCK
    assert found_in(committed, stock) == {
        "refunded_within_captured": [
            f"order {shop.source.id} (cancelled, payment paid) is cancelled and keeps 2000 cents"
            " captured"
        ]
    }


def test_a_hold_recorded_captured_that_the_gateway_never_captured_is_caught(committed):
    shop, stock = placed_shop(committed)
    with committed.begin() as s:
        s.execute(update(PaymentAuthorization).values(status=AuthorizationStatus.CAPTURED))
        s.execute(
            update(Order)
            .where(Order.id == shop.source.id)
            .values(payment_status=PaymentStatus.PAID)
        )
    order = f"order {shop.source.id} (placed, payment paid)"
    assert found_in(committed, stock) == {
        "gateway_agrees": [
            f"the gateway holds 2000 USD under order:{shop.source.id}:place, recorded as"
            " captured, but the gateway never captured it"
        ],
        "captured_within_authorized": [f"{order} has nothing captured"],
    }
