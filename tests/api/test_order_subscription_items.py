"""``/api/order_subscription_items``: a subscription's items (automatic mode) made from its
source order's lines of its frequency or over the API, validated, changed and removed;
a renewal of a subscription with items builds its target from them alone (the domain
tick and engine here, a real worker and two beat ticks at the end)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from copying.copies.dispatch import unit_of_work
from copying.runs import Outcome
from copying.subscriptions import renewals
from models import LineItem, OrderCopy, utcnow
from tests import money
from tests.api.errors import assert_error
from tests.api.shop import Shop, build_shop
from tests.fixtures import Published
from tests.invariants import violations
from tests.runs import execute_one

TYPE = "order_subscription_items"
SUBSCRIPTIONS = "order_subscriptions"
ATTRIBUTES = {
    "item_type",
    "sku_code",
    "bundle_code",
    "quantity",
    "unit_amount_cents",
    "total_amount_cents",
    "created_at",
    "updated_at",
    "metadata",
}
STOCK = 50


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.json()
    return response.json()["data"]  # type: ignore[no-any-return]


def sku(api, code: str, price: int, currency: str = "USD", **extra: Any) -> dict[str, Any]:
    return api.create(
        "skus",
        {
            "code": code,
            "name": f"{code} name",
            "unit_amount_cents": price,
            "currency_code": currency,
            "stock_quantity": STOCK,
            **extra,
        },
    )


def line(api, order_id: str, **attributes: Any) -> Any:
    return api.post(
        "/api/line_items",
        {
            "data": {
                "type": "line_items",
                "attributes": attributes,
                "relationships": {"order": {"data": {"type": "orders", "id": order_id}}},
            }
        },
    )


def mixed_shop(api) -> Shop:
    """A placed order of 2 TEE subscribed monthly (1500 each), 1 CAP bought once (900)
    and 3 MUG subscribed weekly (700 each)."""
    shop = build_shop(api, code="TEE", stock=STOCK, frequency="monthly", place=False)
    sku(api, "CAP", 900)
    sku(api, "MUG", 700)
    assert line(api, shop.order["id"], sku_code="CAP", quantity=1).status_code == 201
    assert (
        line(api, shop.order["id"], sku_code="MUG", quantity=3, frequency="weekly").status_code
        == 201
    )
    shop.order = ok(api.update("orders", shop.order["id"], {"_place": True}))
    return shop


def subscribe(api, shop: Shop, frequency: str = "monthly", **attributes: Any) -> dict[str, Any]:
    return api.create(
        SUBSCRIPTIONS,
        {"frequency": frequency, **attributes},
        {"source_order": ("orders", shop.order["id"])},
    )


def start(api, subscription: dict[str, Any]) -> None:
    """Renewing from its next run on (a draft is activated; one that started at once is)."""
    if api.retrieve(SUBSCRIPTIONS, subscription["id"])["attributes"]["status"] != "active":
        ok(api.update(SUBSCRIPTIONS, subscription["id"], {"_activate": True}))


def post_item(
    api, subscription_id: str | None, relationships: dict[str, Any] | None = None, **attributes
) -> Any:
    links: dict[str, Any] = dict(relationships or {})
    if subscription_id is not None:
        links["order_subscription"] = {"data": {"type": SUBSCRIPTIONS, "id": subscription_id}}
    return api.post(
        f"/api/{TYPE}", {"data": {"type": TYPE, "attributes": attributes, "relationships": links}}
    )


def add_item(api, subscription_id: str, **attributes: Any) -> dict[str, Any]:
    response = post_item(api, subscription_id, **attributes)
    assert response.status_code == 201, response.json()
    return response.json()["data"]  # type: ignore[no-any-return]


def items_of(api, subscription_id: str) -> list[tuple[str, int, int]]:
    response = api.get(f"/api/{SUBSCRIPTIONS}/{subscription_id}/{TYPE}", sort="created_at")
    assert response.status_code == 200, response.json()
    return [
        (
            i["attributes"]["sku_code"],
            i["attributes"]["quantity"],
            i["attributes"]["unit_amount_cents"],
        )
        for i in response.json()["data"]
    ]


def renew(committed, due) -> list[str]:
    with unit_of_work(committed, Published()) as session:
        return renewals.tick(session, due, batch_size=100).copies


def target_lines(committed, copy_id: str) -> list[tuple[str, str | None, int, int, int]]:
    """(item_type, sku_code, quantity, unit amount, total) of the copy's target's lines."""
    return read_target_lines(
        committed,
        copy_id,
        lambda line: (
            line.item_type.value,
            line.sku_code,
            line.quantity,
            line.unit_amount_cents,
            line.total_amount_cents,
        ),
    )


def read_target_lines(
    committed, copy_id: str, read: Callable[[LineItem], tuple[Any, ...]]
) -> list[Any]:
    """What ``read`` takes of each line of the copy's target order, in order."""
    with committed.begin() as session:
        copy = session.get_one(OrderCopy, copy_id)
        assert copy.target_order_id is not None
        return [
            read(line)
            for line in session.scalars(
                select(LineItem)
                .where(LineItem.order_id == copy.target_order_id)
                .order_by(LineItem.position)
            )
        ]


# --- made from the source order's lines of the subscription's frequency --------------------


def test_a_new_subscription_gets_an_item_per_line_of_its_frequency(api):
    shop = mixed_shop(api)

    monthly = subscribe(api, shop, "monthly")
    weekly = subscribe(api, shop, "weekly")
    daily = subscribe(api, shop, "daily")

    assert items_of(api, monthly["id"]) == [("TEE", 2, 1500)]
    assert items_of(api, weekly["id"]) == [("MUG", 3, 700)]
    assert items_of(api, daily["id"]) == []  # manual mode: the whole source order renews
    [item] = api.get(f"/api/{SUBSCRIPTIONS}/{monthly['id']}/{TYPE}").json()["data"]
    assert set(item["attributes"]) == ATTRIBUTES
    assert item["attributes"]["total_amount_cents"] == 3000
    source_line = api.get(f"/api/{TYPE}/{item['id']}/source_line_item").json()["data"]
    assert (source_line["attributes"]["sku_code"], source_line["attributes"]["frequency"]) == (
        "TEE",
        "monthly",
    )
    included = api.retrieve(SUBSCRIPTIONS, monthly["id"], include=TYPE)
    assert included["relationships"][TYPE]["data"] == [{"type": TYPE, "id": item["id"]}]


@pytest.mark.parametrize(
    ("attributes", "detail"),
    [
        ({"sku_code": "TEE", "frequency": "fortnightly"}, "is not one of"),
        (
            {
                "item_type": "adjustments",
                "name": "Fee",
                "unit_amount_cents": 100,
                "frequency": "monthly",
            },
            "not subscribed",
        ),
    ],
)
def test_a_line_items_frequency_is_checked(api, attributes, detail):
    shop = build_shop(api, place=False)

    response = line(api, shop.order["id"], **attributes)

    assert_error(response, 422, pointer="/data/attributes/frequency", detail=detail)


# --- create, read, change, remove --------------------------------------------------------


def test_create_defaults_to_the_source_line_else_the_catalog(api):
    shop = mixed_shop(api)
    subscription = subscribe(api, shop, "daily")
    sku(api, "SOCK", 400)

    cap = add_item(api, subscription["id"], sku_code="CAP")
    sock = add_item(api, subscription["id"], sku_code="SOCK", quantity=4, metadata={"k": "v"})
    priced = add_item(api, subscription["id"], sku_code="MUG", unit_amount_cents=650)

    assert (cap["attributes"]["quantity"], cap["attributes"]["unit_amount_cents"]) == (1, 900)
    assert sock["attributes"] == {
        **sock["attributes"],
        "quantity": 4,
        "unit_amount_cents": 400,
        "total_amount_cents": 1600,
        "metadata": {"k": "v"},
    }
    assert (priced["attributes"]["quantity"], priced["attributes"]["total_amount_cents"]) == (
        3,
        1950,
    )
    assert api.get(f"/api/{TYPE}/{sock['id']}/source_line_item").json() == {"data": None}
    assert (
        api.get(f"/api/{TYPE}/{cap['id']}/order_subscription").json()["data"]["id"]
        == (subscription["id"])
    )
    assert api.ids(
        f"/api/{TYPE}",
        **{"filter[q][order_subscription_id_eq]": subscription["id"]},
        sort="-unit_amount_cents",
    ) == [cap["id"], priced["id"], sock["id"]]


def test_create_from_a_source_line_item_takes_its_sku_quantity_and_amount(api):
    shop = mixed_shop(api)
    subscription = subscribe(api, shop, "daily")
    [mug_line] = [
        i["id"]
        for i in api.get(f"/api/orders/{shop.order['id']}/line_items").json()["data"]
        if i["attributes"]["sku_code"] == "MUG"
    ]

    response = post_item(
        api,
        subscription["id"],
        {"source_line_item": {"data": {"type": "line_items", "id": mug_line}}},
    )

    assert response.status_code == 201, response.json()
    assert items_of(api, subscription["id"]) == [("MUG", 3, 700)]


def test_update_changes_quantity_amount_and_sku(api):
    shop = mixed_shop(api)
    subscription = subscribe(api, shop)
    [item] = api.get(f"/api/{SUBSCRIPTIONS}/{subscription['id']}/{TYPE}").json()["data"]

    changed = ok(api.update(TYPE, item["id"], {"quantity": 5, "unit_amount_cents": 1200}))
    assert (changed["attributes"]["quantity"], changed["attributes"]["total_amount_cents"]) == (
        5,
        6000,
    )

    # another SKU takes its source line's price unless one is set with it
    swapped = ok(api.update(TYPE, item["id"], {"sku_code": "CAP"}))
    assert (swapped["attributes"]["sku_code"], swapped["attributes"]["unit_amount_cents"]) == (
        "CAP",
        900,
    )
    sku(api, "SOCK", 400)
    own_price = ok(api.update(TYPE, item["id"], {"sku_code": "SOCK", "unit_amount_cents": 10}))
    assert own_price["attributes"]["unit_amount_cents"] == 10
    assert api.get(f"/api/{TYPE}/{item['id']}/source_line_item").json() == {"data": None}


def test_remove_an_item_but_never_the_last(api):
    shop = mixed_shop(api)
    subscription = subscribe(api, shop)
    [tee] = api.get(f"/api/{SUBSCRIPTIONS}/{subscription['id']}/{TYPE}").json()["data"]
    cap = add_item(api, subscription["id"], sku_code="CAP")

    assert api.delete(f"/api/{TYPE}/{tee['id']}").status_code == 204
    assert_error(api.delete(f"/api/{TYPE}/{cap['id']}"), 409, code="IN_USE", detail="last")
    assert items_of(api, subscription["id"]) == [("CAP", 1, 900)]


def test_a_cancelled_subscriptions_items_only_take_metadata(api):
    shop = mixed_shop(api)
    subscription = subscribe(api, shop)
    [item] = api.get(f"/api/{SUBSCRIPTIONS}/{subscription['id']}/{TYPE}").json()["data"]
    add_item(api, subscription["id"], sku_code="CAP")
    ok(api.update(SUBSCRIPTIONS, subscription["id"], {"_cancel": True}))

    assert_error(post_item(api, subscription["id"], sku_code="MUG"), 409, code="INVALID_STATUS")
    assert_error(api.update(TYPE, item["id"], {"quantity": 9}), 409, code="INVALID_STATUS")
    assert_error(api.delete(f"/api/{TYPE}/{item['id']}"), 409, code="INVALID_STATUS")
    assert ok(api.update(TYPE, item["id"], {"metadata": {"note": "kept"}}))["attributes"][
        "metadata"
    ] == {"note": "kept"}
    assert items_of(api, subscription["id"]) == [("TEE", 2, 1500), ("CAP", 1, 900)]


# --- what is refused ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "pointer", "detail"),
    [
        ({"sku_code": "TEE", "quantity": 0}, "/data/attributes/quantity", None),
        ({"sku_code": "TEE", "quantity": -2}, "/data/attributes/quantity", None),
        ({"sku_code": "TEE", "unit_amount_cents": -1}, "/data/attributes/unit_amount_cents", None),
        ({"sku_code": "TEE", "quantity": "2"}, "/data/attributes/quantity", None),
        ({"sku_code": "NOPE"}, "/data/attributes/sku_code", "does not exist in test mode"),
        ({"sku_code": "OLD"}, "/data/attributes/sku_code", "discontinued"),
        ({"sku_code": "EURO"}, "/data/attributes/sku_code", "priced in EUR"),
        ({"quantity": 1}, "/data/attributes/sku_code", "needs a sku_code"),
        (
            {"sku_code": "TEE", "quantity": 2**30, "unit_amount_cents": 100},
            "/data/attributes/quantity",
            "more than",
        ),
        ({"sku_code": "TEE", "total_amount_cents": 5}, "/data/attributes/total_amount_cents", None),
        ({"sku_code": "TEE", "metadata": []}, "/data/attributes/metadata", None),
    ],
)
def test_create_refuses_bad_attributes_pointing_at_them(api, attributes, pointer, detail):
    shop = build_shop(api, stock=STOCK)
    sku(api, "OLD", 100, discontinued=True)
    sku(api, "EURO", 100, currency="EUR")
    subscription = subscribe(api, shop)

    assert_error(
        post_item(api, subscription["id"], **attributes), 422, pointer=pointer, detail=detail
    )
    assert items_of(api, subscription["id"]) == []


@pytest.mark.parametrize(
    ("attributes", "pointer"),
    [
        ({"quantity": 0}, "/data/attributes/quantity"),
        ({"unit_amount_cents": -5}, "/data/attributes/unit_amount_cents"),
        ({"sku_code": "NOPE"}, "/data/attributes/sku_code"),
        ({"unit_amount_cents": None}, "/data/attributes/unit_amount_cents"),
        ({"unit_amount_cents": 2**31 - 1}, "/data/attributes/quantity"),
    ],
)
def test_update_refuses_bad_attributes_and_changes_nothing(api, attributes, pointer):
    shop = mixed_shop(api)
    subscription = subscribe(api, shop)
    [item] = api.get(f"/api/{SUBSCRIPTIONS}/{subscription['id']}/{TYPE}").json()["data"]

    assert_error(api.update(TYPE, item["id"], attributes), 422, pointer=pointer)
    assert items_of(api, subscription["id"]) == [("TEE", 2, 1500)]


def test_create_needs_an_order_subscription_of_its_mode(api, live_api):
    live = build_shop(live_api, code="LIVE")
    live_subscription = subscribe(live_api, live)
    build_shop(api, stock=STOCK)

    assert_error(post_item(api, None, sku_code="TEE"), 422)
    assert_error(
        post_item(api, live_subscription["id"], sku_code="TEE"),
        422,
        pointer="/data/relationships/order_subscription",
        detail="does not exist in test mode",
    )


def test_a_line_of_another_customers_order_is_refused(api):
    shop = build_shop(api, stock=STOCK)
    subscription = subscribe(api, shop)
    other = build_shop(api, code="OTHER")
    [other_line] = api.ids(f"/api/orders/{other.order['id']}/line_items")

    response = post_item(
        api,
        subscription["id"],
        {"source_line_item": {"data": {"type": "line_items", "id": other_line}}},
    )

    assert_error(response, 422, pointer="/data/relationships/source_line_item", detail="customer")


def test_a_test_key_never_sees_nor_changes_a_live_item(api, live_api):
    live = build_shop(live_api, code="LIVE", frequency="monthly")
    subscription = subscribe(live_api, live)
    [item] = live_api.ids(f"/api/{SUBSCRIPTIONS}/{subscription['id']}/{TYPE}")

    assert api.ids(f"/api/{TYPE}") == []
    assert_error(api.get(f"/api/{TYPE}/{item}"), 404)
    assert_error(api.update(TYPE, item, {"quantity": 5}), 404)
    assert_error(api.delete(f"/api/{TYPE}/{item}"), 404)
    assert live_api.retrieve(TYPE, item)["attributes"]["quantity"] == 2
    assert live_api.retrieve(TYPE, item)["meta"] == {"mode": "live"}


# --- renewals ------------------------------------------------------------------------------


def test_a_renewal_in_automatic_mode_builds_its_target_from_the_items_alone(
    api, committed, gateways
):
    shop = mixed_shop(api)
    subscription = subscribe(api, shop)
    [tee] = api.ids(f"/api/{SUBSCRIPTIONS}/{subscription['id']}/{TYPE}")
    ok(api.update(TYPE, tee, {"quantity": 3, "unit_amount_cents": 1200}))
    add_item(api, subscription["id"], sku_code="MUG", quantity=1, unit_amount_cents=0)
    start(api, subscription)
    due = utcnow() + timedelta(days=40)

    [first] = renew(committed, due)
    assert execute_one(committed, first, gateways=gateways) == Outcome.COMPLETED

    assert target_lines(committed, first) == [
        ("skus", "TEE", 3, 1200, 3600),
        ("skus", "MUG", 1, 0, 0),
    ]
    target = api.get(f"/api/order_copies/{first}/target_order").json()["data"]["attributes"]
    assert (target["status"], target["currency_code"]) == ("placed", "USD")
    assert (target["subtotal_amount_cents"], target["total_amount_cents"]) == (3600, 3600)

    # the next renewal uses the items as they are then
    [mug] = [i for i in api.ids(f"/api/{SUBSCRIPTIONS}/{subscription['id']}/{TYPE}") if i != tee]
    cap = add_item(api, subscription["id"], sku_code="CAP", quantity=2)
    ok(api.update(TYPE, mug, {"quantity": 4, "unit_amount_cents": 650}))
    assert api.delete(f"/api/{TYPE}/{tee}").status_code == 204
    [second] = renew(committed, due + timedelta(days=40))
    assert execute_one(committed, second, gateways=gateways) == Outcome.COMPLETED

    assert target_lines(committed, second) == [
        ("skus", "MUG", 4, 650, 2600),
        ("skus", "CAP", 2, 900, 1800),
    ]
    assert cap["attributes"]["unit_amount_cents"] == 900
    attributes = api.retrieve(SUBSCRIPTIONS, subscription["id"])["attributes"]
    assert (attributes["occurrencies"], attributes["succeeded_on_last_run"]) == (2, True)
    stock = {"TEE": STOCK, "CAP": STOCK, "MUG": STOCK}
    with committed.begin() as session:
        assert violations(session, [first, second], stock) == []
        assert money.violations(session, stock) == []


def test_a_subscription_without_items_still_renews_its_whole_source_order(api, committed, gateways):
    shop = mixed_shop(api)
    subscription = subscribe(api, shop, "daily")
    start(api, subscription)

    [copy_id] = renew(committed, utcnow() + timedelta(days=2))
    assert execute_one(committed, copy_id, gateways=gateways) == Outcome.COMPLETED

    assert [
        (sku_code, quantity) for _, sku_code, quantity, *_ in target_lines(committed, copy_id)
    ] == [
        ("TEE", 2),
        ("CAP", 1),
        ("MUG", 3),
    ]


def test_an_item_whose_sku_is_out_of_stock_fails_the_renewal_saying_so(api, committed, gateways):
    shop = mixed_shop(api)
    no_retries = {"retry_after_seconds": [], "final_action": "keep_active"}
    subscription = subscribe(api, shop, failure_policy=no_retries)
    [tee] = api.ids(f"/api/{SUBSCRIPTIONS}/{subscription['id']}/{TYPE}")
    ok(api.update(TYPE, tee, {"quantity": STOCK}))  # 2 are held by the source order
    start(api, subscription)

    [copy_id] = renew(committed, utcnow() + timedelta(days=40))
    assert execute_one(committed, copy_id, gateways=gateways) == Outcome.FAILED

    errors = api.retrieve("order_copies", copy_id)["attributes"]["errors_log"]
    assert errors["line_items"] == [
        f"SKU TEE is out of stock ({STOCK} requested, {STOCK - 2} left)"
    ]


def renewed_once_by_two_ticks(api, committed, subscription_id: str) -> dict[str, Any]:
    """Make the started subscription due in a second, send two renewal ticks through Redis
    for that period and wait for the worker: one renewal of one period, completed (its
    copy is returned)."""
    from worker.app import RENEWALS_TICK_TASK, app

    due = utcnow() + timedelta(seconds=1)
    ok(
        api.update(
            SUBSCRIPTIONS, subscription_id, {"next_run_at": due.isoformat(timespec="milliseconds")}
        )
    )
    while utcnow() <= due:
        time.sleep(0.1)

    app.send_task(RENEWALS_TICK_TASK)
    app.send_task(RENEWALS_TICK_TASK)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        attributes = api.retrieve(SUBSCRIPTIONS, subscription_id)["attributes"]
        if attributes["occurrencies"] or attributes["errors_count"]:
            break
        time.sleep(0.2)
    time.sleep(1)  # the second tick, had it renewed again, has done so by now
    attributes = api.retrieve(SUBSCRIPTIONS, subscription_id)["attributes"]
    assert (attributes["occurrencies"], attributes["errors_count"]) == (1, 0), attributes
    [copy] = api.get(f"/api/{SUBSCRIPTIONS}/{subscription_id}/recurring_order_copies").json()[
        "data"
    ]
    assert copy["attributes"]["status"] == "completed"
    with committed.begin() as session:
        periods = Counter(
            session.scalars(
                select(OrderCopy.period_key).where(
                    OrderCopy.order_subscription_id == subscription_id
                )
            )
        )
    assert list(periods.values()) == [1]
    return copy  # type: ignore[no-any-return]


@pytest.mark.worker
def test_items_renew_exactly_once_under_two_beat_ticks_with_a_real_worker(
    api, committed, celery_worker
):
    """Two ticks through Redis for the same due period: one renewal, whose target order
    the worker builds from the items alone and places."""
    shop = mixed_shop(api)
    subscription = subscribe(api, shop)
    [tee] = api.ids(f"/api/{SUBSCRIPTIONS}/{subscription['id']}/{TYPE}")
    ok(api.update(TYPE, tee, {"quantity": 1, "unit_amount_cents": 1100}))
    start(api, subscription)

    copy = renewed_once_by_two_ticks(api, committed, subscription["id"])

    assert target_lines(committed, copy["id"]) == [("skus", "TEE", 1, 1100, 1100)]
    stock = {"TEE": STOCK, "CAP": STOCK, "MUG": STOCK}
    with committed.begin() as session:
        assert violations(session, [copy["id"]], stock) == []
        assert money.violations(session, stock) == []
