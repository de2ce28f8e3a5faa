"""A copy costs a constant number of SQL statements, whatever its number of line items."""

from __future__ import annotations

from copying.runs import Outcome
from models import Order, OrderCopy, OrderStatus
from tests.copying.statements import counting_statements
from tests.factories import (
    Line,
    create_copy,
    make_customer,
    make_order,
    make_sku,
    make_wallet_entry,
    order_lines,
)
from tests.runs import execute_one


def _statements_to_copy(sessions, gateways, clock, lines: int) -> list[str]:
    with sessions.begin() as s:
        customer = make_customer(s)
        entry = make_wallet_entry(s, customer)
        skus = [make_sku(s, price=100 + n, stock=10) for n in range(lines)]
        source = make_order(
            s, [Line(sku, 2) for sku in skus], customer=customer, wallet_entry=entry
        )
    copy = create_copy(sessions, source.id, place_target_order=True, reuse_wallet=True)

    with counting_statements() as statements:
        outcome = execute_one(sessions, copy.id, gateways=gateways, clock=clock)

    assert outcome == Outcome.COMPLETED
    with sessions.begin() as s:
        target = s.get_one(Order, s.get_one(OrderCopy, copy.id).target_order_id)
        assert target.status == OrderStatus.PLACED
        assert len(order_lines(s, target.id)) == lines
    return statements


def test_statement_count_does_not_grow_with_line_items(sessions, gateways, clock):
    one = _statements_to_copy(sessions, gateways, clock, lines=1)
    hundred = _statements_to_copy(sessions, gateways, clock, lines=100)

    assert len(one) > 0
    assert len(hundred) == len(one), "\n".join(hundred)
    # The same statements in the same order: line items go in one bulk insert.
    assert [_verb(s) for s in hundred] == [_verb(s) for s in one]
    assert sum(s.startswith("INSERT INTO line_items") for s in hundred) == 1


def _verb(statement: str) -> str:
    """``INSERT INTO line_items``, ``SAVEPOINT``: what a statement does, to what."""
    words = statement.split()
    return " ".join(words[:1] if words[0] in ("SAVEPOINT", "RELEASE") else words[:3])
