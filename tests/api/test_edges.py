"""The API's edges: a body limit enforced as the body streams in, the key checked before
the body is read, to-many linkage capped, datetimes out of range a 400, and wallet
tokens write-only. The wire-level ones talk to a real uvicorn over a socket."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from api.documents import LINKAGE_LIMIT
from api.errors import MEDIA_TYPE
from config import get_settings
from models import CustomerPaymentSource, db
from tests.api.errors import assert_error
from tests.api.shop import build_shop
from tests.api.web import raw_request, server_in_thread
from tests.factories import Line, make_order, make_sku

LIMIT = 1000


@pytest.fixture
def small_bodies(settings_env) -> int:
    settings_env["ORDERCOPY_MAX_BODY_BYTES"] = str(LIMIT)
    get_settings.cache_clear()
    return LIMIT


@pytest.fixture
def web(committed) -> Iterator[str]:
    with server_in_thread() as url:
        yield url


def head(method: str, path: str, *headers: str) -> str:
    return "\n".join(
        [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Accept: {MEDIA_TYPE}", *headers]
    )


def error_of(answer) -> dict:
    assert MEDIA_TYPE in answer.head.lower(), answer.head
    return json.loads(answer.body)["errors"][0]  # type: ignore[no-any-return]


# --- the body limit -----------------------------------------------------------------------


def test_a_body_declared_over_the_limit_is_a_413_before_a_byte_of_it_is_read(api, web):
    answer = raw_request(
        web,
        head(
            "POST",
            "/api/customers",
            f"Authorization: Bearer {api.token}",
            f"Content-Type: {MEDIA_TYPE}",
            f"Content-Length: {200 * 1024 * 1024}",
        ),
    )  # the body is never sent: an answer that waited for it would never come

    assert answer.status == 413
    assert error_of(answer)["code"] == "PAYLOAD_TOO_LARGE"


def test_a_chunked_body_is_cut_off_as_soon_as_it_passes_the_limit(api, web, small_bodies):
    piece = b'{"data": {"type": "customers", "attributes": {"email": "' + b"a" * LIMIT
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"

    answer = raw_request(  # one chunk past the limit, and never the end of the body
        web,
        head(
            "POST",
            "/api/customers",
            f"Authorization: Bearer {api.token}",
            f"Content-Type: {MEDIA_TYPE}",
            "Transfer-Encoding: chunked",
        ),
        [chunk],
    )

    assert answer.status == 413
    assert error_of(answer)["detail"] == (
        f"the request body is larger than {LIMIT} bytes; send less"
    )


def padded_customer(size: int) -> bytes:
    """A customer document of exactly ``size`` bytes."""
    document = {"data": {"type": "customers", "attributes": {"email": "a@example.com"}}}
    document["data"]["attributes"]["metadata"] = {"pad": ""}
    pad = size - len(json.dumps(document, separators=(",", ":")))
    document["data"]["attributes"]["metadata"]["pad"] = "x" * pad
    body = json.dumps(document, separators=(",", ":")).encode()
    assert len(body) == size
    return body


def test_the_limit_is_the_setting_a_body_at_it_is_read_one_byte_more_is_a_413(api, small_bodies):
    at_limit = api.client.post(
        "/api/customers", content=padded_customer(LIMIT), headers=api.headers()
    )
    over = api.client.post(
        "/api/customers", content=padded_customer(LIMIT + 1), headers=api.headers()
    )

    assert at_limit.status_code == 201, at_limit.json()
    assert_error(over, 413, code="PAYLOAD_TOO_LARGE", detail=f"larger than {LIMIT} bytes")


def test_the_default_limit_is_one_mebibyte(api):
    response = api.client.post(
        "/api/customers", content=padded_customer(1024 * 1024 + 1), headers=api.headers()
    )

    assert get_settings().max_body_bytes == 1024 * 1024
    assert_error(response, 413, detail="larger than 1048576 bytes")


# --- the key before the body --------------------------------------------------------------


def test_without_a_key_the_answer_is_a_401_without_reading_the_body(web):
    answer = raw_request(
        web,
        head("POST", "/api/customers", f"Content-Type: {MEDIA_TYPE}", "Content-Length: 500"),
    )  # the 500 bytes never come

    assert answer.status == 401
    assert error_of(answer)["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("authorization", [None, "Bearer oc_test_unknown", "Basic abc"])
def test_invalid_json_without_a_valid_key_is_a_401_not_a_400(http, authorization):
    headers = {"Accept": MEDIA_TYPE, "Content-Type": MEDIA_TYPE}
    if authorization:
        headers["Authorization"] = authorization

    response = http.post("/api/order_copies", content=b"{not json", headers=headers)

    assert_error(response, 401, code="UNAUTHORIZED")


def test_with_a_valid_key_invalid_json_is_still_a_400(api):
    response = api.client.post("/api/order_copies", content=b"{not json", headers=api.headers())

    assert_error(response, 400, detail="not valid JSON")


# --- to-many linkage and include ----------------------------------------------------------

LINES = LINKAGE_LIMIT + 5


@pytest.fixture
def long_order(api, committed) -> str:
    """An order of ``LINES`` line items."""
    with committed.begin() as session:
        sku = make_sku(session, stock=1000)
        order = make_order(session, [Line(sku) for _ in range(LINES)])
        return order.id


def all_line_ids(api, order_id: str) -> list[str]:
    """Every line of the order, in the related route's order, page by page."""
    first = api.ids(f"/api/orders/{order_id}/line_items", **{"page[size]": LINKAGE_LIMIT})
    second = api.ids(
        f"/api/orders/{order_id}/line_items",
        **{"page[size]": LINKAGE_LIMIT, "page[number]": 2},
    )
    return first + second


def test_include_of_a_to_many_relationship_holds_its_first_page_and_links_the_next(api, long_order):
    document = api.get(f"/api/orders/{long_order}", include="line_items").json()

    relationship = document["data"]["relationships"]["line_items"]
    every = all_line_ids(api, long_order)
    assert len(every) == LINES
    assert [i["id"] for i in relationship["data"]] == every[:LINKAGE_LIMIT]
    assert [i["id"] for i in document["included"]] == every[:LINKAGE_LIMIT]
    assert relationship["meta"] == {"truncated": True}
    following = api.client.get(relationship["links"]["next"], headers=api.headers()).json()
    assert [i["id"] for i in following["data"]] == every[LINKAGE_LIMIT:]


def test_include_in_a_list_caps_each_resource_on_its_own(api, long_order, committed):
    with committed.begin() as session:
        short = make_order(session, [Line(make_sku(session))]).id

    document = api.get("/api/orders", include="line_items").json()

    relationships = {o["id"]: o["relationships"]["line_items"] for o in document["data"]}
    assert len(relationships[long_order]["data"]) == LINKAGE_LIMIT
    assert "next" in relationships[long_order]["links"]
    assert len(relationships[short]["data"]) == 1
    assert "next" not in relationships[short]["links"]
    assert "meta" not in relationships[short]
    assert len(document["included"]) == LINKAGE_LIMIT + 1


def test_relationship_linkage_holds_the_first_page_and_links_the_next(api, long_order):
    document = api.get(f"/api/orders/{long_order}/relationships/line_items").json()

    every = all_line_ids(api, long_order)
    assert [i["id"] for i in document["data"]] == every[:LINKAGE_LIMIT]
    assert document["meta"] == {"truncated": True}
    assert document["links"]["next"].endswith(
        f"/api/orders/{long_order}/line_items?page%5Bnumber%5D=2&page%5Bsize%5D={LINKAGE_LIMIT}"
    )


def test_linkage_of_exactly_the_limit_is_whole(api, committed):
    with committed.begin() as session:
        sku = make_sku(session, stock=1000)
        order_id = make_order(session, [Line(sku) for _ in range(LINKAGE_LIMIT)]).id

    document = api.get(f"/api/orders/{order_id}/relationships/line_items").json()

    assert len(document["data"]) == LINKAGE_LIMIT
    assert "links" not in document
    assert "meta" not in document


# --- filters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment",
    [
        "0001-01-01T00:00:00+14:00",  # the year 0 in UTC
        "9999-12-31T23:59:59-14:00",  # the year 10000 in UTC
    ],
)
@pytest.mark.parametrize("predicate", ["gt", "eq", "in"])
def test_a_datetime_out_of_range_in_utc_is_a_400(api, moment, predicate):
    parameter = f"filter[q][created_at_{predicate}]"

    response = api.get("/api/order_copies", **{parameter: moment})

    assert_error(
        response, 400, parameter=parameter, code="INVALID_FILTER_VALUE", detail="years 1 to 9999"
    )


def test_the_edges_of_the_range_still_filter(api):
    customer = api.create("customers", {"email": "a@example.com"})["id"]

    for parameter, moment in (
        ("filter[q][created_at_gt]", "0001-01-01T14:00:00+14:00"),
        ("filter[q][created_at_lt]", "9999-12-31T09:59:59-14:00"),
    ):
        assert api.ids("/api/customers", **{parameter: moment}) == [customer]


# --- wallet tokens ------------------------------------------------------------------------

TOKEN = "tok_visa_card_4242"


def test_a_wallet_token_is_written_and_shown_masked_everywhere(api):
    shop = build_shop(api, place=False)
    entry_id = shop.entry["id"]

    updated = api.update("customer_payment_sources", entry_id, {"payment_source_token": TOKEN})
    shown = [
        updated.json()["data"],
        api.retrieve("customer_payment_sources", entry_id),
        api.get("/api/customer_payment_sources").json()["data"][0],
        api.get(f"/api/customers/{shop.customer['id']}/customer_payment_sources").json()["data"][0],
        api.get(f"/api/customers/{shop.customer['id']}", include="customer_payment_sources").json()[
            "included"
        ][0],
    ]

    with db.sessions().begin() as session:
        assert session.get_one(CustomerPaymentSource, entry_id).payment_source_token == TOKEN
    assert [entry["attributes"]["payment_source_token"] for entry in shown] == ["••••4242"] * 5


def test_a_short_wallet_token_is_shown_without_its_end(api):
    created = api.create(
        "customer_payment_sources",
        {"payment_source_token": "tok_visa"},
        {"customer": ("customers", api.create("customers", {"email": "a@example.com"})["id"])},
    )

    assert created["attributes"]["payment_source_token"] == "••••"
