"""The chaos suite's external gateway oracle (tests/chaos/external.py) on real rows: an order
placed through the example endpoint over HTTP agrees with the endpoint's ledger file, and
a hold released behind our back, or an authorization we record as voided while the
endpoint still holds it, is caught."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import update

from copying.orders import placing
from copying.orders.gateways import TestGateway
from models import Mode, Order, PaymentAuthorization, db
from tests.chaos import external
from tests.factories import make_shop
from tests.payments.endpoint import Endpoint
from tests.payments.test_external_gateway import add_gateway
from worker.external_gateways import GatewayDirectory

pytestmark = pytest.mark.slow


def placed(committed, gateway_id: str) -> str:
    with committed.begin() as session:
        shop = make_shop(session, token="tok_ext_ok")
        shop.entry.gateway = gateway_id
        session.execute(
            update(Order).where(Order.id == shop.source.id).values(payment_gateway=gateway_id)
        )
        order_id = shop.source.id
    gateways = GatewayDirectory(TestGateway(db.engine), db.sessions)
    assert placing.place_order(committed, order_id, Mode.TEST, gateways=gateways) == []
    return order_id


def ledger_of(endpoint: Endpoint) -> Path:
    return Path(endpoint.env["EXTERNAL_GATEWAY_LEDGER"])


def found(committed, gateway_id: str, endpoint: Endpoint) -> dict[str, list[str]]:
    with committed.begin() as session:
        result = external.check(session, gateway_id, ledger_of(endpoint))
    return {name: sentences for name, sentences in result.items() if sentences}


def test_a_placed_order_agrees_and_each_disagreement_is_caught(committed, endpoint):
    gateway_id = add_gateway(committed, endpoint.urls(), endpoint.secret)
    order_id = placed(committed, gateway_id)
    [hold] = endpoint.transactions("authorize")
    assert found(committed, gateway_id, endpoint) == {}

    # The endpoint released the hold, and we never asked.
    with sqlite3.connect(ledger_of(endpoint)) as ledger:
        ledger.execute("UPDATE transactions SET voided = 1")
    [sentence] = found(committed, gateway_id, endpoint)["external_holds_agree"]
    assert f"is recorded as authorized ({hold['amount_cents']} cents)" in sentence
    assert "0 live holds" in sentence

    # We record it as voided, the endpoint still holds it.
    with sqlite3.connect(ledger_of(endpoint)) as ledger:
        ledger.execute("UPDATE transactions SET voided = 0")
    with committed.begin() as session:
        session.execute(
            update(PaymentAuthorization)
            .where(PaymentAuthorization.order_id == order_id)
            .values(status="voided")
        )
    [sentence] = found(committed, gateway_id, endpoint)["external_holds_agree"]
    assert f"order {order_id} records as voided" in sentence
