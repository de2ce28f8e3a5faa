"""Status codes and error documents: every error is a JSON:API document, never HTML,
never a 500 for bad input."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import update

from api.errors import MEDIA_TYPE
from api.routes import domain_error
from copying.copies import copy_states, lifecycle
from copying.errors import CopyInputError
from copying.subscriptions.subscription_states import SubscriptionStateError
from models import ApiKey, db, utcnow
from tests.api.errors import assert_error
from tests.api.shop import build_shop


@pytest.fixture
def order(api):
    return build_shop(api).order


def copy_document(order_id, **attributes):
    return {
        "data": {
            "type": "order_copies",
            "attributes": attributes,
            "relationships": {"source_order": {"data": {"type": "orders", "id": order_id}}},
        }
    }


# --- 400 --------------------------------------------------------------------------------


def test_malformed_json_is_a_400(api):
    response = api.client.post(
        "/api/order_copies", content=b'{"data": {"type": ', headers=api.headers()
    )

    assert_error(response, 400, code="BAD_REQUEST", detail="not valid JSON")


@pytest.mark.parametrize("body", [b"", b"[]", b'"data"', b"null"])
def test_a_body_that_is_not_a_document_is_a_400(api, body):
    response = api.client.post("/api/order_copies", content=body, headers=api.headers())

    assert_error(response, 400, detail="JSON:API document")


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/order_copies?colour=red", "colour"),
        ("/api/order_copies?filter[status_eq]=failed", "filter[status_eq]"),
        ("/api/order_copies/abc?page[size]=5", "page[size]"),
        ("/api/order_copies/abc?sort=id", "sort"),
    ],
)
def test_an_unknown_query_parameter_is_a_400(api, path, parameter):
    assert_error(api.client.get(path, headers=api.headers()), 400, parameter=parameter)


def test_a_parameter_given_twice_is_a_400(api):
    response = api.client.get("/api/order_copies?sort=id&sort=-id", headers=api.headers())

    assert_error(response, 400, parameter="sort", detail="more than once")


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("filter[q][errors_count_eq]", "two"),
        ("filter[q][errors_count_gt]", "1.5"),
        ("filter[q][status_eq]", "lost"),
        ("filter[q][status_in]", "failed,lost"),
        ("filter[q][status_in]", "failed,,pending"),
        ("filter[q][created_at_gt]", "yesterday"),
        ("filter[q][created_at_lt]", "2030-02-30T00:00:00Z"),
        ("filter[q][failed_at_null]", "yes"),
        ("filter[q][place_target_order_eq]", "1"),
        ("filter[q][reference_eq]", "a\x00b"),
        ("filter[q][errors_count_eq]", str(2**63)),
    ],
)
def test_a_bad_filter_value_is_a_400(api, parameter, value):
    response = api.get("/api/order_copies", **{parameter: value})

    assert_error(response, 400, parameter=parameter, code="INVALID_FILTER_VALUE")


@pytest.mark.parametrize(
    "parameter",
    [
        "filter[q][colour_eq]",
        "filter[q][status_like]",
        "filter[q][errors_count_cont]",
        "filter[q][place_target_order_lt]",
        "filter[q][errors_log_eq]",
    ],
)
def test_an_unknown_filter_or_predicate_is_a_400(api, parameter):
    response = api.get("/api/order_copies", **{parameter: "1"})

    assert_error(response, 400, parameter=parameter, code="INVALID_FILTER")


@pytest.mark.parametrize("size", ["26", "100"])
def test_a_page_over_25_is_a_400(api, size):
    response = api.get("/api/order_copies", **{"page[size]": size})

    assert_error(response, 400, parameter="page[size]", detail="1 to 25")


def test_an_idempotency_key_over_255_characters_is_a_400(api, order):
    response = api.post(
        "/api/order_copies", copy_document(order["id"]), {"Idempotency-Key": "k" * 256}
    )

    assert_error(response, 400, parameter="Idempotency-Key")


# --- 401 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-key", "Basic dXNlcjpwYXNz", "oc_test_nothing"],
)
def test_a_missing_or_bad_key_is_a_401(api, authorization):
    headers = {"Accept": MEDIA_TYPE}
    if authorization is not None:
        headers["Authorization"] = authorization

    response = api.client.get("/api/order_copies", headers=headers)

    assert_error(response, 401, code="UNAUTHORIZED")


def test_a_revoked_key_is_a_401(api):
    with db.sessions().begin() as session:
        session.execute(update(ApiKey).values(revoked_at=utcnow()))

    assert_error(api.get("/api/order_copies"), 401, detail="revoked")


def test_a_key_is_checked_before_the_body(api):
    response = api.client.post(
        "/api/order_copies",
        json={"data": {"type": "order_copies"}},
        headers={"Content-Type": MEDIA_TYPE, "Accept": MEDIA_TYPE},
    )

    assert_error(response, 401)


# --- 404, 405 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/order_copies/NoSuchCopy",
        "/api/order_copies/NoSuchCopy/source_order",
        "/api/order_copies/NoSuchCopy/relationships/source_order",
        "/api/orders/NoSuchOrd/line_items",
        "/api/order_copies/has%00nul",
    ],
)
def test_an_unknown_id_is_a_404(api, path):
    response = api.client.get(path, headers=api.headers())

    assert_error(response, 404, code="RECORD_NOT_FOUND")


def test_patch_and_delete_of_an_unknown_id_are_404s(api):
    document = {"data": {"type": "order_copies", "id": "NoSuchCopy", "attributes": {}}}

    assert_error(api.patch("/api/order_copies/NoSuchCopy", document), 404)
    assert_error(api.delete("/api/order_copies/NoSuchCopy"), 404)


@pytest.mark.parametrize("path", ["/api/nothing", "/api/order_copies/a/b/c", "/nothing"])
def test_an_unknown_route_is_a_json_api_404(api, path):
    response = api.client.get(path, headers=api.headers())

    assert_error(response, 404, detail="no route")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/order_copies/abc", "DELETE, GET, PATCH"),
        ("DELETE", "/api/order_copies", "GET, POST"),
        ("PUT", "/api/order_subscriptions/abc", "DELETE, GET, PATCH"),
        ("PATCH", "/api/line_items/abc", "DELETE, GET"),
        ("POST", "/api/order_copies/abc/relationships/source_order", "GET"),
    ],
)
def test_a_method_a_path_does_not_take_is_a_405_naming_those_it_does(api, method, path, allowed):
    response = api.client.request(method, path, headers=api.headers(), content=b"{}")

    assert_error(response, 405, code="METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == allowed


# --- 406, 415 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept",
    ["application/json", "text/html", f"{MEDIA_TYPE}; ext=bulk", f"{MEDIA_TYPE}; charset=utf-8"],
)
def test_a_wrong_accept_is_a_406(api, accept):
    response = api.client.get("/api/order_copies", headers=api.headers({"Accept": accept}))

    assert_error(response, 406, code="NOT_ACCEPTABLE")


@pytest.mark.parametrize(
    "accept", ["*/*", "application/*", f"text/html, {MEDIA_TYPE}", f"{MEDIA_TYPE}; q=0.9"]
)
def test_an_accept_that_admits_json_api_is_served(api, accept):
    response = api.client.get("/api/order_copies", headers=api.headers({"Accept": accept}))

    assert response.status_code == 200
    assert response.headers["content-type"] == MEDIA_TYPE


@pytest.mark.parametrize(
    "content_type",
    ["application/json", f"{MEDIA_TYPE}; charset=utf-8", "text/plain", "multipart/form-data"],
)
def test_a_wrong_content_type_is_a_415(api, order, content_type):
    response = api.client.post(
        "/api/order_copies",
        content=json.dumps(copy_document(order["id"])),
        headers=api.headers({"Content-Type": content_type}),
    )

    assert_error(response, 415, code="UNSUPPORTED_MEDIA_TYPE")


def test_the_openapi_document_and_its_browser_page_are_not_negotiated(api):
    document = api.client.get("/api/openapi.json", headers={"Accept": "application/json"})
    page = api.client.get("/api/docs", headers={"Accept": "text/html"})

    assert document.status_code == 200
    assert "/api/order_copies" in document.json()["paths"]
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]


# --- 409 --------------------------------------------------------------------------------


def test_patch_with_a_data_id_other_than_the_urls_is_a_409(api, order):
    copy = api.create("order_copies", {}, {"source_order": ("orders", order["id"])})

    response = api.patch(
        f"/api/order_copies/{copy['id']}",
        {"data": {"type": "order_copies", "id": "SomeOther1", "attributes": {"reference": "x"}}},
    )

    assert_error(response, 409, pointer="/data/id")
    assert api.retrieve("order_copies", copy["id"])["attributes"]["reference"] is None


def test_a_document_of_another_type_is_a_409(api, order):
    document = copy_document(order["id"])
    document["data"]["type"] = "orders"

    assert_error(api.post("/api/order_copies", document), 409, pointer="/data/type")


def test_deleting_a_copy_in_progress_is_a_409(api, order, committed):
    copy = api.create("order_copies", {}, {"source_order": ("orders", order["id"])})
    with committed.begin() as session:
        copy_states.claim(session, copy["id"], utcnow(), timedelta(minutes=5), 8)

    assert_error(api.delete(f"/api/order_copies/{copy['id']}"), 409, code="INVALID_STATUS")


def test_retrying_a_copy_that_did_not_fail_is_a_409(api, order):
    copy = api.create("order_copies", {}, {"source_order": ("orders", order["id"])})

    response = api.update("order_copies", copy["id"], {"_retry": True})

    assert_error(response, 409, code="INVALID_STATUS", detail="only failed copies can be retried")


# --- 422 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "pointer", "detail"),
    [
        ({"colour": "red"}, "/data/attributes/colour", "unknown or read-only"),
        ({"status": "completed"}, "/data/attributes/status", "unknown or read-only"),
        ({"errors_count": 0}, "/data/attributes/errors_count", "unknown or read-only"),
        ({"_retry": True}, "/data/attributes/_retry", "unknown or read-only"),
        ({"place_target_order": "yes"}, "/data/attributes/place_target_order", "boolean"),
        ({"reuse_wallet": 1}, "/data/attributes/reuse_wallet", "boolean"),
        ({"reference": 12}, "/data/attributes/reference", "string"),
        ({"metadata": ["a"]}, "/data/attributes/metadata", "dictionary"),
        ({"metadata": "a=b"}, "/data/attributes/metadata", "dictionary"),
        ({"metadata": {"blob": "x" * 16 * 1024}}, "/data/attributes/metadata", "16384"),
        ({"metadata": {"a": "nul\x00"}}, "/data/attributes/metadata/a", "pattern"),
        ({"reference": "r" * 256}, "/data/attributes/reference", "255"),
        ({"reference_origin": "o" * 256}, "/data/attributes/reference_origin", "255"),
    ],
)
def test_a_bad_attribute_is_a_422_pointing_at_it(api, order, attributes, pointer, detail):
    response = api.post("/api/order_copies", copy_document(order["id"], **attributes))

    error = assert_error(response, 422, code="VALIDATION_ERROR")
    assert error["source"]["pointer"].startswith(pointer), error
    assert detail in error["detail"], error


def test_a_reference_of_255_characters_is_fine(api, order):
    response = api.post("/api/order_copies", copy_document(order["id"], reference="r" * 255))

    assert response.status_code == 201


def test_a_copy_without_a_source_order_is_a_422(api):
    response = api.post("/api/order_copies", {"data": {"type": "order_copies"}})

    assert_error(response, 422, pointer="/data/relationships")


def test_a_source_order_that_does_not_exist_is_a_422(api):
    response = api.post("/api/order_copies", copy_document("NoSuchOrd1"))

    assert_error(response, 422, pointer="/data/relationships/source_order", detail="NoSuchOrd1")


def test_a_source_order_of_the_other_mode_is_a_422(api, live_api):
    live_order = build_shop(live_api).order

    response = api.post("/api/order_copies", copy_document(live_order["id"]))

    assert_error(
        response, 422, pointer="/data/relationships/source_order", detail="does not exist in test"
    )


def test_a_relationship_of_the_wrong_type_is_a_422(api, order):
    document = copy_document(order["id"])
    document["data"]["relationships"]["source_order"]["data"]["type"] = "customers"

    assert_error(
        api.post("/api/order_copies", document),
        422,
        pointer="/data/relationships/source_order/data/type",
    )


# --- 500 --------------------------------------------------------------------------------


def test_a_crash_is_a_json_api_500_and_is_logged(api, order, monkeypatch, caplog):

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(lifecycle, "create", crash)

    response = api.post("/api/order_copies", copy_document(order["id"]))

    assert_error(response, 500, code="INTERNAL_SERVER_ERROR")
    assert "boom" not in response.text
    crashes = [r for r in caplog.records if "api_crash" in str(r.msg)]
    assert len(crashes) == 1
    assert crashes[0].exc_info is not None


@pytest.mark.parametrize(
    ("error", "status", "pointer", "code"),
    [
        (CopyInputError("customer", "wrong"), 422, "/data/relationships/customer", None),
        (CopyInputError("frequency", "wrong"), 422, "/data/attributes/frequency", None),
        (SubscriptionStateError("s1", "cancelled", "changed"), 409, None, "INVALID_STATUS"),
    ],
)
def test_domain_errors_map_to_one_api_error_each(error, status, pointer, code):
    """Resources raise them (subscriptions too); the routes alone map them."""
    mapped = domain_error(error, {"customer"})

    assert mapped.status == status
    assert mapped.pointer == pointer
    if code is not None:
        assert mapped.code == code
