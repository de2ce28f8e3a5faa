"""``PATCH /api/order_copies/{id}`` with ``_abort``: a pending copy becomes ``aborted`` and
never runs; from any other status it is a 409 and nothing changes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from api.app import app
from copying.copies import copy_states
from copying.runs import Outcome
from models import utcnow
from tests.api.errors import assert_error
from tests.api.shop import build_shop, create_copy
from tests.runs import execute_one


def test_abort_moves_a_pending_copy_to_aborted_for_good(api, shop, committed, gateways):
    copy = create_copy(api, shop.order["id"])

    response = api.update("order_copies", copy["id"], {"_abort": True, "reference": "stop"})

    assert response.status_code == 200
    attributes = response.json()["data"]["attributes"]
    assert (attributes["status"], attributes["reference"]) == ("aborted", "stop")
    assert attributes["started_at"] is attributes["completed_at"] is attributes["failed_at"] is None
    # A doorbell still queued for it finds nothing to claim.
    assert execute_one(committed, copy["id"], gateways=gateways) == Outcome.NOT_CLAIMED
    assert api.retrieve("order_copies", copy["id"])["attributes"]["status"] == "aborted"
    (latest, *_) = api.get(f"/api/order_copies/{copy['id']}/events").json()["data"]
    assert (latest["attributes"]["kind"], latest["attributes"]["by"]) == ("aborted", "api")


def _copy_in(status, api, shop, committed, gateways):
    if status == "failed":
        api.update("customer_payment_sources", shop.entry["id"], {"disabled": True})
    copy = create_copy(api, shop.order["id"])
    if status in ("completed", "failed"):
        execute_one(committed, copy["id"], gateways=gateways)
    elif status == "in_progress":
        with committed.begin() as session:
            assert copy_states.claim(session, copy["id"], utcnow(), timedelta(minutes=5), 8)
    elif status == "aborted":
        assert api.update("order_copies", copy["id"], {"_abort": True}).status_code == 200
    assert api.retrieve("order_copies", copy["id"])["attributes"]["status"] == status
    return copy


@pytest.mark.parametrize("status", ["in_progress", "completed", "failed", "aborted"])
def test_abort_from_any_status_but_pending_is_a_409_and_changes_nothing(
    api, shop, committed, gateways, status
):
    copy = _copy_in(status, api, shop, committed, gateways)
    events = api.ids(f"/api/order_copies/{copy['id']}/events")

    response = api.update("order_copies", copy["id"], {"_abort": True, "reference": "nope"})

    assert_error(
        response,
        409,
        code="INVALID_STATUS",
        detail=f"is {status}: only pending copies can be aborted",
    )
    attributes = api.retrieve("order_copies", copy["id"])["attributes"]
    assert (attributes["status"], attributes["reference"]) == (status, None)
    assert api.ids(f"/api/order_copies/{copy['id']}/events") == events


def test_abort_false_changes_nothing(api, shop):
    copy = create_copy(api, shop.order["id"])

    response = api.update("order_copies", copy["id"], {"_abort": False})

    assert response.status_code == 200
    assert response.json()["data"]["attributes"]["status"] == "pending"


def test_abort_of_a_copy_of_the_other_mode_is_a_404(api, live_api):
    live = build_shop(live_api, code="LIVE")
    copy = create_copy(live_api, live.order["id"])

    assert_error(api.update("order_copies", copy["id"], {"_abort": True}), 404)
    assert live_api.retrieve("order_copies", copy["id"])["attributes"]["status"] == "pending"


def test_aborted_copies_are_filterable_and_documented(api, shop):
    pending = create_copy(api, shop.order["id"])
    aborted = create_copy(api, shop.order["id"])
    api.update("order_copies", aborted["id"], {"_abort": True})

    assert api.ids("/api/order_copies", **{"filter[q][status_eq]": "aborted"}) == [aborted["id"]]
    assert api.ids(
        "/api/order_copies", **{"filter[q][status_in]": "aborted,pending", "sort": "created_at"}
    ) == [pending["id"], aborted["id"]]
    document = app.openapi()
    filters = document["components"]["parameters"]["order_copies_filter"]["schema"]
    assert "aborted" in filters["patternProperties"]["^(status)_(eq|not_eq)$"]["enum"]
    copies = document["components"]["schemas"]["order_copies_resource"]["properties"]
    assert "aborted" in copies["attributes"]["properties"]["status"]["description"]
    body = document["paths"]["/api/order_copies/{id}"]["patch"]["requestBody"]["content"]
    data = body["application/vnd.api+json"]["schema"]["properties"]["data"]["properties"]
    assert "pending" in data["attributes"]["properties"]["_abort"]["description"]
