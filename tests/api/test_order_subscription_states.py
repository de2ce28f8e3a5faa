"""Commerce Layer's subscription states and fields over HTTP: made active by the placed source
order, ``pending`` without a usable card and resumed, ``_skip``, ``renewal_alert_period`` and
``options`` validated with pointers, the ``active``/``expired``/``runnable`` scopes, DELETE
while a renewal is in flight, the wallet entry that fixed a failed renewal (``_place``)
taken by the subscription; with a real worker and beat ticks: the reminder sent once across
a tick sent again, and a failed renewal that leaves the subscription active (the default
policy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from copying.copies.dispatch import unit_of_work
from copying.runs import Outcome
from copying.subscriptions import history, renewals
from copying.webhooks import topics
from models import CustomerPaymentSource, OrderSubscription, WebhookEvent, utcnow
from tests.api.errors import assert_error
from tests.api.shop import Shop, build_shop
from tests.api.test_order_subscriptions import iso, parse, post, subscribe, trigger, update
from tests.copying.clock import FixedClock
from tests.fixtures import Published
from tests.runs import execute_one
from tests.webhooks.test_events import listen
from tests.worker.processes import REPO

TYPE = "order_subscriptions"


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.json()
    return response.json()["data"]  # type: ignore[no-any-return]


def owed(committed, topic: str, resource_id: str) -> int:
    with committed.begin() as s:
        return s.scalar(  # type: ignore[no-any-return]
            select(func.count()).where(
                WebhookEvent.topic == topic, WebhookEvent.resource_id == resource_id
            )
        )


def kinds(committed, subscription_id: str) -> list[str]:
    with committed.begin() as s:
        return [kind for kind, _ in history.of(s, subscription_id)]


def wallet_entry(api, shop: Shop, token: str = "tok_visa") -> dict[str, Any]:
    return api.create(  # type: ignore[no-any-return]
        "customer_payment_sources",
        {"payment_source_token": token, "name": token, "expires_on": "2099-12-31"},
        {"customer": ("customers", shop.customer["id"])},
    )


def disable(committed, entry_id: str) -> None:
    with committed.begin() as s:
        s.get_one(CustomerPaymentSource, entry_id).disabled = True


def renew(committed, now) -> list[str]:
    with unit_of_work(committed, Published()) as session:
        return renewals.tick(session, now, batch_size=100).copies


def due_now(api, subscription_id: str) -> Any:
    """Its next run a moment from now; returns that moment once it has come."""
    due = utcnow() + timedelta(seconds=1)
    ok(update(api, subscription_id, {"next_run_at": iso(due)}))
    while utcnow() <= due:
        time.sleep(0.05)
    return due


# --- made from a placed order, pending, resumed ----------------------------------------------


def test_a_subscription_made_from_a_placed_order_is_active_at_once(api, shop, committed):
    listen(committed, topics.SUBSCRIPTION_ACTIVATE)
    response = api.post(
        f"/api/{TYPE}",
        {
            "data": {
                "type": TYPE,
                "attributes": {"frequency": "weekly"},
                "relationships": {
                    "source_order": {"data": {"type": "orders", "id": shop.order["id"]}}
                },
            }
        },
    )

    assert response.status_code == 201, response.json()
    subscription = response.json()["data"]
    attributes = subscription["attributes"]
    assert attributes["status"] == "active"
    assert attributes["activate_by_source_order"] is True
    # the source order is the first run: the next one is a period later
    assert parse(attributes["next_run_at"]) == parse(attributes["starts_at"]) + timedelta(days=7)
    assert owed(committed, topics.SUBSCRIPTION_ACTIVATE, subscription["id"]) == 1
    second = subscribe(api, shop, activate_by_source_order=True)
    assert second["attributes"]["number"] == attributes["number"] + 1


def test_without_a_usable_card_it_is_pending_until_one_is_attached_and_activated(
    api, shop, committed
):
    listen(committed, topics.SUBSCRIPTION_PENDING)
    disable(committed, shop.entry["id"])

    pending = subscribe(api, shop, activate_by_source_order=True)

    assert pending["attributes"]["status"] == "pending"
    assert owed(committed, topics.SUBSCRIPTION_PENDING, pending["id"]) == 1
    assert kinds(committed, pending["id"]) == ["pending"]
    # _activate alone changes nothing: still no card
    assert_error(
        trigger(api, pending["id"], "_activate"), 409, code="INVALID_STATUS", detail="usable"
    )
    card = wallet_entry(api, shop)
    resumed = ok(
        update(
            api,
            pending["id"],
            {"_activate": True},
            {"customer_payment_source": ("customer_payment_sources", card["id"])},
        )
    )
    assert resumed["attributes"]["status"] == "active"
    assert parse(resumed["attributes"]["next_run_at"]) > utcnow()


def test_a_draft_activated_without_a_usable_card_goes_pending(api, shop, committed):
    draft = subscribe(api, shop)
    disable(committed, shop.entry["id"])

    moved = ok(trigger(api, draft["id"], "_activate"))

    assert moved["attributes"]["status"] == "pending"
    assert ok(trigger(api, draft["id"], "_deactivate"))["attributes"]["status"] == "inactive"


def test_the_tick_parks_a_due_subscription_whose_card_was_disabled(api, shop, committed):
    listen(committed, topics.SUBSCRIPTION_PENDING)
    subscription = subscribe(api, shop, frequency="daily", activate_by_source_order=True)
    due = due_now(api, subscription["id"])
    disable(committed, shop.entry["id"])

    assert renew(committed, due) == []

    attributes = api.retrieve(TYPE, subscription["id"])["attributes"]
    assert attributes["status"] == "pending"
    assert attributes["occurrencies"] == 0  # not attempted
    assert owed(committed, topics.SUBSCRIPTION_PENDING, subscription["id"]) == 1


def free_shop(api) -> Shop:
    """A customer with no wallet entry, and their placed order of a free SKU (a trial)."""
    shop = build_shop(api, code="TRIAL", price=0, wallet=False)
    assert shop.order["attributes"]["payment_status"] == "free"
    return shop


def test_a_free_subscription_without_a_card_is_active_and_renews(api, committed, gateways):
    """Nothing to charge, so nothing parks it: made active by its placed free source order,
    renewed by the tick, its renewal placed free. A draft activated goes active too."""
    shop = free_shop(api)
    subscription = subscribe(api, shop, frequency="daily", activate_by_source_order=True)
    assert subscription["attributes"]["status"] == "active"
    draft = subscribe(api, shop)
    assert ok(trigger(api, draft["id"], "_activate"))["attributes"]["status"] == "active"

    due = due_now(api, subscription["id"])
    [copy_id] = renew(committed, due)

    assert execute_one(committed, copy_id, gateways=gateways) == Outcome.COMPLETED
    target = api.get(f"/api/recurring_order_copies/{copy_id}/target_order").json()["data"]
    assert (target["attributes"]["status"], target["attributes"]["payment_status"]) == (
        "placed",
        "free",
    )
    assert api.retrieve(TYPE, subscription["id"])["attributes"]["status"] == "active"


@pytest.mark.parametrize("unit_amount_cents", [900, -100], ids=["costs", "below zero"])
def test_a_subscription_without_a_card_whose_items_are_not_free_is_pending(
    api, committed, unit_amount_cents
):
    """Its source was free, but what it renews is not: an item that costs something, or
    an adjustment taking the total below zero (an order no one can place). Parked, as
    without a usable card."""
    shop = free_shop(api)
    subscription = subscribe(api, shop, frequency="daily", activate_by_source_order=True)
    adjustment = api.create(
        "adjustments",
        {"name": "Credit", "currency_code": "USD", "amount_cents": unit_amount_cents},
    )
    api.create(
        "order_subscription_items",
        {"quantity": 1},
        {
            "order_subscription": ("order_subscriptions", subscription["id"]),
            "adjustment": ("adjustments", adjustment["id"]),
        },
    )
    due = due_now(api, subscription["id"])

    assert renew(committed, due) == []

    attributes = api.retrieve(TYPE, subscription["id"])["attributes"]
    assert (attributes["status"], attributes["occurrencies"]) == ("pending", 0)


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("hours", [0, 721, -1, "12", 1.5, None, True])
def test_renewal_alert_period_outside_1_to_720_is_a_422_with_a_pointer(api, shop, hours):
    pointer = "/data/attributes/renewal_alert_period"

    assert_error(post(api, shop, renewal_alert_period=hours), 422, pointer=pointer)
    subscription = subscribe(api, shop)
    assert_error(
        update(api, subscription["id"], {"renewal_alert_period": hours}), 422, pointer=pointer
    )
    assert api.retrieve(TYPE, subscription["id"])["attributes"]["renewal_alert_period"] == 1


def test_renewal_alert_period_takes_1_to_720_hours_and_moves_the_reminder(api, shop, committed):
    subscription = subscribe(api, shop, renewal_alert_period=720, activate_by_source_order=True)
    assert subscription["attributes"]["renewal_alert_period"] == 720

    changed = ok(update(api, subscription["id"], {"renewal_alert_period": 5}))

    assert changed["attributes"]["renewal_alert_period"] == 5
    with committed.begin() as s:
        row = s.get_one(OrderSubscription, subscription["id"])
        assert row.renewal_alert_at == row.next_run_at - timedelta(hours=5)


@pytest.mark.parametrize(
    ("options", "detail"),
    [
        ({"place_target_order": "no"}, "must be a bool"),
        ({"cancel_source_order": True}, "unknown options"),
        ("place", "valid dictionary"),  # refused by the document's schema
        ([], "valid dictionary"),
    ],
)
def test_bad_options_are_a_422_with_a_pointer(api, shop, options, detail):
    pointer = "/data/attributes/options"
    assert_error(post(api, shop, options=options), 422, pointer=pointer, detail=detail)
    subscription = subscribe(api, shop)
    assert_error(
        update(api, subscription["id"], {"options": options}), 422, pointer=pointer, detail=detail
    )


def test_options_set_what_each_renewal_does(api, shop):
    subscription = subscribe(api, shop, options={"place_target_order": False})
    assert subscription["attributes"]["place_target_order"] is False

    changed = ok(update(api, subscription["id"], {"options": {"place_target_order": True}}))

    assert changed["attributes"]["options"] == {"place_target_order": True}
    assert changed["attributes"]["place_target_order"] is True


def test_activate_by_source_order_is_create_only(api, shop):
    subscription = subscribe(api, shop)

    response = update(api, subscription["id"], {"activate_by_source_order": True})

    assert_error(response, 422, pointer="/data/attributes/activate_by_source_order")


# --- skip ------------------------------------------------------------------------------------


def test_skip_moves_the_next_run_one_period_once(api, shop, committed):
    subscription = subscribe(api, shop, frequency="weekly", activate_by_source_order=True)
    planned = parse(subscription["attributes"]["next_run_at"])

    skipped = ok(trigger(api, subscription["id"], "_skip"))

    assert skipped["attributes"]["status"] == "active"
    assert parse(skipped["attributes"]["next_run_at"]) == planned + timedelta(days=7)
    assert kinds(committed, subscription["id"]) == ["skipped"]
    assert renew(committed, planned) == []  # the run skipped
    with unit_of_work(committed, Published()) as session:
        # (a second later: the API shows times to the millisecond)
        result = renewals.tick(session, planned + timedelta(days=7, seconds=1), batch_size=100)
    assert (len(result.copies), result.parked) == (1, 0), result


@pytest.mark.parametrize("steps", [[], ["_activate", "_deactivate"], ["_cancel"]])
def test_skip_on_a_subscription_not_active_is_a_409(api, shop, steps):
    subscription = subscribe(api, shop)
    for step in steps:
        ok(trigger(api, subscription["id"], step))
    before = api.retrieve(TYPE, subscription["id"])["attributes"]

    assert_error(trigger(api, subscription["id"], "_skip"), 409, code="INVALID_STATUS")
    assert api.retrieve(TYPE, subscription["id"])["attributes"] == before


def test_the_history_is_read_over_the_api_newest_first_in_its_mode(api, live_api, shop):
    subscription = subscribe(api, shop, frequency="weekly", activate_by_source_order=True)
    planned = parse(subscription["attributes"]["next_run_at"])
    ok(trigger(api, subscription["id"], "_skip"))
    ok(trigger(api, subscription["id"], "_skip"))

    events = api.get(
        "/api/order_subscription_events",
        **{"filter[q][order_subscription_id_eq]": subscription["id"]},
    ).json()["data"]
    related = api.get(f"/api/{TYPE}/{subscription['id']}/events").json()["data"]

    assert [e["attributes"]["kind"] for e in events] == ["skipped", "skipped"]
    # (the history keeps microseconds; the API shows the subscription's times to the ms)
    skipped_runs = [parse(e["attributes"]["details"]["run"]).replace(microsecond=0) for e in events]
    week = planned.replace(microsecond=0) + timedelta(days=7)
    assert skipped_runs == [week, week - timedelta(days=7)]  # newest first
    assert [e["id"] for e in related] == [e["id"] for e in events]
    first = events[-1]
    assert api.retrieve("order_subscription_events", first["id"]) == first
    owner = api.get(f"/api/order_subscription_events/{first['id']}/order_subscription")
    assert owner.json()["data"]["id"] == subscription["id"]
    # Another mode's key sees none of it.
    assert live_api.get(f"/api/order_subscription_events/{first['id']}").status_code == 404
    assert live_api.ids("/api/order_subscription_events") == []
    # History is never changed over the API.
    assert api.delete(f"/api/order_subscription_events/{first['id']}").status_code in (404, 405)


# --- scopes ----------------------------------------------------------------------------------


def test_the_active_expired_and_runnable_scopes(api, shop, committed):
    draft = subscribe(api, shop)
    active = subscribe(api, shop, activate_by_source_order=True)
    ended = subscribe(api, shop, starts_at="2025-01-01T00:00:00Z")
    with committed.begin() as s:
        s.get_one(OrderSubscription, ended["id"]).expires_at = utcnow() - timedelta(days=1)

    def scoped(**filters: str) -> set[str]:
        return set(api.ids(f"/api/{TYPE}", **{f"filter[q][{k}]": v for k, v in filters.items()}))

    assert scoped(active="true") == {active["id"]}
    assert scoped(active="false") == {draft["id"], ended["id"]}
    assert scoped(expired="true") == {ended["id"]}
    assert scoped(expired="false") == {draft["id"], active["id"]}
    assert scoped(runnable="true") == {active["id"]}
    assert scoped(runnable="true", status_eq="draft") == set()
    assert_error(
        api.get(f"/api/{TYPE}", **{"filter[q][active]": "yes"}), 400, parameter="filter[q][active]"
    )


# --- delete ----------------------------------------------------------------------------------


def test_delete_is_refused_while_a_renewal_waits_for_its_retry(api, shop, committed, gateways):
    card = wallet_entry(api, shop, "tok_insufficient_funds")
    subscription = subscribe(
        api,
        shop,
        {"customer_payment_source": ("customer_payment_sources", card["id"])},
        frequency="daily",
        activate_by_source_order=True,
        failure_policy={"retry_after_seconds": [3600], "final_action": "deactivate"},
    )
    due = due_now(api, subscription["id"])
    [copy_id] = renew(committed, due)
    assert api.delete(f"/api/{TYPE}/{subscription['id']}").status_code == 409  # running
    assert execute_one(committed, copy_id, gateways=gateways, clock=FixedClock(due)) == (
        Outcome.FAILED
    )
    assert api.retrieve(TYPE, subscription["id"])["attributes"]["status"] == "active"

    response = api.delete(f"/api/{TYPE}/{subscription['id']}")

    assert_error(response, 409, code="INVALID_STATUS", detail=copy_id)
    api.update("order_copies", copy_id, {"_abort": True})
    assert api.delete(f"/api/{TYPE}/{subscription['id']}").status_code == 204


# --- the wallet entry that fixed a failed renewal ----------------------------------------------


def test_placing_a_failed_renewals_target_with_another_card_switches_the_subscription(
    api, shop, committed, gateways
):
    declined = wallet_entry(api, shop, "tok_declined")
    subscription = subscribe(
        api,
        shop,
        {"customer_payment_source": ("customer_payment_sources", declined["id"])},
        frequency="daily",
        activate_by_source_order=True,
    )
    due = due_now(api, subscription["id"])
    [copy_id] = renew(committed, due)
    assert execute_one(committed, copy_id, gateways=gateways, clock=FixedClock(due)) == (
        Outcome.FAILED
    )
    failed = api.retrieve(TYPE, subscription["id"])["attributes"]
    assert failed["status"] == "active"  # Commerce Layer's default: no retry, stay active
    target = api.get(f"/api/order_copies/{copy_id}/target_order").json()["data"]

    placed = ok(
        api.update(
            "orders",
            target["id"],
            {"_customer_payment_source_id": shop.entry["id"], "_place": True},
        )
    )

    assert placed["attributes"]["status"] == "placed"
    response = api.get(f"/api/{TYPE}/{subscription['id']}/customer_payment_source")
    assert response.json()["data"]["id"] == shop.entry["id"]
    with committed.begin() as s:
        switched = [d for k, d in history.of(s, subscription["id"]) if k == "wallet_switched"]
    assert switched == [
        {
            "from": declined["id"],
            "to": shop.entry["id"],
            "order_id": target["id"],
            "order_copy_id": copy_id,
        }
    ]


# --- with a real worker and beat ticks ------------------------------------------------------------


def wait_for(check, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    return check()


@pytest.mark.worker
def test_the_reminder_goes_out_once_across_ticks_sent_again(api, shop, committed, celery_worker):
    """Its run 30 minutes away, its reminder an hour before: the first tick sends it; the
    tick sent again (a retried tick, a restarted beat) sends nothing more."""
    from worker.app import RENEWALS_TICK_TASK, app

    listen(committed, topics.SUBSCRIPTION_RENEWAL)
    subscription = subscribe(api, shop, frequency="daily", activate_by_source_order=True)
    ok(update(api, subscription["id"], {"next_run_at": iso(utcnow() + timedelta(minutes=30))}))

    app.send_task(RENEWALS_TICK_TASK)
    assert wait_for(lambda: owed(committed, topics.SUBSCRIPTION_RENEWAL, subscription["id"]))
    for _ in range(2):
        app.send_task(RENEWALS_TICK_TASK)
    time.sleep(3)  # the solo worker runs them one after the other, in well under that
    # and a tick in a process started afresh (a restarted beat and worker)
    restarted = subprocess.run(
        [sys.executable, "-m", "tests.copying.subscriptions.concurrent_tick", "0"],
        cwd=REPO,
        env=dict(os.environ, ORDERCOPY_LOG_LEVEL="WARNING"),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    assert json.loads(restarted.stdout.strip().splitlines()[-1])["alerts"] == 0
    assert owed(committed, topics.SUBSCRIPTION_RENEWAL, subscription["id"]) == 1
    assert kinds(committed, subscription["id"]).count("renewal_alert") == 1


@pytest.mark.worker
def test_pending_then_resumed_over_http_with_a_real_worker(api, shop, committed, celery_worker):
    """The beat's tick finds the card disabled: pending, no run. A new card and _activate:
    the next tick renews it, and the worker completes the renewal with the new card."""
    from worker.app import RENEWALS_TICK_TASK, app

    subscription = subscribe(api, shop, frequency="daily", activate_by_source_order=True)
    due_now(api, subscription["id"])
    disable(committed, shop.entry["id"])

    app.send_task(RENEWALS_TICK_TASK)

    assert wait_for(
        lambda: api.retrieve(TYPE, subscription["id"])["attributes"]["status"] == "pending"
    )
    assert api.get(f"/api/{TYPE}/{subscription['id']}/recurring_order_copies").json()["data"] == []
    card = wallet_entry(api, shop)
    resumed = ok(
        update(
            api,
            subscription["id"],
            {"_activate": True},
            {"customer_payment_source": ("customer_payment_sources", card["id"])},
        )
    )
    assert resumed["attributes"]["status"] == "active"
    due_now(api, subscription["id"])

    app.send_task(RENEWALS_TICK_TASK)

    attributes = wait_for(
        lambda: (a := api.retrieve(TYPE, subscription["id"])["attributes"])["occurrencies"] and a
    )
    assert (attributes["status"], attributes["succeeded_on_last_run"]) == ("active", True)
    [copy] = api.get(f"/api/{TYPE}/{subscription['id']}/recurring_order_copies").json()["data"]
    target = api.get(f"/api/recurring_order_copies/{copy['id']}/target_order").json()["data"]
    assert target["attributes"]["status"] == "placed"
    paid_with = api.get(f"/api/orders/{target['id']}/customer_payment_source").json()["data"]
    assert paid_with["id"] == card["id"]


@pytest.mark.worker
def test_a_declined_renewal_leaves_the_subscription_active_by_default(
    api, shop, committed, celery_worker
):
    from worker.app import RENEWALS_TICK_TASK, app

    declined = wallet_entry(api, shop, "tok_declined")
    subscription = subscribe(
        api,
        shop,
        {"customer_payment_source": ("customer_payment_sources", declined["id"])},
        frequency="daily",
        activate_by_source_order=True,
    )
    due = due_now(api, subscription["id"])

    app.send_task(RENEWALS_TICK_TASK)

    attributes = wait_for(
        lambda: (a := api.retrieve(TYPE, subscription["id"])["attributes"])["errors_count"] and a
    )
    assert attributes["status"] == "active"
    assert attributes["succeeded_on_last_run"] is False
    assert attributes["occurrencies"] == 1
    assert parse(attributes["last_run_at"]) > due
    # the next period as scheduled (the run moved earlier stood for the first period)
    assert parse(attributes["next_run_at"]) == parse(attributes["starts_at"]) + timedelta(days=2)
    assert attributes["next_attempt_at"] is None
    [copy] = api.get(f"/api/{TYPE}/{subscription['id']}/recurring_order_copies").json()["data"]
    assert copy["attributes"]["status"] == "failed"
    assert (
        api.get(f"/api/{TYPE}/{subscription['id']}/order_copies").json()["data"][0]["id"]
        == (copy["id"])
    )
