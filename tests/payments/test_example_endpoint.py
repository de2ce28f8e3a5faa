"""The example merchant endpoint's own rules, over HTTP: a request not signed with its
secret is a 401 and changes nothing; a replayed Idempotency-Key gets its first answer;
a 5xx is not an answer (the replay is decided anew); the ledger keeps what is left."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from copying.webhooks.signing import SIGNATURE_HEADER, signature
from tests.payments.endpoint import Endpoint

pytestmark = pytest.mark.slow


def send(
    endpoint: Endpoint, kind: str, attributes: dict[str, Any], key: str, *, secret: str | None
) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"data": {"type": "x", "id": "1", "attributes": attributes}}).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    if secret is not None:
        headers[SIGNATURE_HEADER] = signature(secret, body)
    request = urllib.request.Request(f"{endpoint.url}/{kind}", body, headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def hold(endpoint: Endpoint, key: str, token: str = "tok_ext_ok", amount: int = 1000) -> Any:
    attributes = {"payment_source_token": token, "amount_cents": amount}
    return send(endpoint, "authorize", attributes, key, secret=endpoint.secret)


@pytest.mark.parametrize("secret", [None, "another secret"])
def test_a_request_not_signed_with_its_secret_is_a_401_and_changes_nothing(endpoint, secret):
    attributes = {"payment_source_token": "tok_ext_ok", "amount_cents": 1000}
    status, answer = send(endpoint, "authorize", attributes, "k", secret=secret)
    assert (status, answer) == (401, {"error": "invalid X-CommerceLayer-Signature"})
    assert endpoint.transactions("authorize") == []
    assert hold(endpoint, "k")[0] == 200


def test_a_replayed_key_gets_its_first_answer(endpoint):
    status, first = hold(endpoint, "order_copy:A:place")
    assert (status, first["success"]) == (200, True)
    # Even asked for something else: the key was answered once, for good.
    assert hold(endpoint, "order_copy:A:place", amount=5)[1] == first
    declined = hold(endpoint, "order_copy:B:place", token="tok_ext_decline")[1]
    assert hold(endpoint, "order_copy:B:place")[1] == declined
    assert declined["data"]["error"]["code"] == "card_declined"
    [held] = endpoint.transactions("authorize")
    assert (held["reference"], held["amount_cents"]) == (first["data"]["transaction_token"], 1000)


def test_a_5xx_is_no_answer_so_the_replay_is_decided_again(endpoint):
    endpoint.control(fail_next=1)
    assert hold(endpoint, "k")[0] == 503
    assert endpoint.transactions("authorize") == []
    status, answer = hold(endpoint, "k")
    assert (status, answer["success"]) == (200, True)


def test_captures_and_refunds_keep_to_what_is_left(endpoint):
    token = hold(endpoint, "a")[1]["data"]["transaction_token"]
    secret = endpoint.secret

    def capture(key: str, amount: int) -> dict[str, Any]:
        attributes = {"token": token, "capture_amount_cents": amount}
        return send(endpoint, "capture", attributes, key, secret=secret)[1]

    first = capture("c1", 700)
    assert first["success"]
    assert capture("c2", 301)["data"]["error"]["code"] == "amount_too_large"
    refund = {"token": first["data"]["transaction_token"], "refund_amount_cents": 700}
    assert send(endpoint, "refund", refund, "r1", secret=secret)[1]["success"]
    again = send(endpoint, "refund", {**refund, "refund_amount_cents": 1}, "r2", secret=secret)
    assert again[1]["data"]["error"]["code"] == "amount_too_large"
