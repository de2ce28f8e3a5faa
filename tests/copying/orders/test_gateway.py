"""The built-in test gateway: outcomes by token, idempotent by key, like a real gateway."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from config import get_settings
from copying.orders import payments
from copying.orders.gateways import (
    FLAKY_FAILURES,
    LEDGER_APPLICATION,
    GatewayAnswer,
    GatewayUnavailableError,
    TestGateway,
)
from models import new_public_id
from models.db import make_engine
from tests.factories import gateway_charge


@pytest.fixture
def gateway(gateways) -> TestGateway:
    return gateways["test"]


@pytest.fixture
def key() -> str:
    return f"test:{new_public_id()}"


def _authorize(gateway, key, token, amount=1500):
    return gateway.authorize(
        idempotency_key=key,
        order_id="order00001",
        token=token,
        amount_cents=amount,
        currency_code="EUR",
    )


def test_tok_visa_authorizes(sessions, gateway, key):
    answer = _authorize(gateway, key, "tok_visa")

    assert answer.succeeded is True
    assert answer.message == "authorized"
    assert answer.reference.startswith("test_")
    with sessions.begin() as s:
        charge = gateway_charge(s, key)
    assert (charge.token, charge.amount_cents, charge.currency_code) == ("tok_visa", 1500, "EUR")
    assert (charge.outcome, charge.reference, charge.failures) == (
        "authorized",
        answer.reference,
        0,
    )


def test_tok_declined_is_declined(sessions, gateway, key):
    answer = _authorize(gateway, key, "tok_declined")

    assert (answer.succeeded, answer.reference, answer.message) == (False, None, "card declined")
    with sessions.begin() as s:
        assert gateway_charge(s, key).outcome == "declined"


def test_an_unknown_token_is_declined(gateway, key):
    answer = _authorize(gateway, key, "tok_nope")

    assert (answer.succeeded, answer.message) == (False, "unknown payment source token 'tok_nope'")


def test_tok_flaky_fails_twice_per_key_then_authorizes(sessions, gateway, key):
    for failures in (1, 2):
        with pytest.raises(GatewayUnavailableError, match="tok_flaky timed out"):
            _authorize(gateway, key, "tok_flaky")
        with sessions.begin() as s:
            charge = gateway_charge(s, key)
        assert (charge.failures, charge.outcome) == (failures, None)

    answer = _authorize(gateway, key, "tok_flaky")

    assert answer.succeeded is True
    # Each new key starts its own count.
    with pytest.raises(GatewayUnavailableError):
        _authorize(gateway, f"{key}:other", "tok_flaky")


@pytest.mark.parametrize("token", ["tok_visa", "tok_declined"])
def test_the_same_key_always_gets_the_first_answer(sessions, gateway, key, token):
    first = _authorize(gateway, key, token)

    # A replay, even with other details, is answered from the ledger: never charged twice.
    again = _authorize(gateway, key, "tok_visa" if token == "tok_declined" else "tok_declined", 99)

    assert again == first
    with sessions.begin() as s:
        assert gateway_charge(s, key).amount_cents == 1500


def test_void_releases_an_authorization_once(sessions, gateway, key):
    _authorize(gateway, key, "tok_visa")

    gateway.void(idempotency_key=key, order_id="order00001", authorization_reference=None)
    with sessions.begin() as s:
        voided_at = gateway_charge(s, key).voided_at
    gateway.void(idempotency_key=key, order_id="order00001", authorization_reference=None)

    assert voided_at is not None
    with sessions.begin() as s:
        assert gateway_charge(s, key).voided_at == voided_at


def test_void_of_a_declined_or_unknown_key_does_nothing(sessions, gateway, key):
    _authorize(gateway, key, "tok_declined")

    gateway.void(idempotency_key=key, order_id="order00001", authorization_reference=None)
    gateway.void(
        idempotency_key=f"{key}:never-asked", order_id="order00001", authorization_reference=None
    )

    with sessions.begin() as s:
        assert gateway_charge(s, key).voided_at is None
        assert gateway_charge(s, f"{key}:never-asked") is None


def test_ask_replays_a_recorded_answer_without_calling_the_gateway(key):
    recorded = GatewayAnswer(True, "test_recorded", "recorded")
    request = payments.PaymentRequest(
        order_id="Order00001",
        idempotency_key=key,
        gateway="test",
        token="tok_declined",
        amount_cents=100,
        wallet_entry_id=None,
        currency_code="USD",
        recorded=recorded,
    )

    assert payments.ask({}, request) is recorded


def test_a_lost_ledger_connection_fails_one_call_and_the_next_connects_anew(
    committed, gateway, key
):
    """The gateway keeps a connection for recording new keys; when PostgreSQL drops it,
    that call fails as the gateway being unavailable (transient: asked again later) and
    the next one reconnects."""
    assert _authorize(gateway, key, "tok_visa").succeeded
    # This gateway's ledger connections only: other gateways of the process (a live
    # server's, in a later test) keep theirs.
    pids = [c.connection.dbapi_connection.info.backend_pid for _, _, c in gateway._idle]
    with committed.begin() as s:
        dropped = s.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = :name AND pid = ANY(:pids)"
            ),
            {"name": LEDGER_APPLICATION, "pids": pids},
        ).all()
    assert dropped
    assert all(ok for (ok,) in dropped)

    second, third = f"{key}:2", f"{key}:3"
    with pytest.raises(GatewayUnavailableError):
        _authorize(gateway, second, "tok_visa")
    assert _authorize(gateway, third, "tok_visa").succeeded
    assert _authorize(gateway, second, "tok_visa").succeeded  # asked again: recorded once
    with committed.begin() as s:
        assert gateway_charge(s, second).outcome == "authorized"
        assert gateway_charge(s, third).outcome == "authorized"


def test_a_ledger_it_cannot_reach_makes_the_gateway_unavailable(key):
    """Connecting is part of the call: a database that does not answer is the gateway
    being unavailable (transient: asked again later), not a crash."""
    unreachable = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/nowhere")
    gateway = TestGateway(lambda: unreachable, connections=1)
    try:
        for _ in range(2):  # the slot it held is free again
            with pytest.raises(GatewayUnavailableError):
                _authorize(gateway, key, "tok_visa")
    finally:
        unreachable.dispose()


def test_a_ledger_connection_lost_as_it_is_named_makes_the_gateway_unavailable(monkeypatch, key):
    """The ledger's new connection is named by a statement sent on the driver itself: a
    connection lost right then (a PostgreSQL restart, seen by the chaos suite) raises the
    driver's own error, which is the gateway being unavailable too, not a crash (an API
    500), and the next call connects anew."""
    engine = make_engine(get_settings().database_url)
    gateway = TestGateway(lambda: engine, connections=1)
    execute = psycopg.Cursor.execute

    def lost_when_named(cursor, query, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(query).startswith("SET application_name"):
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return execute(cursor, query, *args, **kwargs)

    try:
        with monkeypatch.context() as patched:
            patched.setattr(psycopg.Cursor, "execute", lost_when_named)
            with pytest.raises(GatewayUnavailableError, match="server closed the connection"):
                _authorize(gateway, key, "tok_visa")
        assert _authorize(gateway, key, "tok_visa").succeeded
    finally:
        engine.dispose()


# --- captures, refunds and voids at the test gateway ---------------------------------------


def _capture(gateway, key, authorization_key, amount=1500, currency="EUR"):
    return gateway.capture(
        idempotency_key=key,
        order_id="order00001",
        authorization_key=authorization_key,
        authorization_reference=None,
        amount_cents=amount,
        currency_code=currency,
    )


def _refund(gateway, key, capture_key, amount):
    return gateway.refund(
        idempotency_key=key,
        order_id="order00001",
        capture_key=capture_key,
        capture_reference=None,
        amount_cents=amount,
        currency_code="EUR",
    )


def _void(gateway, key):
    gateway.void(idempotency_key=key, order_id="order00001", authorization_reference=None)


def test_a_capture_is_answered_once_per_key_and_takes_at_most_what_is_held(gateway, key):
    _authorize(gateway, key, "tok_visa", amount=1500)

    first = _capture(gateway, f"{key}:capture:1", key, amount=1000)
    again = _capture(gateway, f"{key}:capture:1", key, amount=1000)
    too_much = _capture(gateway, f"{key}:capture:2", key, amount=501)
    rest = _capture(gateway, f"{key}:capture:3", key, amount=500)

    assert (first.succeeded, first.message) == (True, "capture succeeded")
    assert again == first  # replayed: not a second capture
    assert (too_much.succeeded, too_much.message) == (
        False,
        "capture of 501 exceeds the 500 left to capture",
    )
    assert rest.succeeded


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("voided", "the authorization was voided"),
        ("declined", "no authorization under key"),
        ("never asked", "no authorization under key"),
        ("other currency", "currency USD is not the EUR held"),
    ],
)
def test_a_capture_of_no_live_hold_is_declined(gateway, key, setup, message):
    if setup != "never asked":
        _authorize(gateway, key, "tok_declined" if setup == "declined" else "tok_visa")
    if setup == "voided":
        _void(gateway, key)

    answer = _capture(
        gateway, f"{key}:capture:1", key, currency="USD" if "currency" in setup else "EUR"
    )

    assert not answer.succeeded
    assert message in answer.message
    assert answer.reference is None


def test_refunds_give_back_at_most_what_their_capture_took(gateway, key):
    _authorize(gateway, key, "tok_visa", amount=1500)
    capture_key = f"{key}:capture:1"
    _capture(gateway, capture_key, key, amount=1500)

    first = _refund(gateway, f"{key}:refund:1", capture_key, 1000)
    too_much = _refund(gateway, f"{key}:refund:2", capture_key, 501)
    rest = _refund(gateway, f"{key}:refund:3", capture_key, 500)
    unknown = _refund(gateway, f"{key}:refund:4", f"{key}:capture:9", 1)

    assert first.succeeded
    assert rest.succeeded
    assert too_much.message == "refund of 501 exceeds the 500 left to refund"
    assert not unknown.succeeded
    assert unknown.message == f"no capture under key '{key}:capture:9'"


def test_a_captured_hold_is_not_voided(gateway, sessions, key):
    _authorize(gateway, key, "tok_visa")
    _capture(gateway, f"{key}:capture:1", key)

    _void(gateway, key)

    with sessions.begin() as s:
        assert gateway_charge(s, key).voided_at is None


def test_tok_flaky_captures_time_out_twice_per_key_then_succeed(gateway, key):
    for _ in range(FLAKY_FAILURES):
        with pytest.raises(GatewayUnavailableError):
            _authorize(gateway, key, "tok_flaky")
    _authorize(gateway, key, "tok_flaky")

    for _ in range(FLAKY_FAILURES):
        with pytest.raises(GatewayUnavailableError, match="tok_flaky capture timed out"):
            _capture(gateway, f"{key}:capture:1", key)

    assert _capture(gateway, f"{key}:capture:1", key).succeeded
