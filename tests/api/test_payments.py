"""After the authorization: an order's ``_capture``, ``_refund``, ``_refund_amount_cents``
and ``_void``, ``_cancel`` of a paid order, and the transactions they leave as
``authorizations``, ``captures``, ``refunds`` and ``voids``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.errors import assert_error
from tests.api.shop import build_shop

#: build_shop's order: 2 tees of 1500 cents.
TOTAL = 3000


def _trigger(api: Any, order_id: str, name: str, value: Any = True) -> Any:
    return api.update("orders", order_id, {name: value})


def _attributes(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()["data"]["attributes"]  # type: ignore[no-any-return]


def _listed(api: Any, type_: str, order_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/{type_}", **{"filter[q][order_id_eq]": order_id})
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def _flaky_shop(api: Any) -> str:
    """A placed order paid with ``tok_flaky`` (its authorization timed out twice first): every
    key asked of the test gateway for it times out twice, then is answered."""
    shop = build_shop(api, token="tok_flaky", place=False)
    statuses = [_trigger(api, shop.order["id"], "_place").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    return str(shop.order["id"])


def test_capture_takes_the_authorized_amount_and_the_order_is_paid(api):
    shop = build_shop(api)
    order_id = shop.order["id"]

    assert _attributes(_trigger(api, order_id, "_capture"))["payment_status"] == "paid"

    [capture] = _listed(api, "captures", order_id)
    assert capture["attributes"]["amount_cents"] == TOTAL
    assert capture["attributes"]["status"] == "succeeded"
    assert capture["attributes"]["succeeded"] is True
    assert capture["attributes"]["token"].startswith("test_")
    assert capture["attributes"]["idempotency_key"] == f"order:{order_id}:capture:1"
    [authorization] = _listed(api, "authorizations", order_id)
    assert authorization["attributes"]["status"] == "captured"
    related = api.get(f"/api/captures/{capture['id']}/reference_authorization").json()["data"]
    assert related["id"] == authorization["id"]
    from_order = api.get(f"/api/orders/{order_id}/captures").json()["data"]
    assert [c["id"] for c in from_order] == [capture["id"]]


def test_a_second_capture_is_a_409_on_the_trigger(api):
    shop = build_shop(api)
    _attributes(_trigger(api, shop.order["id"], "_capture"))

    assert_error(
        _trigger(api, shop.order["id"], "_capture"),
        409,
        pointer="/data/attributes/_capture",
        detail="its payment is paid",
    )
    assert len(_listed(api, "captures", shop.order["id"])) == 1


def test_partial_refunds_up_to_the_captured_total(api):
    shop = build_shop(api)
    order_id = shop.order["id"]
    _attributes(_trigger(api, order_id, "_capture"))

    first = _attributes(_trigger(api, order_id, "_refund_amount_cents", 1000))
    too_much = _trigger(api, order_id, "_refund_amount_cents", 2001)
    rest = _attributes(_trigger(api, order_id, "_refund_amount_cents", 2000))

    assert first["payment_status"] == "partially_refunded"
    assert_error(
        too_much, 422, pointer="/data/attributes/_refund_amount_cents", detail="2000 cents"
    )
    assert rest["payment_status"] == "refunded"
    refunds = _listed(api, "refunds", order_id)
    assert sorted(r["attributes"]["amount_cents"] for r in refunds) == [1000, 2000]
    assert {r["attributes"]["status"] for r in refunds} == {"succeeded"}
    [capture] = _listed(api, "captures", order_id)
    for refund in refunds:
        linked = api.get(f"/api/refunds/{refund['id']}/reference_capture").json()["data"]
        assert linked["id"] == capture["id"]
    assert_error(
        _trigger(api, order_id, "_refund"),
        409,
        pointer="/data/attributes/_refund",
        detail="only a captured payment can be refunded",
    )


def test_refund_true_gives_back_all_that_is_left(api):
    shop = build_shop(api)
    order_id = shop.order["id"]
    _attributes(_trigger(api, order_id, "_capture"))
    _attributes(_trigger(api, order_id, "_refund_amount_cents", 500))

    assert _attributes(_trigger(api, order_id, "_refund"))["payment_status"] == "refunded"
    amounts = sorted(r["attributes"]["amount_cents"] for r in _listed(api, "refunds", order_id))
    assert amounts == [500, TOTAL - 500]


@pytest.mark.parametrize("amount", [0, -1, -3000])
def test_a_refund_of_no_money_is_a_422(api, amount):
    shop = build_shop(api)
    _attributes(_trigger(api, shop.order["id"], "_capture"))

    assert_error(
        _trigger(api, shop.order["id"], "_refund_amount_cents", amount),
        422,
        pointer="/data/attributes/_refund_amount_cents",
    )
    assert _listed(api, "refunds", shop.order["id"]) == []


def test_an_uncaptured_order_cannot_be_refunded(api):
    shop = build_shop(api)

    assert_error(
        _trigger(api, shop.order["id"], "_refund_amount_cents", 100),
        409,
        pointer="/data/attributes/_refund_amount_cents",
        detail="its payment is authorized",
    )


def test_void_releases_the_hold_and_the_order_stays_placed(api):
    shop = build_shop(api)
    order_id = shop.order["id"]

    voided = _attributes(_trigger(api, order_id, "_void"))

    assert (voided["status"], voided["payment_status"]) == ("placed", "voided")
    [void] = _listed(api, "voids", order_id)
    assert (void["attributes"]["status"], void["attributes"]["amount_cents"]) == (
        "succeeded",
        TOTAL,
    )
    [authorization] = _listed(api, "authorizations", order_id)
    assert authorization["attributes"]["status"] == "voided"
    assert_error(
        _trigger(api, order_id, "_capture"),
        409,
        pointer="/data/attributes/_capture",
        detail="its payment is voided",
    )
    assert_error(_trigger(api, order_id, "_void"), 409, pointer="/data/attributes/_void")


def test_a_captured_payment_cannot_be_voided(api):
    shop = build_shop(api)
    _attributes(_trigger(api, shop.order["id"], "_capture"))

    assert_error(
        _trigger(api, shop.order["id"], "_void"),
        409,
        pointer="/data/attributes/_void",
        detail="its payment is paid",
    )
    assert _listed(api, "voids", shop.order["id"]) == []


def test_cancelling_a_paid_order_refunds_what_is_left(api):
    shop = build_shop(api)
    order_id = shop.order["id"]
    _attributes(_trigger(api, order_id, "_capture"))
    _attributes(_trigger(api, order_id, "_refund_amount_cents", 700))

    cancelled = _attributes(_trigger(api, order_id, "_cancel"))

    assert (cancelled["status"], cancelled["payment_status"]) == ("cancelled", "refunded")
    amounts = sorted(r["attributes"]["amount_cents"] for r in _listed(api, "refunds", order_id))
    assert amounts == [700, TOTAL - 700]
    assert _listed(api, "voids", order_id) == []


def test_cancelling_an_authorized_order_records_its_void(api):
    shop = build_shop(api)

    cancelled = _attributes(_trigger(api, shop.order["id"], "_cancel"))

    assert cancelled["payment_status"] == "voided"
    [void] = _listed(api, "voids", shop.order["id"])
    assert void["attributes"]["status"] == "succeeded"


def test_a_capture_the_gateway_does_not_answer_is_a_503_and_the_retry_replays_its_key(api):
    order_id = _flaky_shop(api)

    first = _trigger(api, order_id, "_capture")
    second = _trigger(api, order_id, "_capture")
    third = _trigger(api, order_id, "_capture")

    assert_error(first, 503, detail="tok_flaky capture timed out")
    assert first.headers["Retry-After"] == "1"
    assert second.status_code == 503
    assert _attributes(third)["payment_status"] == "paid"
    [capture] = _listed(api, "captures", order_id)
    assert capture["attributes"]["idempotency_key"] == f"order:{order_id}:capture:1"
    assert capture["attributes"]["status"] == "succeeded"


def test_a_refund_asked_for_and_not_answered_blocks_other_kinds_until_replayed(api):
    order_id = _flaky_shop(api)
    for _ in range(2):
        _trigger(api, order_id, "_capture")
    _attributes(_trigger(api, order_id, "_capture"))

    assert _trigger(api, order_id, "_refund_amount_cents", 100).status_code == 503
    blocked = _trigger(api, order_id, "_cancel")
    assert _trigger(api, order_id, "_refund_amount_cents", 100).status_code == 503
    replayed = _attributes(_trigger(api, order_id, "_refund_amount_cents", 100))

    assert_error(blocked, 409, pointer="/data/attributes/_cancel", detail="not answered yet")
    assert replayed["payment_status"] == "partially_refunded"
    [refund] = _listed(api, "refunds", order_id)
    assert refund["attributes"]["idempotency_key"] == f"order:{order_id}:refund:1"


def test_transactions_are_read_only_and_mode_isolated(api, live_api):
    shop = build_shop(api)
    _attributes(_trigger(api, shop.order["id"], "_capture"))
    [capture] = _listed(api, "captures", shop.order["id"])

    assert api.get(f"/api/captures/{capture['id']}").status_code == 200
    assert api.get(f"/api/refunds/{capture['id']}").status_code == 404  # another kind
    assert live_api.get(f"/api/captures/{capture['id']}").status_code == 404
    assert live_api.get("/api/authorizations").json()["data"] == []
    assert api.delete(f"/api/captures/{capture['id']}").status_code == 405


def test_a_capture_the_gateway_declines_is_a_422_with_its_message_and_nothing_paid(api, gateways):
    shop = build_shop(api)
    order_id = shop.order["id"]
    [authorization] = _listed(api, "authorizations", order_id)
    gateways["test"].void(  # the hold expired at the payment service, say
        idempotency_key=authorization["attributes"]["idempotency_key"],
        order_id=order_id,
        authorization_reference=authorization["attributes"]["token"],
    )

    declined = _trigger(api, order_id, "_capture")

    assert_error(
        declined,
        422,
        pointer="/data/attributes/_capture",
        detail="capture declined: the authorization was voided",
    )
    [capture] = _listed(api, "captures", order_id)
    assert (capture["attributes"]["status"], capture["attributes"]["succeeded"]) == (
        "failed",
        False,
    )
    assert capture["attributes"]["message"] == "the authorization was voided"
    assert api.retrieve("orders", order_id)["attributes"]["payment_status"] == "authorized"
