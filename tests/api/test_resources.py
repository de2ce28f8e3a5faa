"""The resources a web app needs to build a source order and follow a copy: skus,
customers, their wallets, addresses, orders (with their triggers) and line items."""

from __future__ import annotations

import pytest

from tests.api.errors import assert_error
from tests.api.shop import build_shop

SKU = {"code": "TEE", "name": "Tee", "unit_amount_cents": 1500, "currency_code": "USD"}


def create_line(api, order_id, **attributes):
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


# --- skus -------------------------------------------------------------------------------


def test_a_sku_is_created_read_listed_and_deleted(api):
    sku = api.create("skus", SKU)

    assert sku["attributes"] == {
        **SKU,
        "stock_quantity": 0,
        "do_not_ship": False,
        "discontinued": False,
        "created_at": sku["attributes"]["created_at"],
        "updated_at": sku["attributes"]["updated_at"],
    }
    assert api.retrieve("skus", sku["id"]) == sku
    assert api.ids("/api/skus", **{"filter[q][code_eq]": "TEE"}) == [sku["id"]]
    assert api.delete(f"/api/skus/{sku['id']}").status_code == 204
    assert_error(api.get(f"/api/skus/{sku['id']}"), 404)


def test_stock_discontinued_price_and_name_of_a_sku_are_updatable(api):
    sku = api.create("skus", {**SKU, "stock_quantity": 3})

    response = api.update(
        "skus",
        sku["id"],
        {"stock_quantity": 40, "discontinued": True, "unit_amount_cents": 1700, "name": "Tee 2"},
    )

    assert response.status_code == 200
    attributes = api.retrieve("skus", sku["id"])["attributes"]
    assert attributes["stock_quantity"] == 40
    assert attributes["discontinued"] is True
    assert attributes["unit_amount_cents"] == 1700
    assert attributes["name"] == "Tee 2"


@pytest.mark.parametrize(
    ("attributes", "pointer"),
    [
        ({"code": "CAP"}, "/data/attributes/code"),  # set at creation only
        ({"currency_code": "EUR"}, "/data/attributes/currency_code"),
        ({"stock_quantity": -1}, "/data/attributes/stock_quantity"),
        ({"unit_amount_cents": 2**31}, "/data/attributes/unit_amount_cents"),
        ({"name": None}, "/data/attributes/name"),
        ({"discontinued": "yes"}, "/data/attributes/discontinued"),
    ],
)
def test_a_bad_sku_update_is_a_422(api, attributes, pointer):
    sku = api.create("skus", SKU)

    assert_error(api.update("skus", sku["id"], attributes), 422, pointer=pointer)


@pytest.mark.parametrize(
    ("attributes", "pointer"),
    [
        ({**SKU, "currency_code": "usd"}, "/data/attributes/currency_code"),
        ({**SKU, "currency_code": "DOLLARS"}, "/data/attributes/currency_code"),
        ({**SKU, "unit_amount_cents": -5}, "/data/attributes/unit_amount_cents"),
        ({**SKU, "unit_amount_cents": 1.5}, "/data/attributes/unit_amount_cents"),
        (
            {"name": "No code", "unit_amount_cents": 1, "currency_code": "USD"},
            "/data/attributes/code",
        ),
    ],
)
def test_a_bad_sku_is_a_422(api, attributes, pointer):
    assert_error(
        api.post("/api/skus", {"data": {"type": "skus", "attributes": attributes}}),
        422,
        pointer=pointer,
    )


def test_a_sku_code_is_unique_in_its_mode(api):
    api.create("skus", SKU)

    response = api.post("/api/skus", {"data": {"type": "skus", "attributes": SKU}})

    assert_error(response, 422, pointer="/data/attributes/code", detail="taken")


def test_a_whole_float_counts_as_an_integer(api):
    sku = api.create("skus", {**SKU, "unit_amount_cents": 1500.0})

    assert sku["attributes"]["unit_amount_cents"] == 1500


# --- customers and their wallets --------------------------------------------------------


def test_a_customer_is_created_updated_and_listed(api):
    customer = api.create("customers", {"email": "ada@example.com", "metadata": {"tier": "gold"}})

    response = api.update("customers", customer["id"], {"email": "ada@lovelace.dev"})

    assert response.status_code == 200
    assert response.json()["data"]["attributes"]["email"] == "ada@lovelace.dev"
    assert response.json()["data"]["attributes"]["metadata"] == {"tier": "gold"}
    assert api.ids("/api/customers", **{"filter[q][email_end]": "lovelace.dev"}) == [customer["id"]]


def test_a_wallet_entry_defaults_to_a_credit_card_at_the_test_gateway(api):
    customer = api.create("customers", {"email": "ada@example.com"})

    entry = api.create(
        "customer_payment_sources",
        {"payment_source_token": "tok_visa"},
        {"customer": ("customers", customer["id"])},
    )

    attributes = entry["attributes"]
    assert attributes["payment_method"] == "credit_card"
    assert attributes["gateway"] == "test"
    assert attributes["disabled"] is False
    assert attributes["expires_on"] is None
    customer_link = api.get(f"/api/customer_payment_sources/{entry['id']}/customer").json()
    assert customer_link["data"]["id"] == customer["id"]


def test_token_and_expiry_of_a_wallet_entry_are_updatable(api):
    shop = build_shop(api, place=False)

    response = api.update(
        "customer_payment_sources",
        shop.entry["id"],
        {"payment_source_token": "tok_declined", "expires_on": "2031-10-31", "disabled": True},
    )

    assert response.status_code == 200
    attributes = api.retrieve("customer_payment_sources", shop.entry["id"])["attributes"]
    assert attributes["payment_source_token"] == "••••ined"  # write-only: tok_declined, masked
    assert attributes["expires_on"] == "2031-10-31"
    assert attributes["disabled"] is True


@pytest.mark.parametrize(
    "expires_on", ["2031-02-30", "31/10/2031", "2031-10-31T00:00:00", 20311031, ""]
)
def test_an_expiry_that_is_not_a_date_is_a_422(api, expires_on):
    shop = build_shop(api, place=False)

    response = api.update("customer_payment_sources", shop.entry["id"], {"expires_on": expires_on})

    assert_error(response, 422, pointer="/data/attributes/expires_on")


def test_a_wallet_entry_keeps_its_customer(api):
    shop = build_shop(api, place=False)
    other = api.create("customers", {"email": "other@example.com"})

    response = api.update(
        "customer_payment_sources",
        shop.entry["id"],
        relationships={"customer": ("customers", other["id"])},
    )

    assert_error(response, 422, pointer="/data/relationships/customer")


def test_a_wallet_entry_needs_a_customer(api):
    response = api.post(
        "/api/customer_payment_sources",
        {"data": {"type": "customer_payment_sources", "attributes": {"payment_source_token": "t"}}},
    )

    assert_error(response, 422, pointer="/data/relationships")


def test_a_customers_wallet_is_a_list_that_pages_filters_and_counts(api):
    customer = api.create("customers", {"email": "ada@example.com"})
    other = api.create("customers", {"email": "bob@example.com"})
    for token, disabled in (("tok_visa", False), ("tok_declined", True), ("tok_flaky", False)):
        entry = api.create(
            "customer_payment_sources",
            {"payment_source_token": token, "disabled": disabled},
            {"customer": ("customers", customer["id"])},
        )
    api.create(
        "customer_payment_sources",
        {"payment_source_token": "tok_visa"},
        {"customer": ("customers", other["id"])},
    )
    path = f"/api/customers/{customer['id']}/customer_payment_sources"

    everything = api.get(path).json()
    first_page = api.get(path, **{"page[size]": "2", "sort": "created_at"}).json()
    enabled = api.get(path, **{"filter[q][disabled_eq]": "false"}).json()

    assert everything["meta"] == {"record_count": 3, "page_count": 1}
    assert len(first_page["data"]) == 2
    assert first_page["meta"] == {"record_count": 3, "page_count": 2}
    assert first_page["links"]["next"].startswith(f"http://testserver{path}?")
    assert enabled["meta"]["record_count"] == 2
    assert entry["id"] in {e["id"] for e in enabled["data"]}


def test_deleting_a_customer_without_orders_takes_their_wallet(api):
    customer = api.create("customers", {"email": "ada@example.com"})
    entry = api.create(
        "customer_payment_sources",
        {"payment_source_token": "tok_visa"},
        {"customer": ("customers", customer["id"])},
    )

    assert api.delete(f"/api/customers/{customer['id']}").status_code == 204
    assert_error(api.get(f"/api/customer_payment_sources/{entry['id']}"), 404)


def test_a_customer_with_orders_is_not_deleted(api):
    shop = build_shop(api, place=False)

    assert_error(api.delete(f"/api/customers/{shop.customer['id']}"), 409, detail="has orders")
    assert api.ids(f"/api/customers/{shop.customer['id']}/orders") == [shop.order["id"]]


def test_a_wallet_entry_is_deleted_once_no_open_order_needs_it(api):
    shop = build_shop(api)  # placed: the order keeps naming the entry, as a record

    assert api.delete(f"/api/customer_payment_sources/{shop.entry['id']}").status_code == 204
    assert api.ids(f"/api/customers/{shop.customer['id']}/customer_payment_sources") == []
    order = api.get(f"/api/orders/{shop.order['id']}").json()["data"]
    assert order["attributes"]["status"] == "placed"


def test_a_wallet_entry_an_open_order_is_charged_to_stays(api):
    shop = build_shop(api, place=False)

    response = api.delete(f"/api/customer_payment_sources/{shop.entry['id']}")

    assert_error(response, 409, detail=f"pays for order {shop.order['id']}")
    assert api.ids(f"/api/customers/{shop.customer['id']}/customer_payment_sources") == [
        shop.entry["id"]
    ]


# --- addresses --------------------------------------------------------------------------


def test_an_address_is_created_updated_and_deleted(api):
    address = api.create(
        "addresses",
        {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "company": "Engines Ltd",
            "line_1": "12 St James's Square",
            "line_2": "Flat 2",
            "city": "London",
            "zip_code": "SW1Y 4JH",
            "state_code": "LND",
            "country_code": "GB",
            "phone": "+44 20 0000 0000",
            "email": "ada@example.com",
        },
    )

    updated = api.update("addresses", address["id"], {"city": "Bath", "line_2": None})

    assert updated.status_code == 200
    assert updated.json()["data"]["attributes"]["city"] == "Bath"
    assert updated.json()["data"]["attributes"]["line_2"] is None
    assert updated.json()["data"]["attributes"]["company"] == "Engines Ltd"
    assert api.delete(f"/api/addresses/{address['id']}").status_code == 204


@pytest.mark.parametrize(
    ("attributes", "pointer"),
    [
        ({"line_1": "1 Main St", "city": "Austin", "country_code": "USA"}, "country_code"),
        ({"line_1": "1 Main St", "city": "Austin", "country_code": "us"}, "country_code"),
        ({"line_1": "1 Main St", "country_code": "US"}, "city"),
        ({"city": "Austin", "country_code": "US"}, "line_1"),
    ],
)
def test_a_bad_address_is_a_422(api, attributes, pointer):
    response = api.post("/api/addresses", {"data": {"type": "addresses", "attributes": attributes}})

    assert_error(response, 422, pointer=f"/data/attributes/{pointer}")


def test_an_address_an_order_uses_is_not_deleted(api):
    shop = build_shop(api, place=False)

    assert_error(api.delete(f"/api/addresses/{shop.billing['id']}"), 409)
    assert api.retrieve("orders", shop.order["id"], include="billing_address")["relationships"][
        "billing_address"
    ]["data"] == {"type": "addresses", "id": shop.billing["id"]}


# --- orders and line items --------------------------------------------------------------


@pytest.fixture
def draft(api):
    """A draft order of a customer with a wallet, addresses, and a SKU in the catalog."""
    api.create("skus", {**SKU, "stock_quantity": 10})
    customer = api.create("customers", {"email": "ada@example.com"})
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
        {"currency_code": "USD", "customer_email": "ada@example.com", "reference": "WEB-1"},
        {
            "customer": ("customers", customer["id"]),
            "billing_address": ("addresses", address["id"]),
            "shipping_address": ("addresses", address["id"]),
        },
    )
    return {"order": order, "entry": entry, "customer": customer, "address": address}


def test_a_new_order_is_a_draft_with_a_number_and_no_totals(api, draft):
    attributes = draft["order"]["attributes"]

    assert attributes["status"] == "draft"
    assert attributes["payment_status"] == "unpaid"
    assert attributes["fulfillment_status"] == "unfulfilled"
    assert isinstance(attributes["number"], int)
    assert attributes["total_amount_cents"] == attributes["subtotal_amount_cents"] == 0
    assert attributes["currency_code"] == "USD"
    assert attributes["reference"] == "WEB-1"
    assert attributes["placed_at"] is None
    relationships = api.retrieve("orders", draft["order"]["id"], include="customer")[
        "relationships"
    ]
    assert relationships["customer"]["data"]["id"] == draft["customer"]["id"]


def test_line_items_are_priced_from_the_catalog_and_total_the_order(api, draft):
    order_id = draft["order"]["id"]

    tee = create_line(api, order_id, sku_code="TEE", quantity=2, unit_amount_cents=1)
    discount = create_line(
        api, order_id, item_type="adjustments", name="Welcome", unit_amount_cents=-500
    )
    gift = create_line(
        api,
        order_id,
        item_type="gift_cards",
        name="Card",
        unit_amount_cents=1000,
        options=[{"message": "hi"}],
        metadata={"from": "bob"},
    )

    assert tee.status_code == discount.status_code == gift.status_code == 201
    assert tee.json()["data"]["attributes"]["unit_amount_cents"] == 1500  # not the client's 1
    assert tee.json()["data"]["attributes"]["total_amount_cents"] == 3000
    assert tee.json()["data"]["attributes"]["name"] == "Tee"
    assert gift.json()["data"]["attributes"]["options"] == [{"message": "hi"}]
    order = api.retrieve("orders", order_id)["attributes"]
    assert order["status"] == "pending"
    assert order["subtotal_amount_cents"] == 4000
    assert order["adjustment_amount_cents"] == -500
    assert order["total_amount_cents"] == 3500


def test_an_orders_line_items_are_a_list_that_pages_filters_and_counts(api, draft):
    order_id = draft["order"]["id"]
    first = create_line(api, order_id, sku_code="TEE", quantity=1).json()["data"]
    create_line(api, order_id, item_type="adjustments", name="A", unit_amount_cents=-1)
    create_line(api, order_id, item_type="adjustments", name="B", unit_amount_cents=-2)
    path = f"/api/orders/{order_id}/line_items"

    page = api.get(path, **{"page[size]": "2"}).json()
    adjustments = api.get(path, **{"filter[q][item_type_eq]": "adjustments"}).json()

    assert page["data"][0]["id"] == first["id"]  # oldest first
    assert page["meta"] == {"record_count": 3, "page_count": 2}
    assert "next" in page["links"]
    assert adjustments["meta"]["record_count"] == 2
    assert {line["attributes"]["name"] for line in adjustments["data"]} == {"A", "B"}
    linkage = api.get(f"/api/orders/{order_id}/relationships/line_items").json()["data"]
    assert len(linkage) == 3


@pytest.mark.parametrize(
    ("attributes", "pointer", "detail"),
    [
        ({"sku_code": "NOPE"}, "/data/attributes/sku_code", "does not exist"),
        ({"item_type": "adjustments", "name": "x"}, "/data/attributes/unit_amount_cents", "needs"),
        ({"sku_code": "TEE", "quantity": 0}, "/data/attributes/quantity", "greater than"),
        ({"item_type": "coupons"}, "/data/attributes/item_type", "skus"),
        (
            {"item_type": "bundles", "unit_amount_cents": 2**30, "quantity": 4},
            "/data/attributes/quantity",
            "more than",
        ),
    ],
)
def test_a_bad_line_item_is_a_422(api, draft, attributes, pointer, detail):
    response = create_line(api, draft["order"]["id"], **attributes)

    assert_error(response, 422, pointer=pointer, detail=detail)
    assert api.retrieve("orders", draft["order"]["id"])["attributes"]["status"] == "draft"


def test_a_sku_in_another_currency_is_a_422(api, draft):
    api.create("skus", {**SKU, "code": "EU-TEE", "currency_code": "EUR"})

    response = create_line(api, draft["order"]["id"], sku_code="EU-TEE")

    assert_error(response, 422, pointer="/data/attributes/sku_code", detail="EUR")


def test_a_discontinued_sku_is_a_422_as_it_is_for_a_copy(api, draft):
    api.create("skus", {**SKU, "code": "OLD-TEE", "discontinued": True})

    response = create_line(api, draft["order"]["id"], sku_code="OLD-TEE")

    # The same words a copy records in errors_log: one pricer for both.
    assert_error(
        response, 422, pointer="/data/attributes/sku_code", detail="SKU OLD-TEE is discontinued"
    )


def test_a_line_item_is_deleted_and_the_totals_follow(api, draft):
    order_id = draft["order"]["id"]
    create_line(api, order_id, sku_code="TEE", quantity=1)
    discount = create_line(api, order_id, item_type="adjustments", name="D", unit_amount_cents=-200)

    assert api.delete(f"/api/line_items/{discount.json()['data']['id']}").status_code == 204

    assert api.retrieve("orders", order_id)["attributes"]["total_amount_cents"] == 1500


def test_line_items_are_not_updated_in_place(api, draft):
    line = create_line(api, draft["order"]["id"], sku_code="TEE").json()["data"]

    response = api.update("line_items", line["id"], {"quantity": 3})

    assert_error(response, 405)


def test_use_a_wallet_entry_then_place_the_order(api, draft):
    order_id = draft["order"]["id"]
    create_line(api, order_id, sku_code="TEE", quantity=2)

    response = api.update(
        "orders", order_id, {"_customer_payment_source_id": draft["entry"]["id"], "_place": True}
    )

    assert response.status_code == 200
    order = response.json()["data"]
    assert order["attributes"]["status"] == "placed"
    assert order["attributes"]["payment_status"] == "authorized"
    assert order["attributes"]["payment_method"] == "credit_card"
    assert order["attributes"]["placed_at"] is not None
    source = api.get(f"/api/orders/{order_id}/customer_payment_source").json()["data"]
    assert source["id"] == draft["entry"]["id"]
    sku_id = api.ids("/api/skus")[0]
    assert api.retrieve("skus", sku_id)["attributes"]["stock_quantity"] == 8


def test_cancel_a_placed_order(api):
    shop = build_shop(api, stock=10, quantity=3)

    response = api.update("orders", shop.order["id"], {"_cancel": True})

    assert response.status_code == 200
    attributes = response.json()["data"]["attributes"]
    assert attributes["status"] == "cancelled"
    assert attributes["payment_status"] == "voided"
    assert attributes["cancelled_at"] is not None
    assert api.retrieve("skus", shop.sku["id"])["attributes"]["stock_quantity"] == 10


@pytest.mark.parametrize(
    ("setup", "trigger", "detail"),
    [
        ("nothing", "_place", "has no line items"),
        ("declined", "_place", "payment declined"),
        ("draft", "_cancel", "only placed or approved orders can be cancelled"),
    ],
)
def test_a_trigger_that_cannot_run_is_a_422_and_changes_nothing(api, draft, setup, trigger, detail):
    order_id = draft["order"]["id"]
    if setup == "declined":
        create_line(api, order_id, sku_code="TEE")
        api.update(
            "customer_payment_sources",
            draft["entry"]["id"],
            {"payment_source_token": "tok_declined"},
        )
        api.update("orders", order_id, {"_customer_payment_source_id": draft["entry"]["id"]})
    status = api.retrieve("orders", order_id)["attributes"]["status"]

    response = api.update("orders", order_id, {trigger: True})

    assert_error(response, 422, pointer=f"/data/attributes/{trigger}", detail=detail)
    assert api.retrieve("orders", order_id)["attributes"]["status"] == status


def test_a_gateway_that_does_not_answer_is_a_503_and_the_next_try_places(api, draft):
    order_id = draft["order"]["id"]
    create_line(api, order_id, sku_code="TEE")
    api.update(
        "customer_payment_sources", draft["entry"]["id"], {"payment_source_token": "tok_flaky"}
    )
    api.update("orders", order_id, {"_customer_payment_source_id": draft["entry"]["id"]})

    tries = [api.update("orders", order_id, {"_place": True}) for _ in range(3)]

    assert [t.status_code for t in tries] == [503, 503, 200]
    assert_error(tries[0], 503, code="SERVICE_UNAVAILABLE")
    assert tries[2].json()["data"]["attributes"]["status"] == "placed"


def test_a_wallet_entry_of_another_customer_is_a_422(api, draft):
    stranger = api.create("customers", {"email": "eve@example.com"})
    entry = api.create(
        "customer_payment_sources",
        {"payment_source_token": "tok_visa"},
        {"customer": ("customers", stranger["id"])},
    )

    response = api.update(
        "orders", draft["order"]["id"], {"_customer_payment_source_id": entry["id"]}
    )

    assert_error(response, 422, detail="another customer")


def test_a_placed_order_keeps_its_customer_addresses_and_payment(api):
    shop = build_shop(api)
    other = api.create("addresses", {"line_1": "2 Side St", "city": "Austin", "country_code": "US"})

    email = api.update("orders", shop.order["id"], {"customer_email": "new@example.com"})
    address = api.update(
        "orders", shop.order["id"], relationships={"billing_address": ("addresses", other["id"])}
    )
    wallet = api.update(
        "orders", shop.order["id"], {"_customer_payment_source_id": shop.entry["id"]}
    )
    line = create_line(api, shop.order["id"], sku_code="TEE")
    reference = api.update("orders", shop.order["id"], {"reference": "ERP-9", "metadata": {"a": 1}})

    assert_error(email, 409, code="INVALID_STATUS", detail="customer_email")
    assert_error(address, 409, code="INVALID_STATUS", detail="billing_address")
    assert_error(wallet, 409, code="INVALID_STATUS")
    assert_error(line, 409, code="INVALID_STATUS")
    assert reference.status_code == 200
    assert reference.json()["data"]["attributes"]["reference"] == "ERP-9"
    assert reference.json()["data"]["attributes"]["customer_email"] == "tee@example.com"


def test_a_draft_order_changes_its_addresses_and_can_drop_one(api, draft):
    other = api.create("addresses", {"line_1": "2 Side St", "city": "Austin", "country_code": "US"})

    response = api.update(
        "orders",
        draft["order"]["id"],
        relationships={"billing_address": ("addresses", other["id"]), "shipping_address": None},
    )

    assert response.status_code == 200
    order = api.retrieve("orders", draft["order"]["id"], include="billing_address,shipping_address")
    assert order["relationships"]["billing_address"]["data"]["id"] == other["id"]
    assert order["relationships"]["shipping_address"]["data"] is None


@pytest.mark.parametrize(
    "attributes",
    [{"status": "placed"}, {"total_amount_cents": 0}, {"number": 1}, {"payment_status": "paid"}],
)
def test_the_state_and_totals_of_an_order_are_read_only(api, draft, attributes):
    response = api.update("orders", draft["order"]["id"], attributes)

    assert_error(response, 422, detail="read-only")


def test_a_draft_order_is_deleted_with_its_line_items(api, draft):
    order_id = draft["order"]["id"]
    line = create_line(api, order_id, sku_code="TEE").json()["data"]

    assert api.delete(f"/api/orders/{order_id}").status_code == 204
    assert_error(api.get(f"/api/line_items/{line['id']}"), 404)


def test_a_placed_or_copied_order_is_not_deleted(api):
    placed = build_shop(api)
    copied = build_shop(api, code="CAP", place=False)
    api.create("order_copies", {}, {"source_order": ("orders", copied.order["id"])})

    assert_error(api.delete(f"/api/orders/{placed.order['id']}"), 409, code="INVALID_STATUS")
    assert_error(api.delete(f"/api/orders/{copied.order['id']}"), 409, detail="order copies")


def test_an_orders_copies_both_ways(api):
    shop = build_shop(api)
    copy = api.create("order_copies", {}, {"source_order": ("orders", shop.order["id"])})

    assert api.ids(f"/api/orders/{shop.order['id']}/order_copies") == [copy["id"]]
    assert api.ids(f"/api/orders/{shop.order['id']}/origin_order_copies") == []
