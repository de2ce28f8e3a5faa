"""A line whose total would not fit the database is an error for that line (a copy
checks it: a line the API wrote always fits, one written by other means may not)."""

from __future__ import annotations

from sqlalchemy import update

from copying.runs import Outcome
from models import CopyStatus, LineItem, OrderCopy
from tests.factories import Line, create_copy, make_customer, make_order, make_sku
from tests.runs import execute_one


def test_a_line_too_large_for_an_amount_is_a_line_error(sessions, gateways):
    with sessions.begin() as s:
        sku = make_sku(s, "GOLD-BAR", price=100, stock=10**9)
        source = make_order(s, [Line(sku, 1_000_000)], customer=make_customer(s))
        # 10^12 cents for the line, which no amount column can hold.
        s.execute(
            update(LineItem).where(LineItem.order_id == source.id).values(unit_amount_cents=10**6)
        )
    copy = create_copy(sessions, source.id)
    assert execute_one(sessions, copy.id, gateways=gateways) == Outcome.FAILED
    with sessions.begin() as s:
        failed = s.get_one(OrderCopy, copy.id)
    assert failed.status == CopyStatus.FAILED
    assert failed.errors_log["line_items"] == [
        "line Item GOLD-BAR totals 1000000000000 cents, more than one line may (2147483647)"
    ]
