"""Schema-driven fuzzing: schemathesis against the app's own /api/openapi.json.

Every operation gets a bounded, reproducible run (Hypothesis ``derandomize``):
no response may be a 500, break the documented schema (status, content type,
body) or refuse a request the schema says is well formed.

Generated ids rarely exist, so valid ("positive") cases are aimed at a small
world of real records (see ``_aim``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import BaseModel, ValidationError
from schemathesis.checks import CheckContext
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import select

from api import schemas
from api.app import app
from api.auth import hash_token
from api.errors import MEDIA_TYPE
from api.resources import REGISTRY
from copying.copies import lifecycle
from copying.orders import placing, targets
from copying.webhooks import signing, topics
from models import (
    ApiKey,
    EventCallback,
    Mode,
    Order,
    OrderSubscriptionItem,
    PaymentAuthorization,
    PaymentTransaction,
    TransactionKind,
    Webhook,
    WebhookEvent,
    new_public_id,
    utcnow,
)
from tests.factories import (
    Line,
    copy_events,
    make_customer,
    make_order,
    make_sku,
    make_subscription,
    make_wallet_entry,
)

#: Per operation: 5 since the API grew to 16 resource types and their related routes
#: (113 operations; the fuzz run took 9 min at 8, beside the suite). The coverage phase
#: ignores it: it sends every boundary case the schema defines, and is most of the run.
EXAMPLES = 5


CONFIG = schemathesis.Config.from_dict(
    {
        "operations": [
            {
                # The coverage phase sends every boundary case of every parameter, whatever
                # max_examples says: for a list's ~200 documented filters that is minutes.
                # A GET /{id}, and each of the 30 routes that read a related record, takes
                # only an id, ``fields`` and ``include``: every PATCH's coverage sends the
                # same boundary cases of the id and of ``fields`` (every type's, on every
                # operation) through the same parsing (``RowId``, ``Routes.parse``), and
                # ``include`` is checked by one function for every type. Those keep the
                # examples and fuzzing phases (valid and invalid values drawn at random);
                # create, update and delete get every phase.
                "include-operation-id-regex": (
                    "^(list_resources|related_many|related_single|linkage|retrieve)_"
                ),
                "phases": {"coverage": {"enabled": False}},
            },
        ]
    }
)
schema = schemathesis.openapi.from_asgi("/api/openapi.json", app, config=CONFIG)
#: The fuzz run's test-mode key (the world fixture stores its hash).
TOKEN = "oc_test_schemathesis"
SKU_CODE = "FUZZ"
#: A public address written as one: a webhook may call it without DNS being asked.
CALLBACK_URL = "https://93.184.215.14/hooks"


@schema.auth()
class TestModeKey:
    """The key, given to schemathesis as auth: so a case that leaves it out on purpose
    (to check for the 401) goes out without it."""

    def get(self, case: Any, context: Any) -> str:
        return TOKEN

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture
def world(committed, gateways) -> dict[str, list[str]]:
    """The fuzz key, and one real record of each type: ids by type; and a placed order,
    which order subscriptions renew. The webhook's event callback is written here (a
    delivery would write it)."""
    with committed.begin() as session:
        session.add(
            ApiKey(id=new_public_id(), name="fuzz", mode=Mode.TEST, token_hash=hash_token(TOKEN))
        )
        sku = make_sku(session, SKU_CODE, stock=50)
        customer = make_customer(session)
        entry = make_wallet_entry(session, customer)
        order = make_order(session, [Line(sku, 1)], customer=customer, wallet_entry=entry)
        placed = make_order(session, [Line(sku, 1)], customer=customer, wallet_entry=entry).id
        # Paid (captured, partly refunded) and voided: the payment transactions' records.
        paid, voided = (
            make_order(session, [Line(sku, 1)], customer=customer, wallet_entry=entry).id
            for _ in range(2)
        )
        ids = {
            "skus": [sku.id],
            "customers": [customer.id],
            "customer_payment_sources": [entry.id],
            "addresses": [order.billing_address_id or ""],
            "orders": [order.id],
            "line_items": [line.id for line in targets.load_lines(session, order.id)],
            "placed_orders": [placed],
        }
    for order_id in (placed, paid, voided):
        assert placing.place_order(committed, order_id, Mode.TEST, gateways=gateways) == []
    placing.capture_order(committed, paid, Mode.TEST, gateways=gateways)
    placing.refund_order(committed, paid, Mode.TEST, 1, field="amount", gateways=gateways)
    assert placing.void_order(committed, voided, Mode.TEST, gateways=gateways) == []
    with committed.begin() as session:
        ids["authorizations"] = list(session.scalars(select(PaymentAuthorization.id)))
        for kind in TransactionKind:
            ids[f"{kind}s"] = list(
                session.scalars(
                    select(PaymentTransaction.id).where(PaymentTransaction.kind == kind)
                )
            )
    with committed.begin() as session:
        subscription = make_subscription(
            session, session.get_one(Order, placed), starts_at=utcnow()
        )
        items = [  # two: a subscription's last item is not deleted
            OrderSubscriptionItem(
                id=new_public_id(),
                mode=Mode.TEST,
                order_subscription_id=subscription.id,
                sku_code=SKU_CODE,
                quantity=1,
                unit_amount_cents=100,
                metadata_={},
            )
            for _ in range(2)
        ]
        session.add_all(items)
        copy = lifecycle.create(
            session,
            mode=Mode.TEST,
            source_order_id=ids["orders"][0],
            order_subscription_id=subscription.id,
        )
        webhook = Webhook(
            id=new_public_id(),
            mode=Mode.TEST,
            topic=topics.COMPLETE,
            callback_url=CALLBACK_URL,
            shared_secret=signing.new_secret(),
        )
        owed = WebhookEvent(
            id=str(uuid.uuid4()),
            mode=Mode.TEST,
            webhook_id=webhook.id,
            topic=topics.COMPLETE,
            resource_type="order_copies",
            resource_id=copy.id,
            next_attempt_at=utcnow(),
        )
        callback = EventCallback(
            id=new_public_id(),
            mode=Mode.TEST,
            webhook_id=webhook.id,
            event_id=owed.id,
            callback_url=CALLBACK_URL,
            payload={"data": {"type": "order_copies", "id": copy.id}},
            response_code=500,
            response_message="Internal Server Error",
        )
        session.add(webhook)
        session.flush()
        session.add(owed)
        session.flush()
        session.add(callback)
        return {
            **ids,
            "order_copies": [copy.id],
            "order_copy_events": [str(event.id) for event in copy_events(session, copy.id)],
            "order_subscriptions": [subscription.id],
            "order_subscription_items": [item.id for item in items],
            "webhooks": [webhook.id],
            "event_callbacks": [callback.id],
        }


def _aim(case: Any, world: dict[str, list[str]]) -> None:
    """Point a valid case at real records, so it gets past "not found" to the real work.

    Three path ids in four become a real id of the path's type; every relationship
    in a body, PATCH's ``data.id``, a SKU line's code and a wallet entry trigger
    name real records; a webhook's callback URL is one it may call; an
    ``Idempotency-Key`` is made unique to its body (Hypothesis draws the same few keys
    for different bodies, which is a 422 by design).
    """
    type_ = case.operation.path.split("/")[2]
    row_id = case.path_parameters.get("id") if case.path_parameters else None
    if isinstance(row_id, str) and len(row_id) % 4 != 3 and world.get(type_):
        case.path_parameters["id"] = world[type_][0]
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str):
        body = json.dumps(case.body, sort_keys=True, default=str).encode()
        case.headers["Idempotency-Key"] = f"{key[:200]}-{hashlib.sha256(body).hexdigest()[:16]}"
    data = case.body.get("data") if isinstance(case.body, dict) else None
    if not isinstance(data, dict):
        return
    if case.method.upper() == "PATCH" and case.path_parameters:
        data["id"] = case.path_parameters["id"]
    for relationship in (data.get("relationships") or {}).values():
        linkage = relationship.get("data") if isinstance(relationship, dict) else None
        if isinstance(linkage, dict) and world.get(linkage.get("type", "")):
            linkage["id"] = world[linkage["type"]][0]
    attributes = data.get("attributes")
    if not isinstance(attributes, dict):
        return
    if type_ == "order_subscriptions":
        source = (data.get("relationships") or {}).get("source_order")
        if isinstance(source, dict) and isinstance(source.get("data"), dict):
            source["data"]["id"] = world["placed_orders"][0]
        if isinstance(attributes.get("frequency"), str):
            attributes["frequency"] = "daily"
    if type_ == "webhooks" and isinstance(attributes.get("callback_url"), str):
        attributes["callback_url"] = CALLBACK_URL
    if type_ == "line_items" and attributes.get("item_type") in (None, "skus"):
        attributes["sku_code"] = SKU_CODE
    if type_ == "order_subscription_items" and isinstance(attributes.get("sku_code"), str):
        attributes["sku_code"] = SKU_CODE
    if isinstance(attributes.get("_customer_payment_source_id"), str):
        attributes["_customer_payment_source_id"] = world["customer_payment_sources"][0]


def _body_model(case: Any) -> type[BaseModel] | None:
    type_ = case.operation.path.split("/")[2]
    resource = REGISTRY.get(type_)
    if resource is None:
        return None
    if case.method.upper() == "POST":
        return schemas.create_body(resource)
    if case.method.upper() == "PATCH":
        return schemas.update_body(resource)
    return None


def valid_requests_are_accepted(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    """schemathesis's positive_data_acceptance, knowing what a 422 may mean here.

    A schema-valid request may still break a rule no schema can state: a related
    record that does not exist in this mode, a SKU code already taken, an order
    that cannot be placed. Those are 422s with the request document itself
    valid; a 422 for a document the app's own models reject means the published
    schema is wrong, and so does any 400 but a cursor's (``page[after]``).
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    status = response.status_code
    if status < 400 or status in (404, 409, 503):  # 401: the fuzz key must be good
        return None
    if status == 400 and '"code":"INVALID_CURSOR"' in response.text:
        # page[after]/page[before] take only a cursor the API made (links.next): an opaque
        # string whose validity no schema can state, as a related record's existence.
        return None
    if status == 422:
        model = _body_model(case)
        try:
            if model is not None:
                model.model_validate(case.body)
        except ValidationError as error:
            raise AssertionError(
                f"schema-valid body rejected by the app's own model: {error}"
            ) from None
        else:
            return None
    raise AssertionError(f"schema-valid request rejected: {status} {response.text}")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # One world per operation, shared by its examples (they may delete parts of it).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_matches_its_schema(case, world):
    if case.meta is not None and case.meta.generation.mode.is_positive:
        _aim(case, world)
    case.call_and_validate(
        headers={"Accept": MEDIA_TYPE},
        excluded_checks=[positive_data_acceptance],
        additional_checks=[valid_requests_are_accepted],
    )
