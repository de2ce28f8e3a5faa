"""``/api/order_copies``: the resource of order_copy.md, created, read, updated, retried
and deleted over HTTP (copies run here by calling the engine, not a worker)."""

from __future__ import annotations

import contextlib
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

import worker.publisher
from copying.copies import copy_states, lifecycle
from copying.runs import Outcome
from models import CopyStatus, Order, OrderCopy, db, utcnow
from tests.api.errors import assert_error
from tests.api.shop import TIMESTAMP, build_shop, create_copy, run
from tests.factories import make_subscription
from worker.app import COPY_BATCH_TASK

BASE = "http://testserver/api"
ATTRIBUTES = {
    "copy_type",
    "status",
    "started_at",
    "completed_at",
    "failed_at",
    "place_target_order",
    "cancel_source_order",
    "reuse_wallet",
    "skip_errors",
    "apply_promotions",
    "ignore_invalid_coupon",
    "errors_log",
    "errors_count",
    "created_at",
    "updated_at",
    "reference",
    "reference_origin",
    "metadata",
}


def test_create_returns_a_pending_copy_with_every_field_of_order_copy_md(api, shop):
    response = api.post(
        "/api/order_copies",
        {
            "data": {
                "type": "order_copies",
                "relationships": {
                    "source_order": {"data": {"type": "orders", "id": shop.order["id"]}}
                },
            }
        },
    )

    assert response.status_code == 201
    assert response.headers["content-type"] == "application/vnd.api+json"
    copy = response.json()["data"]
    assert copy["type"] == "order_copies"
    assert re.fullmatch(r"[A-Za-z0-9]{10}", copy["id"])
    assert copy["links"] == {"self": f"{BASE}/order_copies/{copy['id']}"}
    assert copy["meta"] == {"mode": "test"}
    attributes = copy["attributes"]
    assert set(attributes) == ATTRIBUTES
    assert attributes["status"] == "pending"
    assert attributes["started_at"] is attributes["completed_at"] is attributes["failed_at"] is None
    assert (
        attributes["place_target_order"],
        attributes["cancel_source_order"],
        attributes["reuse_wallet"],
        attributes["skip_errors"],
    ) == (False, False, True, False)
    assert attributes["errors_log"] == {}
    assert attributes["errors_count"] == 0
    assert TIMESTAMP.match(attributes["created_at"])
    assert TIMESTAMP.match(attributes["updated_at"])
    assert attributes["reference"] is attributes["reference_origin"] is None
    assert attributes["metadata"] == {}
    assert set(copy["relationships"]) == {
        "source_order",
        "target_order",
        "order_subscription",
        "events",
    }
    for name, relationship in copy["relationships"].items():
        assert relationship == {
            "links": {
                "self": f"{BASE}/order_copies/{copy['id']}/relationships/{name}",
                "related": f"{BASE}/order_copies/{copy['id']}/{name}",
            }
        }


def test_create_takes_the_options_reference_and_metadata(api, shop):
    copy = create_copy(
        api,
        shop.order["id"],
        place_target_order=True,
        cancel_source_order=True,
        reuse_wallet=False,
        skip_errors=True,
        reference="ERP-1",
        reference_origin="erp",
        metadata={"batch": 7, "tags": ["weekly"]},
    )

    attributes = api.retrieve("order_copies", copy["id"])["attributes"]
    assert attributes["place_target_order"] is True
    assert attributes["cancel_source_order"] is True
    assert attributes["reuse_wallet"] is False
    assert attributes["skip_errors"] is True
    assert (attributes["reference"], attributes["reference_origin"]) == ("ERP-1", "erp")
    assert attributes["metadata"] == {"batch": 7, "tags": ["weekly"]}


class Published:
    """What the publisher sent, and whether the copy was committed when it did."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bool]] = []

    def __call__(self) -> list[tuple[str, bool]]:
        """The messages, once the API's publisher thread sent all it was handed."""
        assert worker.publisher.doorbells.flush()
        return self.messages


@pytest.fixture
def published(monkeypatch):
    sent = Published()

    class Broker:
        def producer_or_acquire(self):
            return contextlib.nullcontext()

        def send_task(self, name, args, **options):
            with db.sessions().begin() as session:  # another transaction: sees only commits
                for copy_id in args[0] if name == COPY_BATCH_TASK else args:
                    sent.messages.append((copy_id, session.get(OrderCopy, copy_id) is not None))

    monkeypatch.setattr(worker.publisher, "app", Broker())
    return sent


def test_create_publishes_the_copy_after_commit(api, shop, published):
    copy = create_copy(api, shop.order["id"])

    assert published() == [(copy["id"], True)]


def test_the_app_stopping_sends_the_doorbells_its_requests_rang(published, monkeypatch):
    from api.app import app

    monkeypatch.setattr(worker.publisher, "GATHER_SECONDS", 0.5)
    with TestClient(app):
        worker.publisher.doorbells.ring(["first"])
        assert published() == [("first", False)]
        worker.publisher.doorbells.ring(["second"])  # waits for the next 0.5 s to go

    assert published.messages == [("first", False), ("second", False)]


def test_a_refused_create_publishes_nothing(api, published):
    response = api.post(
        "/api/order_copies",
        {
            "data": {
                "type": "order_copies",
                "relationships": {"source_order": {"data": {"type": "orders", "id": "missing"}}},
            }
        },
    )

    assert_error(response, 422, pointer="/data/relationships/source_order")
    assert published() == []


def test_update_changes_reference_reference_origin_and_metadata(api, shop):
    copy = create_copy(api, shop.order["id"], reference="old")

    response = api.update(
        "order_copies",
        copy["id"],
        {"reference": "new", "reference_origin": "crm", "metadata": {"note": "checked"}},
    )

    assert response.status_code == 200
    attributes = response.json()["data"]["attributes"]
    assert (attributes["reference"], attributes["reference_origin"]) == ("new", "crm")
    assert attributes["metadata"] == {"note": "checked"}
    assert attributes["status"] == "pending"
    assert api.retrieve("order_copies", copy["id"])["attributes"]["reference"] == "new"


@pytest.mark.parametrize(
    "attribute",
    [
        "status",
        "place_target_order",
        "cancel_source_order",
        "reuse_wallet",
        "skip_errors",
        "errors_count",
        "errors_log",
        "started_at",
    ],
)
def test_update_refuses_every_other_attribute(api, shop, attribute):
    copy = create_copy(api, shop.order["id"])
    value = copy["attributes"][attribute]

    response = api.update("order_copies", copy["id"], {attribute: value, "reference": "x"})

    assert_error(response, 422, pointer=f"/data/attributes/{attribute}", detail="read-only")
    assert api.retrieve("order_copies", copy["id"])["attributes"]["reference"] is None


def test_update_refuses_to_move_the_source_order(api, shop):
    other = build_shop(api, code="CAP", place=False)
    copy = create_copy(api, shop.order["id"])

    response = api.update(
        "order_copies", copy["id"], relationships={"source_order": ("orders", other.order["id"])}
    )

    assert_error(response, 422, pointer="/data/relationships/source_order")


def test_retry_puts_a_failed_copy_back_to_pending_and_publishes_it(
    api, shop, committed, gateways, published
):
    api.update("customer_payment_sources", shop.entry["id"], {"disabled": True})
    copy = create_copy(api, shop.order["id"])
    assert run(committed, gateways, copy["id"]) == Outcome.FAILED
    failed = api.retrieve("order_copies", copy["id"])["attributes"]
    assert failed["status"] == "failed"
    assert failed["errors_count"] == 1
    assert failed["failed_at"] is not None
    published().clear()

    response = api.update("order_copies", copy["id"], {"_retry": True, "reference": "retried"})

    assert response.status_code == 200
    attributes = response.json()["data"]["attributes"]
    assert attributes["status"] == "pending"
    assert (attributes["errors_log"], attributes["errors_count"]) == ({}, 0)
    assert attributes["failed_at"] is None
    assert attributes["reference"] == "retried"
    assert published() == [(copy["id"], True)]


def test_a_retried_copy_runs_again_and_completes_once_the_wallet_is_fixed(
    api, shop, committed, gateways
):
    api.update("customer_payment_sources", shop.entry["id"], {"expires_on": "2001-01-31"})
    copy = create_copy(api, shop.order["id"])
    run(committed, gateways, copy["id"])
    log = api.retrieve("order_copies", copy["id"])["attributes"]["errors_log"]
    assert log == {"payment_source": [f"wallet entry {shop.entry['id']} expired on 2001-01-31"]}
    api.update("customer_payment_sources", shop.entry["id"], {"expires_on": "2099-01-31"})

    assert api.update("order_copies", copy["id"], {"_retry": True}).status_code == 200
    assert run(committed, gateways, copy["id"]) == Outcome.COMPLETED

    copy = api.retrieve("order_copies", copy["id"], include="target_order")
    assert copy["attributes"]["status"] == "completed"
    assert copy["relationships"]["target_order"]["data"]["type"] == "orders"


@pytest.mark.parametrize("status", ["pending", "in_progress", "completed"])
def test_retry_from_any_status_but_failed_is_a_409_and_changes_nothing(
    api, shop, committed, gateways, status
):
    copy = create_copy(api, shop.order["id"])
    if status == "completed":
        assert run(committed, gateways, copy["id"]) == Outcome.COMPLETED
    if status == "in_progress":
        with committed.begin() as session:
            assert copy_states.claim(session, copy["id"], utcnow(), timedelta(minutes=5), 8)

    response = api.update("order_copies", copy["id"], {"_retry": True, "reference": "nope"})

    assert_error(response, 409, code="INVALID_STATUS", detail=f"is {status}")
    attributes = api.retrieve("order_copies", copy["id"])["attributes"]
    assert attributes["status"] == status
    assert attributes["reference"] is None


def test_retry_false_changes_nothing(api, shop):
    copy = create_copy(api, shop.order["id"])

    response = api.update("order_copies", copy["id"], {"_retry": False})

    assert response.status_code == 200
    assert response.json()["data"]["attributes"]["status"] == "pending"


def count(model, **where):
    with db.sessions().begin() as session:
        return session.scalar(select(func.count()).select_from(model).filter_by(**where))


@pytest.mark.parametrize("status", ["pending", "completed", "failed"])
def test_delete_removes_the_copy_but_never_its_orders(api, shop, committed, gateways, status):
    if status == "failed":
        api.update("skus", shop.sku["id"], {"discontinued": True})
    copy = create_copy(api, shop.order["id"])
    if status != "pending":
        run(committed, gateways, copy["id"])
    copy = api.retrieve("order_copies", copy["id"], include="target_order")
    assert copy["attributes"]["status"] == status
    orders_before = count(Order)

    response = api.delete(f"/api/order_copies/{copy['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert_error(api.get(f"/api/order_copies/{copy['id']}"), 404)
    assert count(OrderCopy) == 0
    assert count(Order) == orders_before
    assert api.get(f"/api/orders/{shop.order['id']}").status_code == 200


def test_delete_refuses_a_copy_in_progress(api, shop, committed):
    copy = create_copy(api, shop.order["id"])
    with committed.begin() as session:
        assert copy_states.claim(session, copy["id"], utcnow(), timedelta(minutes=5), 8)

    response = api.delete(f"/api/order_copies/{copy['id']}")

    assert_error(response, 409, code="INVALID_STATUS", detail="in_progress")
    assert api.retrieve("order_copies", copy["id"])["attributes"]["status"] == "in_progress"


def test_related_orders_of_a_copy(api, shop, committed, gateways):
    copy = create_copy(api, shop.order["id"])

    source = api.get(f"/api/order_copies/{copy['id']}/source_order")
    target = api.get(f"/api/order_copies/{copy['id']}/target_order")
    assert source.status_code == target.status_code == 200
    assert source.json()["data"]["id"] == shop.order["id"]
    assert source.json()["data"]["type"] == "orders"
    assert target.json() == {"data": None}

    run(committed, gateways, copy["id"])
    target = api.get(f"/api/order_copies/{copy['id']}/target_order").json()["data"]
    assert target["type"] == "orders"
    assert target["id"] != shop.order["id"]
    linkage = api.get(f"/api/order_copies/{copy['id']}/relationships/target_order").json()
    assert linkage == {"data": {"type": "orders", "id": target["id"]}}


def test_the_order_subscription_of_a_renewal_copy(api, shop, committed):
    with committed.begin() as session:
        subscription = make_subscription(
            session, session.get_one(Order, shop.order["id"]), starts_at=utcnow()
        )
        renewal = lifecycle.create(
            session,
            mode=subscription.mode,
            source_order_id=shop.order["id"],
            order_subscription_id=subscription.id,
        )

    response = api.get(f"/api/order_copies/{renewal.id}/order_subscription")
    plain = create_copy(api, shop.order["id"])

    assert response.status_code == 200
    assert response.json()["data"]["type"] == "order_subscriptions"
    assert response.json()["data"]["id"] == subscription.id
    assert api.get(f"/api/order_copies/{plain['id']}/order_subscription").json() == {"data": None}
    listed = api.ids(f"/api/order_subscriptions/{subscription.id}/order_copies")
    assert listed == [renewal.id]


def test_a_completed_copy_reads_back_its_run(api, shop, committed, gateways):
    copy = create_copy(api, shop.order["id"], place_target_order=True)

    assert run(committed, gateways, copy["id"]) == Outcome.COMPLETED

    attributes = api.retrieve("order_copies", copy["id"])["attributes"]
    assert attributes["status"] == "completed"
    assert TIMESTAMP.match(attributes["started_at"])
    assert TIMESTAMP.match(attributes["completed_at"])
    assert attributes["failed_at"] is None
    assert attributes["started_at"] <= attributes["completed_at"]
    assert (attributes["errors_log"], attributes["errors_count"]) == ({}, 0)
    with db.sessions().begin() as session:
        assert session.get_one(OrderCopy, copy["id"]).status == CopyStatus.COMPLETED
