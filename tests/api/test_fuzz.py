"""Schema-driven fuzzing: schemathesis against the app's own /api/openapi.json.

Every operation gets a bounded, reproducible run (Hypothesis ``derandomize``):
no response may be a 500, break the documented schema (status, content type,
body) or refuse a request the schema says is well formed.

Generated ids rarely exist, so valid ("positive") cases are aimed at a small
world of real records: half of the path ids, every relationship in a body and
PATCH's ``data.id`` are swapped for real ids of the right type.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import BaseModel, ValidationError
from schemathesis.checks import CheckContext
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api import schemas
from api.app import app
from api.errors import MEDIA_TYPE
from api.resources import REGISTRY

EXAMPLES = 8
CONFIG = schemathesis.Config.from_dict(
    {
        "operations": [
            {
                # The coverage phase sends every boundary case of every parameter, whatever
                # max_examples says: for a list's ~200 documented filters that is minutes.
                # Lists keep the examples and fuzzing phases (valid and invalid values of
                # their filters, drawn at random); every other operation gets all phases.
                "include-operation-id-regex": "^(list_resources|related_many)_",
                "phases": {"coverage": {"enabled": False}},
            }
        ]
    }
)
schema = schemathesis.openapi.from_asgi("/api/openapi.json", app, config=CONFIG)


@pytest.fixture
def world(api) -> dict[str, list[str]]:
    """A few real records of each type, built over the API: ids by type."""
    sku = api.create(
        "skus",
        {
            "code": "FUZZ",
            "name": "Fuzz tee",
            "unit_amount_cents": 900,
            "currency_code": "USD",
            "stock_quantity": 50,
        },
    )
    customer = api.create("customers", {"email": "fuzz@example.com"})
    entry = api.create(
        "customer_payment_sources",
        {"payment_source_token": "tok_visa"},
        {"customer": ("customers", customer["id"])},
    )
    address = api.create(
        "addresses", {"line_1": "1 Main St", "city": "Austin", "country_code": "US"}
    )
    order = api.create(
        "orders",
        {"currency_code": "USD", "customer_email": "fuzz@example.com"},
        {
            "customer": ("customers", customer["id"]),
            "billing_address": ("addresses", address["id"]),
            "shipping_address": ("addresses", address["id"]),
        },
    )
    line = api.create(
        "line_items", {"sku_code": "FUZZ", "quantity": 1}, {"order": ("orders", order["id"])}
    )
    copy = api.create("order_copies", {}, {"source_order": ("orders", order["id"])})
    return {
        "skus": [sku["id"]],
        "customers": [customer["id"]],
        "customer_payment_sources": [entry["id"]],
        "addresses": [address["id"]],
        "orders": [order["id"]],
        "line_items": [line["id"]],
        "order_copies": [copy["id"]],
    }


def _aim(case: Any, world: dict[str, list[str]]) -> None:
    """Point a valid case at real records (only where the generated value is a bare id)."""
    type_ = case.operation.path.split("/")[2]
    row_id = case.path_parameters.get("row_id") if case.path_parameters else None
    if isinstance(row_id, str) and len(row_id) % 2 == 0 and world.get(type_):
        case.path_parameters["row_id"] = world[type_][0]
    data = case.body.get("data") if isinstance(case.body, dict) else None
    if not isinstance(data, dict):
        return
    if case.method.upper() == "PATCH" and case.path_parameters:
        data["id"] = case.path_parameters["row_id"]
    for relationship in (data.get("relationships") or {}).values():
        linkage = relationship.get("data") if isinstance(relationship, dict) else None
        if isinstance(linkage, dict) and world.get(linkage.get("type", "")):
            linkage["id"] = world[linkage["type"]][0]


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
    schema is wrong, and so does any 400.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    status = response.status_code
    if status < 400 or status in (401, 404, 409, 503):
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
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_every_operation_matches_its_schema(case, api, world):
    if case.meta is not None and case.meta.generation.mode.is_positive:
        _aim(case, world)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {api.token}", "Accept": MEDIA_TYPE},
        excluded_checks=[positive_data_acceptance],
        additional_checks=[valid_requests_are_accepted],
    )
