"""``GET /api/order_copies/{id}/events``: a copy's history over JSON:API, newest first
(copies run here by calling the engine, not a worker)."""

from __future__ import annotations

import pytest

from copying.runs import Outcome
from models import db
from tests.api.errors import assert_error
from tests.api.shop import TIMESTAMP, build_shop, create_copy, run
from tests.factories import copy_events

BASE = "http://testserver/api"


def failed_retried_completed(api, shop, committed, gateways):
    """A copy that fails (expired wallet entry), is retried over the API once the entry
    is fixed, and completes: its id and the failed run's errors."""
    api.update("customer_payment_sources", shop.entry["id"], {"expires_on": "2001-01-31"})
    copy = create_copy(api, shop.order["id"], place_target_order=True)
    assert run(committed, gateways, copy["id"]) == Outcome.FAILED
    errors = api.retrieve("order_copies", copy["id"])["attributes"]["errors_log"]
    api.update("customer_payment_sources", shop.entry["id"], {"expires_on": "2099-01-31"})
    assert api.update("order_copies", copy["id"], {"_retry": True}).status_code == 200
    assert run(committed, gateways, copy["id"]) == Outcome.COMPLETED
    return copy["id"], errors


def test_events_are_the_copys_history_newest_first(api, shop, committed, gateways):
    copy_id, errors = failed_retried_completed(api, shop, committed, gateways)
    with db.sessions().begin() as session:
        stored = copy_events(session, copy_id)  # oldest first

    response = api.get(f"/api/order_copies/{copy_id}/events", **{"page[size]": "25"})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.api+json"
    document = response.json()
    events = document["data"]
    assert [e["id"] for e in events] == [str(e.id) for e in reversed(stored)]
    assert document["meta"] == {"record_count": len(stored), "page_count": 1}
    kinds = [e["attributes"]["kind"] for e in reversed(events)]
    assert kinds[:2] == ["created", "claimed"]
    assert kinds.index("failed") < kinds.index("retried") < kinds.index("completed")
    assert kinds[-1] == "completed"
    by_kind = {e["attributes"]["kind"]: e["attributes"] for e in events}  # the newest of each
    assert by_kind["created"]["attempt"] == 0
    assert by_kind["created"]["details"]["place_target_order"] is True
    assert (by_kind["failed"]["attempt"], by_kind["failed"]["errors"]) == (1, errors)
    assert errors  # the failed run did record why
    retried = by_kind["retried"]
    assert (retried["by"], retried["errors"]) == ("api", errors)
    completed = by_kind["completed"]
    assert (completed["attempt"], completed["errors"]) == (2, {})
    assert completed["step"] == "target_placed"
    claims = [e["attributes"]["attempt"] for e in events if e["attributes"]["kind"] == "claimed"]
    assert claims == [2, 1]
    moments = [e["attributes"]["created_at"] for e in events]
    assert all(TIMESTAMP.match(moment) for moment in moments)
    assert moments == sorted(moments, reverse=True)


def test_an_event_is_a_json_api_resource_linked_to_its_copy(api, shop, committed, gateways):
    copy = create_copy(api, shop.order["id"])

    event = api.ids(f"/api/order_copies/{copy['id']}/events")
    response = api.get(f"/api/order_copies/{copy['id']}/events")

    (created,) = response.json()["data"]
    assert [created["id"]] == event
    assert created["type"] == "order_copy_events"
    assert created["links"] == {"self": f"{BASE}/order_copy_events/{created['id']}"}
    assert created["meta"] == {"mode": "test"}
    assert created["attributes"] == {
        "kind": "created",
        "attempt": 0,
        "step": None,
        "errors": {},
        "message": None,
        "by": None,
        "details": {
            "place_target_order": False,
            "cancel_source_order": False,
            "reuse_wallet": True,
            "skip_errors": False,
            "apply_promotions": False,
            "ignore_invalid_coupon": False,
        },
        "created_at": created["attributes"]["created_at"],  # checked below
    }
    # recorded as the copy was made: in the API's format, not before the copy
    assert TIMESTAMP.match(created["attributes"]["created_at"])
    assert created["attributes"]["created_at"] >= copy["attributes"]["created_at"]
    assert created["relationships"]["order_copy"]["links"]["related"] == (
        f"{BASE}/order_copy_events/{created['id']}/order_copy"
    )
    assert api.retrieve("order_copy_events", created["id"]) == created
    back = api.get(f"/api/order_copy_events/{created['id']}/order_copy").json()["data"]
    assert (back["type"], back["id"]) == ("order_copies", copy["id"])


def test_events_page_and_filter_like_every_list(api, shop, committed, gateways):
    copy_id, _ = failed_retried_completed(api, shop, committed, gateways)
    path = f"/api/order_copies/{copy_id}/events"
    everything = api.ids(path, **{"page[size]": "25"})

    first = api.get(path, **{"page[size]": "2"}).json()
    second = api.get(path, **{"page[size]": "2", "page[number]": "2"}).json()

    assert [e["id"] for e in first["data"] + second["data"]] == everything[:4]
    assert first["meta"] == {
        "record_count": len(everything),
        "page_count": -(-len(everything) // 2),
    }
    assert first["links"]["next"].endswith("page%5Bsize%5D=2&page%5Bnumber%5D=2")
    claims = api.ids(path, **{"filter[q][kind_eq]": "claimed"})
    assert len(claims) == 2
    assert set(claims) < set(everything)
    assert api.ids(path, **{"filter[q][kind_eq]": "claimed", "sort": "attempt"}) == claims[::-1]


def test_a_copy_includes_its_events(api, shop):
    copy = create_copy(api, shop.order["id"])

    document = api.get(f"/api/order_copies/{copy['id']}", include="events").json()

    (linkage,) = document["data"]["relationships"]["events"]["data"]
    (included,) = document["included"]
    assert linkage == {"type": "order_copy_events", "id": included["id"]}
    assert included["attributes"]["kind"] == "created"


def test_events_of_an_unknown_copy_are_a_404(api):
    response = api.get("/api/order_copies/NOSUCHCOPY/events")

    assert_error(response, 404, detail="order_copies NOSUCHCOPY does not exist in test mode")


def test_events_of_a_copy_of_the_other_mode_are_a_404(api, live_api, committed):
    live = build_shop(live_api, code="LIVE")
    copy = create_copy(live_api, live.order["id"])
    (event,) = live_api.ids(f"/api/order_copies/{copy['id']}/events")

    assert_error(api.get(f"/api/order_copies/{copy['id']}/events"), 404)
    assert_error(api.get(f"/api/order_copy_events/{event}"), 404)
    assert api.ids("/api/order_copy_events") == []
    assert live_api.ids("/api/order_copy_events") == [event]


@pytest.mark.parametrize("event_id", ["abc", "0", "01", "-1", "99999999999999999999", "1.5"])
def test_an_event_id_no_event_can_have_is_a_404(api, event_id):
    assert_error(api.get(f"/api/order_copy_events/{event_id}"), 404)


def test_events_filter_by_id_as_whole_numbers(api, shop):
    copy = create_copy(api, shop.order["id"])
    (event,) = api.ids(f"/api/order_copies/{copy['id']}/events")

    assert api.ids("/api/order_copy_events", **{"filter[q][id_eq]": event}) == [event]
    assert_error(
        api.get("/api/order_copy_events", **{"filter[q][id_eq]": "abc"}),
        400,
        parameter="filter[q][id_eq]",
    )


def test_events_have_no_write_routes(api, shop):
    copy = create_copy(api, shop.order["id"])
    (event,) = api.ids(f"/api/order_copies/{copy['id']}/events")

    assert api.delete(f"/api/order_copy_events/{event}").status_code == 405
    assert api.update("order_copy_events", event, {"kind": "completed"}).status_code == 405
    response = api.post("/api/order_copy_events", {"data": {"type": "order_copy_events"}})
    assert response.status_code == 405
    assert api.retrieve("order_copy_events", event)["attributes"]["kind"] == "created"
