"""The external gateway's promises (tests/chaos/external.py) hold on an agreeing ledger and
catch each inconsistency planted in it or in our rows."""

from __future__ import annotations

import re
import sqlite3

import pytest

from copying.orders import external_gateways
from models import CircuitState, ExternalGateway, Mode, utcnow
from tests.chaos.external import EXTERNAL_INVARIANTS, Entry, Ours, compare, read_ledger
from tests.chaos.processes import ENDPOINT_APP_DIR
from tests.chaos.run import _reset_circuit

HOLD = Entry("ext_authorize_1", "authorize", "order_copy:c1:place", None, 2400)
CAPTURED_HOLD = Entry("ext_authorize_2", "authorize", "order:o2:place", None, 1500)
CAPTURE = Entry("ext_capture_1", "capture", "order:o2:capture", "ext_authorize_2", 1500)
REFUND = Entry("ext_refund_1", "refund", "order:o2:refund:1", "ext_capture_1", 500)
VOIDED = Entry("ext_authorize_3", "authorize", "order:o3:place", None, 900, voided=True)
LEDGER = [HOLD, CAPTURED_HOLD, CAPTURE, REFUND, VOIDED]

OURS = [
    Ours(HOLD.idempotency_key, "authorize", "authorized", 2400, HOLD.reference, "t1", "placed"),
    Ours(
        CAPTURED_HOLD.idempotency_key,
        "authorize",
        "captured",
        1500,
        CAPTURED_HOLD.reference,
        "o2",
        "approved",
    ),
    Ours(
        CAPTURE.idempotency_key, "capture", "succeeded", 1500, CAPTURE.reference, "o2", "approved"
    ),
    Ours(REFUND.idempotency_key, "refund", "succeeded", 500, REFUND.reference, "o2", "approved"),
    Ours(VOIDED.idempotency_key, "authorize", "voided", 900, VOIDED.reference, "o3", "cancelled"),
    # Declined: the endpoint recorded nothing under the key.
    Ours("order_copy:c4:place", "authorize", "declined", 700, None, "t4", "pending"),
]


def broken(ours, ledger):
    found = compare(ours, ledger)
    assert set(found) == set(EXTERNAL_INVARIANTS)
    return {name: sentences for name, sentences in found.items() if sentences}


def replaced(rows, key, **changes):
    return [type(r)(**{**r.__dict__, **changes}) if r.idempotency_key == key else r for r in rows]


def test_an_agreeing_ledger_keeps_every_promise():
    assert broken(OURS, LEDGER) == {}


@pytest.mark.parametrize(
    ("ours", "ledger", "promise", "words"),
    [
        # A hold at the endpoint no row of ours keeps (our row lost, the sweeper never saw it).
        (
            [o for o in OURS if o.idempotency_key != HOLD.idempotency_key],
            LEDGER,
            "external_holds_agree",
            "which no row of ours records",
        ),
        # We voided it, the void never reached the endpoint.
        (
            OURS,
            [*LEDGER[:4], Entry(**{**VOIDED.__dict__, "voided": False})],
            "external_holds_agree",
            "records as voided",
        ),
        # Our authorization holds on an order that is cancelled since.
        (
            replaced(OURS, HOLD.idempotency_key, order_status="cancelled"),
            LEDGER,
            "external_holds_agree",
            "which is cancelled",
        ),
        # Recorded as authorized, but the endpoint released it (or never held it).
        (
            OURS,
            [Entry(**{**HOLD.__dict__, "voided": True}), *LEDGER[1:]],
            "external_holds_agree",
            "0 live holds",
        ),
        (OURS, LEDGER[1:], "external_holds_agree", "0 live holds under its key (0 in all)"),
        # Two live holds under one key (a second charge for the same attempt).
        (
            OURS,
            [*LEDGER, Entry(**{**HOLD.__dict__, "reference": "ext_authorize_9"})],
            "external_holds_agree",
            "2 live holds",
        ),
        # Our amount or reference is not the endpoint's.
        (
            replaced(OURS, HOLD.idempotency_key, amount_cents=2500),
            LEDGER,
            "external_holds_agree",
            "the endpoint holds 2400 cents",
        ),
        (
            replaced(OURS, HOLD.idempotency_key, reference="ext_authorize_0"),
            LEDGER,
            "external_holds_agree",
            "but the endpoint's hold is",
        ),
        # Captured there, recorded as merely authorized; recorded captured, never captured.
        (
            replaced(OURS, CAPTURED_HOLD.idempotency_key, status="authorized"),
            LEDGER,
            "external_holds_agree",
            "captured it, but we record it as authorized",
        ),
        (
            replaced(OURS, HOLD.idempotency_key, status="captured"),
            LEDGER,
            "external_holds_agree",
            "recorded as captured, but never captured there",
        ),
        # A refund made there that we record as failed; a capture we record that never happened.
        (
            replaced(OURS, REFUND.idempotency_key, status="failed"),
            LEDGER,
            "external_transactions_agree",
            "which is recorded failed",
        ),
        (
            OURS,
            [e for e in LEDGER if e is not REFUND],
            "external_transactions_agree",
            "the endpoint never made it",
        ),
        (
            replaced(OURS, CAPTURE.idempotency_key, amount_cents=1400),
            LEDGER,
            "external_transactions_agree",
            "recorded as 1400 cents",
        ),
    ],
)
def test_each_inconsistency_is_caught(ours, ledger, promise, words):
    found = broken(ours, ledger)
    assert list(found) == [promise], found
    assert any(words in sentence for sentence in found[promise]), found


def test_the_ledger_is_read_from_the_endpoints_sqlite_file(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    app = (ENDPOINT_APP_DIR / "app.py").read_text()
    schema = re.search(r'_SCHEMA = """(.*?)"""', app, re.S)
    assert schema is not None
    with sqlite3.connect(path) as db:  # the endpoint's own schema
        db.executescript(schema.group(1))
        for e in LEDGER:
            db.execute(
                "INSERT INTO transactions VALUES (?, ?, ?, ?, 'tok_ext_ok', ?, ?)",
                (e.reference, e.kind, e.idempotency_key, e.parent, e.amount_cents, int(e.voided)),
            )
    assert read_ledger(path) == LEDGER


def test_an_open_circuit_is_reset_once_and_a_closed_one_left_alone(sessions):
    """What the runner does once the faults stop (tests/chaos/run.py)."""
    with sessions.begin() as session:
        gateway = external_gateways.create(session, mode=Mode.TEST, name="psp", now=utcnow())
        gateway.circuit_state, gateway.circuit_failure_count = CircuitState.OPEN, 30
        gateway_id = gateway.id
    assert _reset_circuit(sessions, gateway_id) is True
    with sessions.begin() as session:
        row = session.get_one(ExternalGateway, gateway_id)
        assert (row.circuit_state, row.circuit_failure_count) == (CircuitState.CLOSED, 0)
    assert _reset_circuit(sessions, gateway_id) is False
