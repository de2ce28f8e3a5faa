"""A copy costs a constant number of SQL statements, whatever its number of line items."""

from __future__ import annotations

from copying import runs
from copying.runs import Outcome
from models import Order, OrderCopy, OrderStatus
from tests.copying.statements import counting_statements
from tests.factories import (
    Line,
    create_copy,
    make_customer,
    make_order,
    make_shop,
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


def _stages_of_a_chunk(sessions, gateways, clock, copies: int) -> list[list[str]]:
    """The statements each transaction of a chunk of ``copies`` placing copies sent (its
    gateway calls, one ledger write per copy, left out), by transaction."""
    with sessions.begin() as s:
        shops = [make_shop(s) for _ in range(copies)]
    ids = [
        create_copy(sessions, shop.source.id, place_target_order=True, reuse_wallet=True).id
        for shop in shops
    ]
    with counting_statements() as statements:
        ran = runs.execute(sessions, ids, gateways=gateways, clock=clock)
    assert ran.outcome == dict.fromkeys(ids, Outcome.COMPLETED)
    transactions: list[list[str]] = []
    for statement in statements:
        if "test_gateway_charges" in statement:
            continue
        if statement.startswith("SAVEPOINT"):  # the tests' sessions: a transaction each
            transactions.append([])
        elif transactions and not statement.startswith("RELEASE"):
            transactions[-1].append(_verb(statement))
    return transactions


def test_each_stage_sends_the_same_statements_for_one_copy_and_for_200(sessions, gateways, clock):
    """The per-stage budget: claim, build + reserve, place and finish, each a fixed list of
    statements whatever the size of the chunk."""
    one = _stages_of_a_chunk(sessions, gateways, clock, 1)
    many = _stages_of_a_chunk(sessions, gateways, clock, 200)

    assert many == one
    claim, build, place = one
    assert len(claim) == 1, claim  # the claim and its history, one statement
    assert len(build) <= 14, build
    assert len(place) <= 8, place
