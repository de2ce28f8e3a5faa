"""After the authorization: ``_capture``, ``_refund_amount_cents``, ``_void`` and
``_cancel`` of a placed order racing each other and themselves.

Whatever wins, afterwards: no 5xx, each request answered as its outcome allows,
and every money promise holds (tests/money.py), among them: captured <= authorized
and refunded <= captured, per authorization, capture and order; the order's
payment_status says so; a cancelled order keeps nothing captured; the test
gateway made no capture or refund that no row records.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from models import Order, PaymentStatus, PaymentTransaction, TransactionKind, TransactionStatus
from tests.races.client import cancel, patch_order, place
from tests.races.conftest import expect
from tests.races.shop import LOST, pending_order
from tests.races.test_copies import create_copy_call

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.xdist_group("races")]


def capture(order_id, idempotency_key=None):
    call = patch_order(order_id, "_capture", {"_capture": True})
    if idempotency_key is None:
        return call
    return replace(call, headers={"Idempotency-Key": idempotency_key})


def refund(order_id, cents):
    return patch_order(order_id, f"_refund_amount_cents {cents}", {"_refund_amount_cents": cents})


def void(order_id):
    return patch_order(order_id, "_void", {"_void": True})


def placed_order(arena, rng, *, captured=False):
    shop = pending_order(arena.sessions, rng)
    assert arena.send(place(shop.order.id)).status == 200
    if captured:
        assert arena.send(capture(shop.order.id)).status == 200
    with arena.sessions.begin() as s:
        total = s.scalar(select(Order.total_amount_cents).where(Order.id == shop.order.id))
    return shop, total


def succeeded(arena, order_id, kind):
    with arena.sessions.begin() as s:
        return s.scalars(
            select(PaymentTransaction.amount_cents).where(
                PaymentTransaction.order_id == order_id,
                PaymentTransaction.kind == kind,
                PaymentTransaction.status == TransactionStatus.SUCCEEDED,
            )
        ).all()


def payment_status(arena, order_id):
    with arena.sessions.begin() as s:
        return s.scalar(select(Order.payment_status).where(Order.id == order_id))


def test_parallel_refunds_whose_sum_exceeds_the_capture_never_refund_more(arena, round_):
    rng = round_.rng
    shop, total = placed_order(arena, rng, captured=True)
    amounts = [rng.randint(total // 8, total // 3) for _ in range(8)]
    assert sum(amounts) > total
    replies = arena.race([refund(shop.order.id, cents) for cents in amounts], round_)
    problems = arena.server_errors(replies) + expect(replies, {"_refund": {200, 422}})
    refunded = succeeded(arena, shop.order.id, TransactionKind.REFUND)
    if sum(refunded) > total:
        problems.append(f"{sum(refunded)} cents refunded of a capture of {total}")
    if not refunded:
        problems.append("no refund succeeded, though the first fits")
    # Each 200 is a refund made (or one asked for by another request of the same amount).
    answered = sorted({r.call.what for r in replies if r.status == 200})
    if len(answered) > len(refunded):
        problems.append(f"{answered} answered 200 but only {refunded} were refunded")
    problems += arena.settle_and_check(shop.initial_stock)
    assert not problems, round_.report(problems, replies)


def test_capture_racing_void_one_of_them_wins(arena, round_):
    rng = round_.rng
    shop, total = placed_order(arena, rng)
    calls = [capture(shop.order.id) for _ in range(rng.randint(1, 3))]
    calls += [void(shop.order.id) for _ in range(rng.randint(1, 3))]
    rng.shuffle(calls)
    replies = arena.race(calls, round_)
    problems = arena.server_errors(replies)
    problems += expect(replies, {"_capture": {200, 409}, "_void": {200, 409}})
    status = payment_status(arena, shop.order.id)
    won = {r.call.what for r in replies if r.status == 200}
    if status == PaymentStatus.PAID:
        if won != {"_capture"}:
            problems.append(f"payment is paid, yet {sorted(won)} answered 200")
        if succeeded(arena, shop.order.id, TransactionKind.CAPTURE) != [total]:
            problems.append(f"paid, but not by one capture of {total}")
    elif status == PaymentStatus.VOIDED:
        if won != {"_void"}:
            problems.append(f"payment is voided, yet {sorted(won)} answered 200")
        if succeeded(arena, shop.order.id, TransactionKind.CAPTURE):
            problems.append("voided, but a capture succeeded")
    else:
        problems.append(f"payment is {status} after capture raced void; one must have won")
    problems += arena.settle_and_check(shop.initial_stock)
    assert not problems, round_.report(problems, replies)


def test_cancel_racing_refunds_keeps_nothing_captured_on_a_cancelled_order(arena, round_):
    rng = round_.rng
    shop, total = placed_order(arena, rng, captured=True)
    calls = [cancel(shop.order.id) for _ in range(rng.randint(1, 2))]
    calls += [refund(shop.order.id, rng.randint(1, total // 2)) for _ in range(rng.randint(1, 3))]
    rng.shuffle(calls)
    replies = arena.race(calls, round_)
    problems = arena.server_errors(replies)
    problems += expect(replies, {"_cancel": {200, *LOST}, "_refund": {200, 409, 422}})
    cancelled = any(r.call.what == "_cancel" and r.status == 200 for r in replies)
    refunded = sum(succeeded(arena, shop.order.id, TransactionKind.REFUND))
    if cancelled and refunded != total:
        problems.append(f"the order was cancelled, {refunded} of {total} cents refunded")
    problems += arena.settle_and_check(shop.initial_stock)
    assert not problems, round_.report(problems, replies)


@pytest.mark.parametrize("same_key", [False, True], ids=["no_key", "idempotency_key"])
def test_a_double_clicked_capture_captures_once(arena, round_, same_key):
    rng = round_.rng
    shop, total = placed_order(arena, rng)
    key = f"capture-{shop.order.id}" if same_key else None
    replies = arena.race([capture(shop.order.id, key) for _ in range(4)], round_)
    problems = arena.server_errors(replies) + expect(replies, {"_capture": {200, 409}})
    if not any(r.status == 200 for r in replies):
        problems.append("no capture answered 200")
    captures = succeeded(arena, shop.order.id, TransactionKind.CAPTURE)
    if captures != [total]:
        problems.append(f"captures {captures}, expected one of {total}")
    if payment_status(arena, shop.order.id) != PaymentStatus.PAID:
        problems.append("the order is not paid")
    problems += arena.settle_and_check(shop.initial_stock)
    assert not problems, round_.report(problems, replies)


def test_a_copy_cancelling_its_captured_source_racing_refunds_refunds_no_more(arena, round_):
    rng = round_.rng
    shop, total = placed_order(arena, rng, captured=True)
    calls = [create_copy_call(shop.order.id, cancel_source_order=True, place_target_order=False)]
    calls += [refund(shop.order.id, rng.randint(1, total // 2)) for _ in range(rng.randint(1, 3))]
    rng.shuffle(calls)
    replies = arena.race(calls, round_)
    problems = arena.server_errors(replies)
    problems += expect(replies, {"POST order_copies": {201}, "_refund": {200, 409, 422}})
    problems += arena.settle_and_check(shop.initial_stock)  # the copy's refund included
    assert not problems, round_.report(problems, replies)


def test_capture_racing_cancel_leaves_nothing_captured_on_a_cancelled_order(arena, round_):
    rng = round_.rng
    shop, total = placed_order(arena, rng)
    calls = [capture(shop.order.id) for _ in range(rng.randint(1, 2))]
    calls += [cancel(shop.order.id) for _ in range(rng.randint(1, 2))]
    rng.shuffle(calls)
    replies = arena.race(calls, round_)
    problems = arena.server_errors(replies)
    problems += expect(replies, {"_capture": {200, 409}, "_cancel": {200, *LOST}})
    status = payment_status(arena, shop.order.id)
    captured = succeeded(arena, shop.order.id, TransactionKind.CAPTURE)
    if status not in (PaymentStatus.VOIDED, PaymentStatus.REFUNDED, PaymentStatus.PAID):
        problems.append(f"payment is {status} after capture raced cancel")
    if captured and captured != [total]:
        problems.append(f"captures {captured}, expected at most one of {total}")
    problems += arena.settle_and_check(shop.initial_stock)
    assert not problems, round_.report(problems, replies)
