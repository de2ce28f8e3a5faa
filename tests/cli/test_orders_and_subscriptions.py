"""``ordercopy orders list|show`` and ``ordercopy subscriptions list|show|activate|deactivate|
cancel|skip``: pages, JSON, ids only, modes, and the moves a subscription may make."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cli.main import app
from copying.orders import placing
from copying.orders.gateways import Gateways
from models import Mode, Order, OrderSubscription, SubscriptionStatus, utcnow
from tests.factories import (
    Line,
    make_customer,
    make_order,
    make_sku,
    make_subscription,
    make_wallet_entry,
)


@dataclass
class World:
    pending: Order
    placed: Order
    live: Order
    active: OrderSubscription
    inactive: OrderSubscription


@pytest.fixture
def world(committed: sessionmaker[Session], gateways: Gateways) -> World:
    """Two test orders (a pending one, then a placed one), a live one, two subscriptions."""
    with committed.begin() as session:
        sku = make_sku(session, stock=10)
        customer = make_customer(session)
        entry = make_wallet_entry(session, customer)
        pending = make_order(session, [Line(sku, 1)], customer=customer, wallet_entry=entry)
        placed = make_order(session, [Line(sku, 2)], customer=customer, wallet_entry=entry)
        live = make_order(session, [Line(make_sku(session, mode=Mode.LIVE))], mode=Mode.LIVE)
    assert placing.place_order(committed, placed.id, Mode.TEST, gateways=gateways) == []
    soon = utcnow() + timedelta(days=1)
    with committed.begin() as session:
        active = make_subscription(session, pending, starts_at=soon)
        inactive = make_subscription(
            session, placed, starts_at=soon, status=SubscriptionStatus.INACTIVE
        )
        placed = session.get_one(Order, placed.id)
    return World(pending, placed, live, active, inactive)


def _run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_orders_list_newest_first_in_pages_and_modes(runner: CliRunner, world: World):
    assert _run(runner, "orders", "list", "-q").split() == [world.placed.id, world.pending.id]
    assert _run(runner, "orders", "list", "-q", "--limit", "1", "--page", "2").split() == [
        world.pending.id
    ]
    assert _run(runner, "orders", "list", "-q", "--status", "placed").split() == [world.placed.id]
    assert _run(runner, "orders", "list", "-q", "--mode", "live").split() == [world.live.id]

    table = _run(runner, "orders", "list")
    assert "orders (test)" in table
    assert str(world.placed.number) in table

    rows = json.loads(_run(runner, "orders", "list", "--json"))
    assert [(row["id"], row["status"]) for row in rows] == [
        (world.placed.id, "placed"),
        (world.pending.id, "pending"),
    ]


def test_orders_show_one_order_and_refuses_another_modes(runner: CliRunner, world: World):
    shown = json.loads(_run(runner, "orders", "show", world.placed.id, "--json"))
    assert (shown["id"], shown["status"], shown["total_amount_cents"]) == (
        world.placed.id,
        "placed",
        world.placed.total_amount_cents,
    )

    result = runner.invoke(app, ["orders", "show", world.live.id])
    assert result.exit_code != 0
    assert f"order {world.live.id} does not exist in test mode" in result.output


def test_subscriptions_list_and_show(runner: CliRunner, world: World):
    assert _run(runner, "subscriptions", "list", "-q").split() == [
        world.inactive.id,
        world.active.id,
    ]
    assert _run(runner, "subscriptions", "list", "-q", "--status", "active").split() == [
        world.active.id
    ]
    assert "order subscriptions (test)" in _run(runner, "subscriptions", "list")
    shown = json.loads(_run(runner, "subscriptions", "show", world.active.id, "--json"))
    assert (shown["id"], shown["status"]) == (world.active.id, "active")


def test_subscriptions_move_as_their_rules_allow(
    runner: CliRunner, world: World, committed: sessionmaker[Session]
):
    _run(runner, "subscriptions", "deactivate", world.active.id)
    _run(runner, "subscriptions", "activate", world.inactive.id)
    _run(runner, "subscriptions", "cancel", world.active.id)
    refused = runner.invoke(app, ["subscriptions", "activate", world.active.id])

    assert refused.exit_code != 0
    assert "cancelled" in refused.output
    with committed.begin() as session:
        statuses = {
            s.id: s.status
            for s in (
                session.get_one(OrderSubscription, world.active.id),
                session.get_one(OrderSubscription, world.inactive.id),
            )
        }
    assert statuses == {
        world.active.id: SubscriptionStatus.CANCELLED,
        world.inactive.id: SubscriptionStatus.ACTIVE,
    }


def test_skip_moves_the_next_run_once_and_is_refused_unless_active(
    runner: CliRunner, world: World, committed: sessionmaker[Session]
):
    with committed.begin() as session:
        before = session.get_one(OrderSubscription, world.active.id).next_run_at

    said = _run(runner, "subscriptions", "skip", world.active.id)
    refused = runner.invoke(app, ["subscriptions", "skip", world.inactive.id])

    assert f"skipped the next run of order subscription {world.active.id}: active" in said
    assert refused.exit_code != 0
    assert "only an active subscription skips" in refused.output
    with committed.begin() as session:
        after = session.get_one(OrderSubscription, world.active.id).next_run_at
    assert before is not None
    assert after is not None
    assert after > before
