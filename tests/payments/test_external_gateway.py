"""``ExternalGateway`` against the example merchant endpoint over HTTP, call by call:
answers, declines, replays, what is no answer (5xx, a timeout, a refused signature), the
circuit breaker opening and closing, and the address rules of live mode."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from copying.circuits import CIRCUIT_AFTER
from copying.orders import external_gateways
from copying.orders.gateways import GatewayUnavailableError, is_soft_decline
from copying.webhooks.signing import SIGNATURE_HEADER, verify
from models import CircuitState, Mode, db, utcnow
from models import ExternalGateway as GatewayRow
from tests.factories import make_shop
from tests.payments.endpoint import Endpoint
from tests.webhooks.receiver import Answer, running_receiver
from worker.external_gateways import ExternalGateway, GatewayDirectory

pytestmark = pytest.mark.slow


def add_gateway(
    sessions: sessionmaker[Session], urls: dict[str, str], secret: str, **fields: Any
) -> str:
    with sessions.begin() as session:
        row = external_gateways.create(
            session, mode=Mode.TEST, name="example", now=utcnow(), **urls, **fields
        )
        row.shared_secret = secret
        return row.id


def row(sessions: sessionmaker[Session], gateway_id: str) -> GatewayRow:
    with sessions.begin() as session:
        return session.get_one(GatewayRow, gateway_id)


@pytest.fixture
def order_id(committed) -> str:
    with committed.begin() as session:
        return make_shop(session).source.id


@pytest.fixture
def gateway(committed, endpoint: Endpoint) -> ExternalGateway:
    return ExternalGateway(add_gateway(committed, endpoint.urls(), endpoint.secret), db.sessions)


def authorize(gateway: ExternalGateway, order_id: str, key: str, token: str) -> Any:
    return gateway.authorize(
        idempotency_key=key, order_id=order_id, token=token, amount_cents=2000, currency_code="USD"
    )


def test_an_authorization_is_held_once_per_key(gateway, endpoint, order_id):
    first = authorize(gateway, order_id, "order_copy:A:place", "tok_ext_ok")
    again = authorize(gateway, order_id, "order_copy:A:place", "tok_ext_ok")
    other = authorize(gateway, order_id, "order_copy:B:place", "tok_ext_ok")

    assert first.succeeded
    assert again == first
    [held_a, held_b] = endpoint.transactions("authorize")
    assert (held_a["reference"], held_a["idempotency_key"]) == (
        first.reference,
        "order_copy:A:place",
    )
    assert (held_b["reference"], held_b["amount_cents"]) == (other.reference, 2000)


def test_capture_refund_and_void_reach_their_urls_with_the_references(gateway, endpoint, order_id):
    held = authorize(gateway, order_id, "order:X:place:1", "tok_ext_ok")
    captured = gateway.capture(
        idempotency_key="order:X:capture:1",
        order_id=order_id,
        authorization_key="order:X:place:1",
        authorization_reference=held.reference,
        amount_cents=1500,
        currency_code="USD",
    )
    refunded = gateway.refund(
        idempotency_key="order:X:refund:1",
        order_id=order_id,
        capture_key="order:X:capture:1",
        capture_reference=captured.reference,
        amount_cents=500,
        currency_code="USD",
    )
    too_much = gateway.refund(
        idempotency_key="order:X:refund:2",
        order_id=order_id,
        capture_key="order:X:capture:1",
        capture_reference=captured.reference,
        amount_cents=1001,
        currency_code="USD",
    )
    # A hold never answered (no reference): the endpoint finds it by its key.
    authorize(gateway, order_id, "order:Y:place:1", "tok_ext_ok")
    gateway.void(idempotency_key="order:Y:place:1", order_id=order_id, authorization_reference=None)

    assert captured.succeeded
    assert refunded.succeeded
    assert not too_much.succeeded
    assert "amount_too_large" in too_much.message
    [capture] = endpoint.transactions("capture")
    assert (capture["parent"], capture["amount_cents"]) == (held.reference, 1500)
    [refund] = endpoint.transactions("refund")
    assert (refund["parent"], refund["amount_cents"]) == (captured.reference, 500)
    voided = {t["idempotency_key"]: t["voided"] for t in endpoint.transactions("authorize")}
    assert voided == {"order:X:place:1": 0, "order:Y:place:1": 1}
    keys = [r["idempotency_key"] for r in endpoint.requests() if r["kind"] == "void"]
    assert keys == ["order:Y:place:1:void"]


@pytest.mark.parametrize(
    ("token", "soft", "said"),
    [("tok_ext_decline", False, "card_declined"), ("tok_ext_insufficient_funds", True, "funds")],
)
def test_a_decline_is_an_answer_and_says_whether_it_is_soft(
    gateway, endpoint, order_id, committed, token, soft, said
):
    answer = authorize(gateway, order_id, "k", token)
    assert (answer.succeeded, is_soft_decline(answer.message)) == (False, soft)
    assert said in answer.message
    assert row(committed, gateway.id).circuit_failure_count == 0


def test_a_5xx_is_no_answer_and_counts_towards_the_circuit_until_one_succeeds(
    gateway, endpoint, order_id, committed
):
    for attempt in (1, 2):
        with pytest.raises(GatewayUnavailableError, match="503"):
            authorize(gateway, order_id, "flaky", "tok_ext_flaky")
        assert row(committed, gateway.id).circuit_failure_count == attempt
    answer = authorize(gateway, order_id, "flaky", "tok_ext_flaky")
    assert answer.succeeded
    assert row(committed, gateway.id).circuit_failure_count == 0
    assert [r["status"] for r in endpoint.requests()] == [503, 503, 200]


def test_a_timeout_after_the_endpoint_charged_is_answered_by_the_replay(
    committed, endpoint, order_id
):
    gateway = ExternalGateway(
        add_gateway(committed, endpoint.urls(), endpoint.secret, timeout_seconds=1), db.sessions
    )
    with pytest.raises(GatewayUnavailableError, match="timed out"):
        authorize(gateway, order_id, "late", "tok_ext_late")
    answer = authorize(gateway, order_id, "late", "tok_ext_late")
    [held] = endpoint.transactions("authorize")
    assert answer.succeeded
    assert answer.reference == held["reference"]


def test_a_wrong_secret_is_refused_by_the_endpoint_and_is_no_answer(committed, endpoint, order_id):
    gateway = ExternalGateway(
        add_gateway(committed, endpoint.urls(), "not its secret"), db.sessions
    )
    with pytest.raises(GatewayUnavailableError, match="401"):
        authorize(gateway, order_id, "k", "tok_ext_ok")
    assert endpoint.transactions("authorize") == []
    assert [r["status"] for r in endpoint.requests()] == [401]
    assert row(committed, gateway.id).circuit_failure_count == 1


def test_the_circuit_opens_after_failures_in_a_row_and_then_no_request_is_sent(
    gateway, endpoint, order_id, committed, api
):
    endpoint.control(fail_next=CIRCUIT_AFTER)
    for n in range(CIRCUIT_AFTER):
        with pytest.raises(GatewayUnavailableError):
            authorize(gateway, order_id, f"k{n}", "tok_ext_ok")
    opened = row(committed, gateway.id)
    assert (opened.circuit_state, opened.circuit_failure_count) == (
        CircuitState.OPEN,
        CIRCUIT_AFTER,
    )
    with pytest.raises(GatewayUnavailableError, match="circuit open"):
        authorize(gateway, order_id, "k-open", "tok_ext_ok")
    assert len(endpoint.requests()) == CIRCUIT_AFTER

    reset = api.update("external_gateways", gateway.id, {"_reset_circuit": True})
    assert reset.status_code == 200, reset.json()
    assert authorize(gateway, order_id, "k-open", "tok_ext_ok").succeeded
    closed = row(committed, gateway.id)
    assert (closed.circuit_state, closed.circuit_failure_count) == (CircuitState.CLOSED, 0)


def test_the_request_is_commerce_layers_document_signed_with_the_key_in_a_header(
    committed, order_id, private_allowed
):
    body = json.dumps({"success": True, "data": {"transaction_token": "psp_1"}}).encode()
    with running_receiver("receiver-secret", behaviour=Answer(200, body)) as receiver:
        urls = {"authorize_url": f"{receiver.url}/authorize"}
        gateway = ExternalGateway(add_gateway(committed, urls, "receiver-secret"), db.sessions)
        answer = authorize(gateway, order_id, "order_copy:C:place", "tok_ext_ok")
    [request] = receiver.requests
    assert answer.reference == "psp_1"
    assert request.signature_matched
    assert verify("receiver-secret", request.body, request.headers[SIGNATURE_HEADER.lower()])
    assert request.headers["idempotency-key"] == "order_copy:C:place"
    document = json.loads(request.body)
    data = document["data"]
    assert (data["type"], data["attributes"]["payment_source_token"]) == (
        "external_payments",
        "tok_ext_ok",
    )
    assert data["attributes"]["amount_cents"] == 2000
    assert data["relationships"]["order"]["data"]["id"] == order_id
    included = {(r["type"], r["id"]) for r in document["included"]}
    assert ("orders", order_id) in included
    assert {"orders", "line_items", "customers", "customer_payment_sources"} <= {
        kind for kind, _ in included
    }


def test_a_live_gateway_never_calls_a_loopback_address(committed, endpoint, settings_env):
    with committed.begin() as session:
        order_id = make_shop(session, mode=Mode.LIVE).source.id
        live = GatewayRow(
            mode=Mode.LIVE,
            name="live",
            authorize_url=endpoint.url.replace("http:", "https:") + "/authorize",
            shared_secret=endpoint.secret,
        )
        session.add(live)
    gateway = ExternalGateway(live.id, db.sessions)
    with pytest.raises(GatewayUnavailableError, match="loopback"):
        authorize(gateway, order_id, "k", "tok_ext_ok")
    assert endpoint.requests() == []


def test_an_order_of_the_other_mode_is_declined_without_a_request(gateway, committed, endpoint):
    with committed.begin() as session:
        live_order = make_shop(session, mode=Mode.LIVE).source.id
    answer = authorize(gateway, live_order, "k", "tok_ext_ok")
    assert not answer.succeeded
    assert "mode" in answer.message
    assert endpoint.requests() == []


def test_the_directory_holds_test_and_every_external_gateway(gateway, gateways):
    directory = GatewayDirectory(gateways["test"], db.sessions)
    assert directory["test"] is gateways["test"]
    assert isinstance(directory[gateway.id], ExternalGateway)
    assert directory.get("NoSuchGate") is None
    assert list(directory) == ["test", gateway.id]
