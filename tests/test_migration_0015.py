"""Revision 0015 keeps what existing subscriptions do: a failure policy stored empty (the
old default, three retries then deactivate) is spelled out as that schedule, one stored
spelled out is kept; they get numbers in creation order, their source order's customer
email, and ``activate_by_source_order`` false; a subscription made afterwards gets Commerce
Layer's default. On PostgreSQL and on the embedded SQLite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from copying.subscriptions import subscription_states
from copying.subscriptions.subscription_states import FailurePolicy
from migrations import alembic_config, upgrade
from models import Order, OrderSubscription
from models.db import make_engine
from tests.conftest import ADMIN_URL, DATABASE_NAME, DATABASE_URL

OLD_DEFAULT = {"retry_after_seconds": [86400, 259200, 604800], "final_action": "deactivate"}
CUSTOM = {"retry_after_seconds": [3600], "final_action": "cancel"}
MADE = datetime(2026, 11, 1, 9, tzinfo=UTC)


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ordercopy.db'}"
        return
    name = f"{DATABASE_NAME}_m15"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield DATABASE_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _insert_before(engine: Engine) -> None:
    """A customer, a wallet entry, a placed order and two subscriptions as 0014 had them:
    one whose policy was stored empty, one with its own."""
    json_type = "CAST(:policy AS jsonb)" if engine.dialect.name == "postgresql" else ":policy"
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO customers (id, mode, email, metadata, created_at, updated_at)"
                " VALUES ('cust000001', 'test', 'ada@example.com', '{}', :t, :t)"
            ),
            {"t": MADE},
        )
        c.execute(
            text(
                "INSERT INTO orders (id, mode, number, status, payment_status,"
                " fulfillment_status, customer_id, customer_email, currency_code,"
                " subtotal_amount_cents, shipping_amount_cents, adjustment_amount_cents,"
                " total_amount_cents, metadata, created_at, updated_at)"
                " VALUES ('order00001', 'test', 10000, 'placed', 'authorized', 'unfulfilled',"
                " 'cust000001', 'ada@example.com', 'EUR', 1000, 0, 0, 1000, '{}', :t, :t)"
            ),
            {"t": MADE},
        )
        for n, policy in enumerate(({}, CUSTOM)):
            c.execute(
                text(
                    "INSERT INTO order_subscriptions (id, mode, source_order_id, customer_id,"
                    " frequency, status, starts_at, next_run_at, occurrencies, errors_count,"
                    " place_target_order, catch_up, failure_policy, metadata, created_at,"
                    f" updated_at) VALUES (:id, 'test', 'order00001', 'cust000001', 'monthly',"
                    f" 'active', :t, :next, 0, 0, true, false, {json_type}, '{{}}', :made, :made)"
                ),
                {
                    "id": f"subscr000{n}",
                    "t": MADE,
                    "next": MADE + timedelta(days=30),
                    "policy": json.dumps(policy),
                    "made": MADE + timedelta(minutes=n),
                },
            )


def test_existing_subscriptions_keep_their_behaviour_and_new_ones_get_commerce_layers(url):
    upgrade(url, "0014")
    engine = make_engine(url)
    try:
        _insert_before(engine)
        engine.dispose()
        command.upgrade(alembic_config(url), "0015")
        engine = make_engine(url)
        with Session(engine) as session:
            old, custom = (session.get_one(OrderSubscription, f"subscr000{n}") for n in range(2))
            assert old.failure_policy == OLD_DEFAULT
            assert custom.failure_policy == CUSTOM
            assert (old.number, custom.number) == (1000, 1001)
            assert old.customer_email == custom.customer_email == "ada@example.com"
            assert old.activate_by_source_order is False
            assert (old.renewal_alert_period, old.renewal_alert_at) == (1, None)
            assert old.next_attempt_at is None

            made = subscription_states.create(
                session,
                session.get_one(Order, "order00001"),
                frequency="monthly",
                now=MADE + timedelta(days=1),
                activate_by_source_order=False,
            )
            session.flush()
            assert made.failure_policy == FailurePolicy().as_json()
            assert made.number == 1002
            assert made.activate_by_source_order is False
            session.rollback()
    finally:
        engine.dispose()
