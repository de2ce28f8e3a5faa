"""``/api/order_subscriptions``: created active (or as drafts), validated, switched to
another wallet entry, activated, paused, skipped and cancelled over HTTP; renewals run here
with the domain tick and engine, as the renewals tests do. Most tests make drafts
(``activate_by_source_order: false``) to move them step by step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from copying.copies.dispatch import unit_of_work
from copying.runs import Outcome
from copying.subscriptions import renewals
from models import utcnow
from tests.api.errors import assert_error
from tests.api.shop import Shop, build_shop
from tests.copying.clock import FixedClock
from tests.fixtures import Published
from tests.runs import execute_one

TYPE = "order_subscriptions"
ATTRIBUTES = {
    "number",
    "frequency",
    "status",
    "customer_email",
    "activate_by_source_order",
    "options",
    "renewal_alert_period",
    "next_attempt_at",
    "starts_at",
    "expires_at",
    "next_run_at",
    "last_run_at",
    "occurrencies",
    "errors_count",
    "succeeded_on_last_run",
    "place_target_order",
    "catch_up",
    "failure_policy",
    "created_at",
    "updated_at",
    "reference",
    "reference_origin",
    "metadata",
}
DEFAULT_POLICY = {"retry_after_seconds": [], "final_action": "keep_active"}
DUNNING = {"retry_after_seconds": [86400, 259200, 604800], "final_action": "deactivate"}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def document(
    attributes: dict[str, Any], relationships: dict[str, tuple[str, str] | None]
) -> dict[str, Any]:
    return {
        "data": {
            "type": TYPE,
            "attributes": attributes,
            "relationships": {
                name: {"data": {"type": value[0], "id": value[1]} if value else None}
                for name, value in relationships.items()
            },
        }
    }


def post(api, shop: Shop, relationships: dict[str, Any] | None = None, **attributes: Any) -> Any:
    """A draft unless ``activate_by_source_order`` is given."""
    return api.post(
        f"/api/{TYPE}",
        document(
            {"frequency": "monthly", "activate_by_source_order": False, **attributes},
            {"source_order": ("orders", shop.order["id"]), **(relationships or {})},
        ),
    )


def subscribe(api, shop: Shop, relationships: dict[str, Any] | None = None, **attributes: Any):
    response = post(api, shop, relationships, **attributes)
    assert response.status_code == 201, response.json()
    return response.json()["data"]


def update(api, subscription_id: str, attributes=None, relationships=None) -> Any:
    return api.update(TYPE, subscription_id, attributes, relationships)


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.json()
    return response.json()["data"]  # type: ignore[no-any-return]


def related_id(api, subscription_id: str, name: str) -> str | None:
    response = api.get(f"/api/{TYPE}/{subscription_id}/{name}")
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    return data["id"] if data else None


# --- create -------------------------------------------------------------------------


def test_create_returns_a_draft_for_the_source_orders_customer_and_wallet_entry(api, shop):
    before = utcnow()
    response = post(api, shop, frequency="daily")

    assert response.status_code == 201
    subscription = response.json()["data"]
    attributes = subscription["attributes"]
    assert set(attributes) == ATTRIBUTES
    assert attributes["status"] == "draft"
    assert attributes["activate_by_source_order"] is False
    assert attributes["frequency"] == "daily"
    assert attributes["place_target_order"] is True
    assert attributes["options"] == {"place_target_order": True}
    assert attributes["renewal_alert_period"] == 1
    assert attributes["customer_email"] == shop.order["attributes"]["customer_email"]
    assert isinstance(attributes["number"], int)
    assert attributes["next_attempt_at"] is None
    assert attributes["catch_up"] is False
    assert attributes["failure_policy"] == DEFAULT_POLICY
    assert attributes["occurrencies"] == attributes["errors_count"] == 0
    assert attributes["last_run_at"] is attributes["succeeded_on_last_run"] is None
    assert attributes["expires_at"] is None
    starts = parse(attributes["starts_at"])
    assert before - timedelta(seconds=1) <= starts <= utcnow()
    # the source order stands for the start: the first renewal is a period later
    assert parse(attributes["next_run_at"]) == starts + timedelta(days=1)
    assert set(subscription["relationships"]) == {
        "source_order",
        "customer",
        "customer_payment_source",
        "order_copies",
        "recurring_order_copies",
        "order_subscription_items",
        "events",
    }
    assert related_id(api, subscription["id"], "source_order") == shop.order["id"]
    assert related_id(api, subscription["id"], "customer") == shop.customer["id"]
    assert related_id(api, subscription["id"], "customer_payment_source") == shop.entry["id"]


def test_create_takes_its_terms_and_plans_the_first_run_on_the_schedule(api, shop):
    starts = datetime(2026, 1, 31, 9, tzinfo=UTC)
    subscription = subscribe(
        api,
        shop,
        {"customer": ("customers", shop.customer["id"])},
        frequency="monthly",
        starts_at=iso(starts),
        expires_at="2099-01-01T00:00:00Z",
        place_target_order=False,
        catch_up=True,
        failure_policy={"retry_after_seconds": [3600], "final_action": "cancel"},
        reference="SUB-1",
        reference_origin="crm",
        metadata={"plan": "gold"},
    )

    attributes = api.retrieve(TYPE, subscription["id"])["attributes"]
    assert attributes["starts_at"] == "2026-01-31T09:00:00.000Z"
    assert attributes["expires_at"] == "2099-01-01T00:00:00.000Z"
    assert attributes["place_target_order"] is False
    assert attributes["catch_up"] is True
    assert attributes["failure_policy"] == {"retry_after_seconds": [3600], "final_action": "cancel"}
    assert (attributes["reference"], attributes["reference_origin"]) == ("SUB-1", "crm")
    assert attributes["metadata"] == {"plan": "gold"}
    # the first monthly run from now on, anchored to Jan 31 (month ends, no drift)
    upcoming = parse(attributes["next_run_at"])
    assert upcoming > utcnow()
    assert (upcoming.hour, upcoming.minute) == (9, 0)
    assert (upcoming + timedelta(days=1)).day == 1  # a month end
    assert upcoming - timedelta(days=31) <= utcnow()


def test_a_crontab_frequency_plans_its_next_time(api, shop):
    subscription = subscribe(api, shop, frequency="30 6 * * 1")

    upcoming = parse(subscription["attributes"]["next_run_at"])
    assert (upcoming.weekday(), upcoming.hour, upcoming.minute) == (0, 6, 30)
    assert utcnow() < upcoming <= utcnow() + timedelta(days=7)


def test_create_takes_another_wallet_entry_of_the_customer(api, shop):
    other = api.create(
        "customer_payment_sources",
        {"payment_source_token": "tok_visa", "name": "Visa 1111", "expires_on": "2099-12-31"},
        {"customer": ("customers", shop.customer["id"])},
    )

    subscription = subscribe(
        api, shop, {"customer_payment_source": ("customer_payment_sources", other["id"])}
    )

    assert related_id(api, subscription["id"], "customer_payment_source") == other["id"]


@pytest.mark.parametrize(
    ("frequency", "detail"),
    [
        ("fortnightly", "is not one of hourly, daily"),
        ("*/5 * * * *", "more often than hourly"),
        ("* * * * *", "more often than hourly"),
        ("0 0 30 2 *", "never run"),
        ("0 25 * * *", "nor a crontab expression"),
        ("@hourly", "nor a crontab expression"),
        ("", "nor a crontab expression"),
    ],
)
def test_create_refuses_a_bad_frequency_saying_why(api, shop, frequency, detail):
    response = post(api, shop, frequency=frequency)

    assert_error(response, 422, pointer="/data/attributes/frequency", detail=detail)


@pytest.mark.parametrize(
    ("attributes", "pointer", "detail"),
    [
        ({"frequency": None}, "/data/attributes/frequency", ""),
        ({"frequency": 7}, "/data/attributes/frequency", ""),
        (
            {"starts_at": "2030-01-01T00:00:00Z", "expires_at": "2029-01-01T00:00:00Z"},
            "/data/attributes/expires_at",
            "must be after starts_at",
        ),
        (
            {"starts_at": "2030-01-01T00:00:00Z", "expires_at": "2030-01-01T00:00:00Z"},
            "/data/attributes/expires_at",
            "must be after starts_at",
        ),
        ({"next_run_at": "2020-01-01T00:00:00Z"}, "/data/attributes/next_run_at", "future"),
        (
            {"next_run_at": "2090-01-01T00:00:00Z", "expires_at": "2080-01-01T00:00:00Z"},
            "/data/attributes/next_run_at",
            "not before expires_at",
        ),
        ({"next_run_at": "2030-01-01T00:00:00"}, "/data/attributes/next_run_at", "timezone"),
        ({"starts_at": "0001-01-01T00:00:00+05:00"}, "/data/attributes/starts_at", "2000"),
        ({"expires_at": "9999-12-31T23:00:00-05:00"}, "/data/attributes/expires_at", "2000"),
        ({"failure_policy": {"retry_after_seconds": [5]}}, "/data/attributes/failure_policy", "60"),
        (
            {"failure_policy": {"final_action": "explode"}},
            "/data/attributes/failure_policy",
            "keep_active, deactivate, cancel",
        ),
        ({"failure_policy": {"retry": [3600]}}, "/data/attributes/failure_policy", "unknown"),
        ({"status": "active"}, "/data/attributes/status", ""),
        ({"occurrencies": 3}, "/data/attributes/occurrencies", ""),
    ],
)
def test_create_refuses_bad_attributes_pointing_at_them(api, shop, attributes, pointer, detail):
    response = post(api, shop, **attributes)

    assert_error(response, 422, pointer=pointer, detail=detail)


def test_create_needs_a_source_order(api, shop):
    response = api.post(
        f"/api/{TYPE}", {"data": {"type": TYPE, "attributes": {"frequency": "daily"}}}
    )

    assert_error(response, 422, pointer="/data/relationships")


@pytest.mark.parametrize("name", ["source_order", "customer", "customer_payment_source"])
def test_create_refuses_a_related_record_that_does_not_exist(api, shop, name):
    types = {
        "source_order": "orders",
        "customer": "customers",
        "customer_payment_source": "customer_payment_sources",
    }

    response = post(api, shop, {name: (types[name], "missing123")})

    assert_error(response, 422, pointer=f"/data/relationships/{name}", detail="does not exist")


def test_create_refuses_an_order_that_was_never_placed(api):
    draft = build_shop(api, code="DRAFT", place=False)

    response = post(api, draft)

    assert_error(
        response, 422, pointer="/data/relationships/source_order", detail="placed or approved"
    )


def test_create_refuses_another_customer(api, shop):
    other = api.create("customers", {"email": "someone@example.com"})

    response = post(api, shop, {"customer": ("customers", other["id"])})

    assert_error(response, 422, pointer="/data/relationships/customer", detail="is not order")


def other_customers_entry(api) -> dict[str, Any]:
    other = api.create("customers", {"email": "other@example.com"})
    return api.create(
        "customer_payment_sources",
        {"payment_source_token": "tok_visa", "name": "Their Visa", "expires_on": "2099-12-31"},
        {"customer": ("customers", other["id"])},
    )


@pytest.mark.parametrize(
    ("entry", "detail"),
    [
        ({"expires_on": "2099-12-31"}, None),
        ({"expires_on": "2020-01-31"}, "expired on 2020-01-31"),
        ({"expires_on": "2099-12-31", "disabled": True}, "is disabled"),
    ],
)
def test_create_refuses_a_wallet_entry_renewals_could_not_charge(api, shop, entry, detail):
    if detail is None:
        bad = other_customers_entry(api)
        detail = "belongs to another customer"
    else:
        bad = api.create(
            "customer_payment_sources",
            {"payment_source_token": "tok_visa", "name": "Old Visa", **entry},
            {"customer": ("customers", shop.customer["id"])},
        )

    response = post(api, shop, {"customer_payment_source": ("customer_payment_sources", bad["id"])})

    assert_error(
        response, 422, pointer="/data/relationships/customer_payment_source", detail=detail
    )


# --- update -------------------------------------------------------------------------


def test_update_changes_the_terms(api, shop):
    subscription = subscribe(api, shop)

    updated = ok(
        update(
            api,
            subscription["id"],
            {
                "expires_at": "2099-06-01T00:00:00Z",
                "place_target_order": False,
                "catch_up": True,
                "failure_policy": {"final_action": "keep_active"},
                "reference": "new",
                "metadata": {"k": 1},
            },
        )
    )

    attributes = updated["attributes"]
    assert attributes["expires_at"] == "2099-06-01T00:00:00.000Z"
    assert attributes["place_target_order"] is False
    assert attributes["catch_up"] is True
    assert attributes["failure_policy"] == {**DEFAULT_POLICY, "final_action": "keep_active"}
    assert (attributes["reference"], attributes["metadata"]) == ("new", {"k": 1})
    assert api.retrieve(TYPE, subscription["id"])["attributes"] == attributes


def test_next_run_at_moves_to_a_future_time(api, shop):
    subscription = subscribe(api, shop)
    moved = (utcnow() + timedelta(days=3)).replace(microsecond=0)

    updated = ok(update(api, subscription["id"], {"next_run_at": iso(moved)}))

    assert updated["attributes"]["next_run_at"] == iso(moved)


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(minutes=-1), timedelta(days=-400)])
def test_next_run_at_refuses_the_past_and_keeps_the_old_value(api, shop, delta):
    subscription = subscribe(api, shop, reference="before")

    response = update(
        api, subscription["id"], {"next_run_at": iso(utcnow() + delta), "reference": "after"}
    )

    assert_error(response, 422, pointer="/data/attributes/next_run_at", detail="future")
    attributes = api.retrieve(TYPE, subscription["id"])["attributes"]
    assert attributes["next_run_at"] == subscription["attributes"]["next_run_at"]
    assert attributes["reference"] == "before"  # all or nothing


def test_next_run_at_cannot_be_emptied(api, shop):
    subscription = subscribe(api, shop)

    response = update(api, subscription["id"], {"next_run_at": None})

    assert_error(response, 422, pointer="/data/attributes/next_run_at")


def test_a_new_frequency_plans_the_next_run_on_its_schedule(api, shop):
    subscription = subscribe(api, shop, frequency="yearly")

    updated = ok(update(api, subscription["id"], {"frequency": "0 7 * * *"}))

    upcoming = parse(updated["attributes"]["next_run_at"])
    assert (upcoming.hour, upcoming.minute) == (7, 0)
    assert utcnow() < upcoming <= utcnow() + timedelta(days=1)


def test_update_refuses_a_bad_frequency_and_an_expiry_before_the_start(api, shop):
    subscription = subscribe(api, shop, starts_at="2030-01-01T00:00:00Z")

    assert_error(
        update(api, subscription["id"], {"frequency": "*/10 * * * *"}),
        422,
        pointer="/data/attributes/frequency",
        detail="more often than hourly",
    )
    assert_error(
        update(api, subscription["id"], {"expires_at": "2029-12-31T00:00:00Z"}),
        422,
        pointer="/data/attributes/expires_at",
    )
    assert api.retrieve(TYPE, subscription["id"])["attributes"]["frequency"] == "monthly"


@pytest.mark.parametrize("attribute", ["status", "starts_at", "occurrencies", "last_run_at"])
def test_update_refuses_read_only_and_create_only_attributes(api, shop, attribute):
    subscription = subscribe(api, shop)

    response = update(api, subscription["id"], {attribute: subscription["attributes"][attribute]})

    assert_error(response, 422, pointer=f"/data/attributes/{attribute}")


def test_update_switches_to_another_wallet_entry_of_the_customer(api, shop):
    subscription = subscribe(api, shop)
    other = api.create(
        "customer_payment_sources",
        {"payment_source_token": "tok_visa", "name": "Visa 1111", "expires_on": "2099-12-31"},
        {"customer": ("customers", shop.customer["id"])},
    )

    ok(
        update(
            api,
            subscription["id"],
            relationships={"customer_payment_source": ("customer_payment_sources", other["id"])},
        )
    )

    assert related_id(api, subscription["id"], "customer_payment_source") == other["id"]


def test_update_refuses_another_customers_wallet_entry(api, shop):
    subscription = subscribe(api, shop)
    theirs = other_customers_entry(api)

    response = update(
        api,
        subscription["id"],
        relationships={"customer_payment_source": ("customer_payment_sources", theirs["id"])},
    )

    assert_error(
        response,
        422,
        pointer="/data/relationships/customer_payment_source",
        detail="belongs to another customer",
    )
    assert related_id(api, subscription["id"], "customer_payment_source") == shop.entry["id"]


def test_update_refuses_a_live_wallet_entry_to_a_test_subscription(api, live_api, shop):
    subscription = subscribe(api, shop)
    live = build_shop(live_api, code="LIVE")

    response = update(
        api,
        subscription["id"],
        relationships={"customer_payment_source": ("customer_payment_sources", live.entry["id"])},
    )

    assert_error(
        response,
        422,
        pointer="/data/relationships/customer_payment_source",
        detail="does not exist in test mode",
    )


# --- triggers -----------------------------------------------------------------------


def trigger(api, subscription_id: str, name: str) -> Any:
    return update(api, subscription_id, {name: True})


def test_activate_starts_renewing_on_the_planned_run(api, shop):
    subscription = subscribe(api, shop, frequency="weekly")

    active = ok(trigger(api, subscription["id"], "_activate"))

    assert active["attributes"]["status"] == "active"
    upcoming = parse(active["attributes"]["next_run_at"])
    assert utcnow() - timedelta(minutes=1) < upcoming <= utcnow() + timedelta(days=7)


def test_activate_after_a_pause_skips_the_runs_missed_meanwhile(api, shop, committed):
    subscription = subscribe(api, shop, frequency="daily", starts_at="2026-01-01T08:00:00Z")
    ok(trigger(api, subscription["id"], "_activate"))
    ok(trigger(api, subscription["id"], "_deactivate"))
    from models import OrderSubscription

    with committed.begin() as session:  # the pause lasted a while
        session.get_one(OrderSubscription, subscription["id"]).next_run_at = utcnow() - timedelta(
            days=3
        )

    active = ok(trigger(api, subscription["id"], "_activate"))

    upcoming = parse(active["attributes"]["next_run_at"])
    assert utcnow() - timedelta(minutes=1) < upcoming <= utcnow() + timedelta(days=1)
    assert (upcoming.hour, upcoming.minute) == (8, 0)


def test_deactivate_then_cancel(api, shop):
    subscription = subscribe(api, shop)
    ok(trigger(api, subscription["id"], "_activate"))

    paused = ok(trigger(api, subscription["id"], "_deactivate"))
    cancelled = ok(trigger(api, subscription["id"], "_cancel"))

    assert paused["attributes"]["status"] == "inactive"
    assert cancelled["attributes"]["status"] == "cancelled"
    assert cancelled["attributes"]["next_run_at"] is None


def test_attributes_and_a_trigger_change_together(api, shop):
    subscription = subscribe(api, shop, frequency="yearly")

    active = ok(update(api, subscription["id"], {"frequency": "daily", "_activate": True}))

    assert active["attributes"]["status"] == "active"
    assert active["attributes"]["frequency"] == "daily"
    assert parse(active["attributes"]["next_run_at"]) <= utcnow() + timedelta(days=1)


@pytest.mark.parametrize(
    ("steps", "refused"),
    [
        ([], "_deactivate"),  # a draft never ran
        (["_activate"], "_activate"),
        (["_cancel"], "_activate"),
        (["_cancel"], "_deactivate"),
        (["_cancel"], "_cancel"),
        (["_activate", "_deactivate"], "_deactivate"),
    ],
)
def test_invalid_transitions_are_409s_that_change_nothing(api, shop, steps, refused):
    subscription = subscribe(api, shop)
    for step in steps:
        ok(trigger(api, subscription["id"], step))
    before = api.retrieve(TYPE, subscription["id"])["attributes"]

    response = update(api, subscription["id"], {refused: True, "reference": "changed"})

    assert_error(response, 409, code="INVALID_STATUS", detail=f"is {before['status']}")
    assert api.retrieve(TYPE, subscription["id"])["attributes"] == before


def test_activate_refuses_a_subscription_expiring_before_its_next_run(api, shop):
    subscription = subscribe(
        api,
        shop,
        frequency="yearly",
        starts_at="2025-01-01T00:00:00Z",
        expires_at=iso(utcnow() + timedelta(days=1)),
    )

    response = trigger(api, subscription["id"], "_activate")

    assert_error(response, 409, code="INVALID_STATUS", detail="before its next run")


def test_a_cancelled_subscription_keeps_its_terms_but_takes_a_reference(api, shop):
    subscription = subscribe(api, shop)
    ok(trigger(api, subscription["id"], "_cancel"))

    assert_error(
        update(api, subscription["id"], {"frequency": "daily"}), 409, code="INVALID_STATUS"
    )
    assert (
        ok(update(api, subscription["id"], {"reference": "closed"}))["attributes"]["reference"]
        == "closed"
    )


def test_false_triggers_do_nothing(api, shop):
    subscription = subscribe(api, shop)

    updated = ok(update(api, subscription["id"], {"_activate": False, "_cancel": False}))

    assert updated["attributes"]["status"] == "draft"


# --- renewals ------------------------------------------------------------------------


def renew(committed, now: datetime) -> list[str]:
    with unit_of_work(committed, Published()) as session:
        return renewals.tick(session, now, batch_size=100).copies


def test_the_next_renewal_retry_charges_the_wallet_entry_switched_to(
    api, shop, committed, gateways
):
    declined = api.create(  # softly: a retry may pass
        "customer_payment_sources",
        {
            "payment_source_token": "tok_insufficient_funds",
            "name": "Declined",
            "expires_on": "2099-12-31",
        },
        {"customer": ("customers", shop.customer["id"])},
    )
    subscription = subscribe(
        api,
        shop,
        {"customer_payment_source": ("customer_payment_sources", declined["id"])},
        frequency="daily",
        failure_policy={"retry_after_seconds": [3600], "final_action": "deactivate"},
    )
    ok(trigger(api, subscription["id"], "_activate"))
    due = utcnow() + timedelta(hours=1)
    ok(update(api, subscription["id"], {"next_run_at": iso(due)}))

    [copy_id] = renew(committed, due)
    clock = FixedClock(due)
    assert execute_one(committed, copy_id, gateways=gateways, clock=clock) == Outcome.FAILED
    failed = api.retrieve(TYPE, subscription["id"])["attributes"]
    # waiting for its retry, it is not running
    assert (failed["status"], failed["errors_count"], failed["occurrencies"]) == ("active", 1, 1)
    assert failed["succeeded_on_last_run"] is False
    retry_at = parse(failed["next_attempt_at"]) - (due + timedelta(hours=1))
    assert abs(retry_at) < timedelta(milliseconds=1)  # shown to the millisecond

    ok(
        update(
            api,
            subscription["id"],
            relationships={
                "customer_payment_source": ("customer_payment_sources", shop.entry["id"])
            },
        )
    )
    clock.now = due + timedelta(hours=1)
    assert execute_one(committed, copy_id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    renewed = api.retrieve(TYPE, subscription["id"], include="order_copies")
    attributes = renewed["attributes"]
    assert (attributes["status"], attributes["occurrencies"]) == ("active", 1)  # one run
    assert attributes["succeeded_on_last_run"] is True
    assert attributes["next_attempt_at"] is None
    assert renewed["relationships"]["order_copies"]["data"] == [
        {"type": "order_copies", "id": copy_id}
    ]
    copy = api.retrieve("order_copies", copy_id, include="target_order")
    assert copy["attributes"]["status"] == "completed"
    target = api.get(f"/api/order_copies/{copy_id}/target_order").json()["data"]
    assert target["attributes"]["status"] == "placed"
    assert related_id_of_order(api, target["id"]) == shop.entry["id"]


def related_id_of_order(api, order_id: str) -> str | None:
    data = api.get(f"/api/orders/{order_id}/customer_payment_source").json()["data"]
    return data["id"] if data else None


def test_a_draft_and_a_paused_subscription_do_not_renew(api, shop, committed):
    draft = subscribe(api, shop, frequency="hourly")
    paused = subscribe(api, shop, frequency="hourly")
    ok(trigger(api, paused["id"], "_activate"))
    ok(trigger(api, paused["id"], "_deactivate"))

    assert renew(committed, utcnow() + timedelta(days=2)) == []
    assert api.retrieve(TYPE, draft["id"])["attributes"]["status"] == "draft"


def test_a_next_run_at_off_the_schedule_renews_once_then_the_schedule_follows(api, shop, committed):
    subscription = subscribe(api, shop, frequency="daily", starts_at="2026-01-01T08:00:00Z")
    ok(trigger(api, subscription["id"], "_activate"))
    moved = (utcnow() + timedelta(days=2)).replace(hour=15, minute=0, second=0, microsecond=0)
    ok(update(api, subscription["id"], {"next_run_at": iso(moved)}))

    assert renew(committed, moved - timedelta(minutes=1)) == []
    [copy_id] = renew(committed, moved)

    attributes = api.retrieve(TYPE, subscription["id"])["attributes"]
    assert attributes["status"] == "running"
    assert parse(attributes["next_run_at"]) == (moved + timedelta(days=1)).replace(hour=8)
    assert api.retrieve("order_copies", copy_id)["attributes"]["status"] == "pending"


# --- lists, includes, modes ----------------------------------------------------------


def test_filters_sort_and_pages(api, shop):
    daily = subscribe(api, shop, frequency="daily", starts_at="2030-01-03T00:00:00Z")
    weekly = subscribe(api, shop, frequency="weekly", starts_at="2030-01-01T00:00:00Z")
    yearly = subscribe(api, shop, frequency="yearly", starts_at="2030-01-02T00:00:00Z")
    ok(trigger(api, weekly["id"], "_activate"))

    assert api.ids(f"/api/{TYPE}", **{"filter[q][status_eq]": "active"}) == [weekly["id"]]
    assert api.ids(
        f"/api/{TYPE}", **{"filter[q][frequency_in]": "daily,yearly"}, sort="created_at"
    ) == [
        daily["id"],
        yearly["id"],
    ]
    # a period after each start: 2031-01-02, 2030-01-08, 2030-01-04
    assert api.ids(f"/api/{TYPE}", sort="-next_run_at") == [yearly["id"], weekly["id"], daily["id"]]
    assert api.ids(
        f"/api/{TYPE}", **{"filter[q][customer_id_eq]": shop.customer["id"]}, sort="created_at"
    ) == [daily["id"], weekly["id"], yearly["id"]]
    page = api.get(f"/api/{TYPE}", sort="created_at", **{"page[size]": 2, "page[number]": 2})
    assert [item["id"] for item in page.json()["data"]] == [yearly["id"]]
    assert page.json()["meta"] == {"record_count": 3, "page_count": 2}


def test_an_unknown_filter_is_a_400(api, shop):
    response = api.get(f"/api/{TYPE}", **{"filter[q][token_eq]": "x"})

    assert_error(response, 400, parameter="filter[q][token_eq]")


def test_include_the_source_order_customer_and_wallet_entry(api, shop):
    subscription = subscribe(api, shop)

    response = api.get(
        f"/api/{TYPE}/{subscription['id']}",
        include="source_order,customer,customer_payment_source",
    )

    assert response.status_code == 200
    included = {(item["type"], item["id"]) for item in response.json()["included"]}
    assert included == {
        ("orders", shop.order["id"]),
        ("customers", shop.customer["id"]),
        ("customer_payment_sources", shop.entry["id"]),
    }


def test_a_test_key_never_sees_nor_changes_a_live_subscription(api, live_api):
    live = build_shop(live_api, code="LIVE")
    subscription = subscribe(live_api, live)

    assert api.ids(f"/api/{TYPE}") == []
    assert_error(api.get(f"/api/{TYPE}/{subscription['id']}"), 404)
    assert_error(trigger(api, subscription["id"], "_activate"), 404)
    assert live_api.retrieve(TYPE, subscription["id"])["attributes"]["status"] == "draft"
    assert live_api.retrieve(TYPE, subscription["id"])["meta"] == {"mode": "live"}


def test_a_subscription_cannot_renew_an_order_of_the_other_mode(api, live_api):
    live = build_shop(live_api, code="LIVE")

    response = post(api, live)

    assert_error(
        response, 422, pointer="/data/relationships/source_order", detail="does not exist in test"
    )


# --- end to end -------------------------------------------------------------------------


@pytest.mark.worker
def renew_over_http(api, shop: Shop) -> tuple[dict[str, Any], datetime]:
    """A daily subscription of ``shop``'s order, created and activated over HTTP, its run
    due a second later; the beat's tick sent through Redis to the worker (which must be
    running), which queues the renewal and runs it. The subscription once it ran (or
    after 60 s), and when its run was due."""
    import time

    from worker.app import RENEWALS_TICK_TASK, app

    subscription = subscribe(api, shop, frequency="daily")
    ok(trigger(api, subscription["id"], "_activate"))
    due = utcnow() + timedelta(seconds=1)
    ok(update(api, subscription["id"], {"next_run_at": iso(due)}))
    while utcnow() <= due:
        time.sleep(0.1)

    app.send_task(RENEWALS_TICK_TASK)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        renewed = api.retrieve(TYPE, subscription["id"])
        if renewed["attributes"]["occurrencies"] or renewed["attributes"]["errors_count"]:
            break
        time.sleep(0.2)
    return renewed, due


def test_a_subscription_renews_over_http_with_a_real_worker(api, shop, celery_worker):
    """Created and activated over HTTP; the beat's tick goes through Redis to the worker,
    which queues the renewal and runs it; the API shows the placed target order."""
    subscription, due = renew_over_http(api, shop)
    attributes = subscription["attributes"]
    assert attributes["occurrencies"] == 1, attributes
    assert attributes["status"] == "active"
    assert attributes["succeeded_on_last_run"] is True
    assert parse(attributes["next_run_at"]) > due
    [copy] = api.get(f"/api/{TYPE}/{subscription['id']}/order_copies").json()["data"]
    assert copy["attributes"]["status"] == "completed"
    target = api.get(f"/api/order_copies/{copy['id']}/target_order").json()["data"]
    assert target["attributes"]["status"] == "placed"


@pytest.mark.parametrize("planned_run_gone_by", [False, True])
def test_activate_with_a_stored_frequency_no_longer_valid_is_a_422(
    api, shop, committed, planned_run_gone_by
):
    """Stored before check_frequency got stricter (the tick deactivates such rows)."""
    from models import OrderSubscription

    subscription = subscribe(api, shop)
    with committed.begin() as session:
        row = session.get_one(OrderSubscription, subscription["id"])
        row.frequency = "*/5 * * * *"
        if planned_run_gone_by:
            row.next_run_at = utcnow() - timedelta(days=1)

    response = trigger(api, subscription["id"], "_activate")

    assert_error(response, 422, pointer="/data/attributes/frequency", detail="valid frequency")
    assert api.retrieve(TYPE, subscription["id"])["attributes"]["status"] == "draft"
