"""``Idempotency-Key`` on POST: the same key and body return the first response and
make no second record; the same key with another body is a 422; keys belong to an
API key and are kept for 24 hours."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from api.auth import issue_key
from models import IdempotencyKey, Mode, OrderCopy, Sku, db, utcnow
from tests.api.conftest import Api
from tests.api.errors import assert_error
from tests.api.shop import build_shop


@pytest.fixture
def order_id(api):
    return build_shop(api).order["id"]


def document(order_id, **attributes):
    return {
        "data": {
            "type": "order_copies",
            "attributes": attributes,
            "relationships": {"source_order": {"data": {"type": "orders", "id": order_id}}},
        }
    }


def rows(model):
    with db.sessions().begin() as session:
        return session.scalar(select(func.count()).select_from(model))


def post(api, order_id, key, **attributes):
    return api.post("/api/order_copies", document(order_id, **attributes), {"Idempotency-Key": key})


def test_the_same_key_and_body_return_the_first_response_and_one_copy(api, order_id):
    first = post(api, order_id, "checkout-42", reference="R1")
    second = post(api, order_id, "checkout-42", reference="R1")

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert rows(OrderCopy) == 1


def test_a_replay_returns_the_first_response_even_after_the_copy_changed(api, order_id):
    first = post(api, order_id, "checkout-42")
    api.update("order_copies", first.json()["data"]["id"], {"reference": "later"})

    again = post(api, order_id, "checkout-42")

    assert again.json() == first.json()
    assert again.json()["data"]["attributes"]["reference"] is None


def test_the_same_key_with_another_body_is_a_422(api, order_id):
    post(api, order_id, "checkout-42", reference="R1")

    response = post(api, order_id, "checkout-42", reference="R2")

    assert_error(response, 422, parameter="Idempotency-Key", code="IDEMPOTENCY_KEY_REUSED")
    assert rows(OrderCopy) == 1


def test_the_same_key_on_another_resource_is_a_422(api, order_id):
    post(api, order_id, "checkout-42")

    response = api.post(
        "/api/skus",
        {
            "data": {
                "type": "skus",
                "attributes": {
                    "code": "X",
                    "name": "X",
                    "unit_amount_cents": 1,
                    "currency_code": "USD",
                },
            }
        },
        {"Idempotency-Key": "checkout-42"},
    )

    assert_error(response, 422, code="IDEMPOTENCY_KEY_REUSED")


def test_other_keys_make_other_copies(api, order_id):
    first = post(api, order_id, "checkout-42")
    second = post(api, order_id, "checkout-43")
    third = api.post("/api/order_copies", document(order_id))

    assert len({r.json()["data"]["id"] for r in (first, second, third)}) == 3
    assert rows(OrderCopy) == 3


def test_keys_belong_to_an_api_key(api, http, committed, order_id):
    with committed.begin() as session:
        _, token = issue_key(session, name="another test key", mode=Mode.TEST)
    other = Api(http, token)

    mine = post(api, order_id, "checkout-42")
    theirs = post(other, order_id, "checkout-42")

    assert theirs.status_code == 201
    assert theirs.json()["data"]["id"] != mine.json()["data"]["id"]
    assert rows(OrderCopy) == 2
    assert rows(IdempotencyKey) == 2


def test_a_refused_request_is_not_remembered(api, order_id):
    refused = post(api, order_id, "checkout-42", reference="r" * 256)

    accepted = post(api, order_id, "checkout-42", reference="fixed")

    assert refused.status_code == 422
    assert accepted.status_code == 201
    assert rows(OrderCopy) == 1


def test_keys_are_kept_for_24_hours(api, order_id):
    first = post(api, order_id, "checkout-42")
    with db.sessions().begin() as session:
        session.execute(
            update(IdempotencyKey).values(created_at=utcnow() - timedelta(hours=23, minutes=50))
        )
    kept = post(api, order_id, "checkout-42")
    with db.sessions().begin() as session:
        session.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(hours=25)))

    expired = post(api, order_id, "checkout-42")

    assert kept.json() == first.json()
    assert expired.status_code == 201
    assert expired.json()["data"]["id"] != first.json()["data"]["id"]
    assert rows(OrderCopy) == 2
    assert rows(IdempotencyKey) == 1


def test_any_post_takes_a_key(api):
    sku = {
        "data": {
            "type": "skus",
            "attributes": {
                "code": "CAP",
                "name": "Cap",
                "unit_amount_cents": 900,
                "currency_code": "USD",
            },
        }
    }

    first = api.post("/api/skus", sku, {"Idempotency-Key": "sku-cap"})
    again = api.post("/api/skus", sku, {"Idempotency-Key": "sku-cap"})

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert rows(Sku) == 1


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_a_key_must_be_1_to_255_characters(api, order_id, key):
    assert_error(post(api, order_id, key), 400, parameter="Idempotency-Key")
    assert rows(OrderCopy) == 0


def test_a_concurrent_twin_that_loses_the_race_replays_the_winner(api, order_id, monkeypatch):
    """Both requests missed each other's key; the second one's insert of the key fails,
    its copy is rolled back, and it answers with the first one's response."""
    from api import idempotency

    first = post(api, order_id, "checkout-42")
    real_replay = idempotency.replay
    calls = []

    def replay_missing_the_twin_once(*args):
        calls.append(args)
        return None if len(calls) == 1 else real_replay(*args)

    monkeypatch.setattr(idempotency, "replay", replay_missing_the_twin_once)

    second = post(api, order_id, "checkout-42")

    assert len(calls) == 2
    assert second.status_code == 201
    assert second.json() == first.json()
    assert rows(OrderCopy) == 1
