"""What an endpoint's reply means (``worker.external_gateways.read_answer``): an answer
(success or decline, hard or soft) or no answer, whose outcome is unknown."""

from __future__ import annotations

import json

import pytest

from copying.orders.gateways import GatewayAnswer, is_soft_decline
from worker.external_gateways import read_answer
from worker.outbound import Delivery


def reply(status: int | None, body: object = b"", message: str = "") -> Delivery:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Delivery(status, message or f"{status}", 0.1, raw)


OK = {"success": True, "data": {"transaction_token": "psp_9", "amount_cents": 100}}
DECLINE = {"success": False, "data": {"error": {"code": "card_declined", "message": "no"}}}


@pytest.mark.parametrize(
    ("delivery", "expected"),
    [
        (reply(200, OK), GatewayAnswer(True, "psp_9", "succeeded")),
        (reply(201, {"success": "true", "data": {"transaction_token": "t"}}), True),
        (reply(200, DECLINE), GatewayAnswer(False, None, "card_declined: no")),
        (reply(422, DECLINE), False),
        (reply(200, {"success": "false", "error": {"message": "nope"}}), False),
    ],
)
def test_an_answer_says_whether_it_succeeded(delivery, expected):
    answer = read_answer(delivery)
    assert isinstance(answer, GatewayAnswer)
    if isinstance(expected, GatewayAnswer):
        assert answer == expected
    else:
        assert answer.succeeded is expected


def test_a_decline_with_a_soft_code_is_soft():
    soft = {"success": False, "data": {"error": {"code": "insufficient_funds", "message": "x"}}}
    answer = read_answer(reply(200, soft))
    assert isinstance(answer, GatewayAnswer)
    assert is_soft_decline(answer.message)
    hard = read_answer(reply(200, DECLINE))
    assert isinstance(hard, GatewayAnswer)
    assert not is_soft_decline(hard.message)


@pytest.mark.parametrize(
    ("delivery", "says"),
    [
        (reply(None, message="timed out after 1 s"), "timed out"),
        (reply(503, {"error": "down"}, "503 Service Unavailable"), "503"),
        (reply(307, b"", "307: redirect to x not followed"), "redirect"),
        (reply(202, {"success": True, "data": {"action_id": "a"}}), "asynchronous"),
        (reply(200, b"<html>ok</html>"), "not an external gateway's answer"),
        (reply(200, {"success": 1}), "not an external gateway's answer"),
        (reply(401, {"error": "invalid X-CommerceLayer-Signature"}), "not an external"),
        (reply(400, OK), "not an external gateway's answer"),
    ],
)
def test_anything_else_is_no_answer(delivery, says):
    answer = read_answer(delivery)
    assert isinstance(answer, str)
    assert says in answer
