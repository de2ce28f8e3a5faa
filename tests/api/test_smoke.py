def test_build_and_copy_over_http(api):
    api.create(
        "skus",
        {
            "code": "TEE",
            "name": "Tee",
            "unit_amount_cents": 1500,
            "currency_code": "USD",
            "stock_quantity": 10,
        },
    )
    customer = api.create("customers", {"email": "ada@example.com"})
    entry = api.create(
        "customer_payment_sources",
        {"payment_source_token": "tok_visa"},
        {"customer": ("customers", customer["id"])},
    )
    address = api.create(
        "addresses", {"line_1": "Via Roma 1", "city": "Florence", "country_code": "IT"}
    )
    order = api.create(
        "orders",
        {"currency_code": "USD", "customer_email": "ada@example.com"},
        {
            "customer": ("customers", customer["id"]),
            "billing_address": ("addresses", address["id"]),
            "shipping_address": ("addresses", address["id"]),
        },
    )
    api.create("line_items", {"sku_code": "TEE", "quantity": 2}, {"order": ("orders", order["id"])})
    r = api.patch(
        f"/api/orders/{order['id']}",
        {
            "data": {
                "type": "orders",
                "id": order["id"],
                "attributes": {"_customer_payment_source_id": entry["id"], "_place": True},
            }
        },
    )
    assert r.status_code == 200, r.json()
    assert r.json()["data"]["attributes"]["status"] == "placed"
    copy = api.create(
        "order_copies", {"place_target_order": True}, {"source_order": ("orders", order["id"])}
    )
    assert copy["attributes"]["status"] == "pending"
    r = api.get(
        "/api/order_copies", **{"filter[q][status_eq]": "pending", "include": "source_order"}
    )
    assert r.status_code == 200, r.json()
    print(r.json())
    assert r.json()["meta"]["record_count"] == 1
