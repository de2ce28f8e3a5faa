"""The web's promises under faults (tests/chaos/promises.py) catch what they name."""

from __future__ import annotations

import httpx2

from api.errors import MEDIA_TYPE
from tests.chaos.promises import API_INVARIANTS, check_api
from tests.chaos.web import ApiClient, error_document_problem
from tests.factories import create_copy, make_shop

ORIGIN = "chaos-http"


def copies_with_reference(sessions, reference, count):
    with sessions.begin() as s:
        shop = make_shop(s)
    return [
        create_copy(sessions, shop.source.id, reference=reference, reference_origin=ORIGIN).id
        for _ in range(count)
    ]


def test_one_copy_per_key_answered_once_keeps_every_promise(sessions):
    [copy_id] = copies_with_reference(sessions, "key-1", 1)
    with sessions.begin() as s:
        found = check_api(s, ORIGIN, {"key-1": {copy_id}}, [])
    assert set(found) == set(API_INVARIANTS)
    assert all(sentences == [] for sentences in found.values())


def test_a_key_answered_with_two_copies_is_caught(sessions):
    first, second = copies_with_reference(sessions, "key-2", 2)
    with sessions.begin() as s:
        found = check_api(s, ORIGIN, {"key-2": {first, second}}, [])
    assert found["one_copy_per_key"] == [
        f"Idempotency-Key key-2 answered with 2 copies: {sorted([first, second])}",
        f"reference key-2: 2 copies in the database: {sorted([first, second])}",
    ]
    assert found["error_documents"] == []


def test_a_second_copy_the_client_never_saw_is_caught_in_the_database(sessions):
    first, second = copies_with_reference(sessions, "key-3", 2)
    with sessions.begin() as s:
        found = check_api(s, ORIGIN, {"key-3": {first}}, [])
    assert found["one_copy_per_key"] == [
        f"reference key-3: 2 copies in the database: {sorted([first, second])}"
    ]


def test_a_copy_other_than_the_one_answered_is_caught(sessions):
    [stored] = copies_with_reference(sessions, "key-4", 1)
    with sessions.begin() as s:
        found = check_api(s, ORIGIN, {"key-4": {"SomeOther1"}}, [])
    assert found["one_copy_per_key"] == [
        f"reference key-4: the database holds {stored}, the API answered ['SomeOther1']"
    ]


def test_error_answers_that_are_not_json_api_are_reported(sessions):
    plain = httpx2.Response(
        500, text="Internal Server Error", headers={"content-type": "text/plain"}
    )
    wrong = httpx2.Response(
        503,
        json={"errors": [{"status": "500", "title": "x"}]},
        headers={"content-type": "application/vnd.api+json"},
    )
    right = httpx2.Response(
        503,
        json={"errors": [{"status": "503", "title": "Service unavailable"}]},
        headers={"content-type": "application/vnd.api+json"},
    )
    assert error_document_problem(plain) == "content-type 'text/plain'"
    assert "do not carry status 503" in (error_document_problem(wrong) or "")
    assert error_document_problem(right) is None
    with sessions.begin() as s:
        found = check_api(s, ORIGIN, {}, ["POST order_copies answered 500: content-type"])
    assert found["error_documents"] == ["POST order_copies answered 500: content-type"]


def test_server_errors_other_than_503_are_reported_as_crashes(sessions):
    api = ApiClient(["http://127.0.0.1:9"], "key")

    def answer(status: int) -> httpx2.Response:
        body = {"errors": [{"status": str(status), "title": "t", "detail": "d", "code": "c"}]}
        return httpx2.Response(status, json=body, headers={"content-type": MEDIA_TYPE})

    for status in (422, 503, 500, 502):
        api._outcome("POST order_copies", answer(status))
    api.close()
    with sessions.begin() as s:
        found = check_api(s, ORIGIN, {}, [], api.crashed)

    assert found["no_crashes"] == [
        "POST order_copies answered 500",
        "POST order_copies answered 502",
    ]
