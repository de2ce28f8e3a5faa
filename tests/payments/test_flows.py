"""The whole copy flow against the example merchant endpoint, over HTTP with a real
worker: a gateway created over the API as a merchant would (the endpoint started with its
shared secret, then its URLs set), a source order placed through it, copies that place
their target from the wallet entry and cancel their source, a subscription's renewal;
a decline, a 5xx retried, and a timeout after the endpoint charged."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from config import get_settings
from models import AuthorizationStatus, PaymentAuthorization
from tests.api.conftest import Api
from tests.api.shop import Shop, build_shop, create_copy
from tests.api.test_end_to_end import wait_until_finished
from tests.api.test_order_subscriptions import renew_over_http
from tests.payments.endpoint import Endpoint, running_endpoint

pytestmark = [pytest.mark.worker, pytest.mark.slow]


@dataclass
class Psp:
    gateway_id: str
    endpoint: Endpoint

    def authorizations(self) -> dict[str, dict[str, Any]]:
        """What the endpoint holds, by idempotency key."""
        return {t["idempotency_key"]: t for t in self.endpoint.transactions("authorize")}

    def statuses(self, key: str) -> list[int]:
        return [r["status"] for r in self.endpoint.requests() if r["idempotency_key"] == key]


@contextmanager
def external_gateway(
    api: Api, directory: Path, *, timeout_seconds: int, hang_seconds: float
) -> Iterator[Psp]:
    """An external gateway made over the API, then its endpoint run with its secret, then
    its URLs set."""
    attributes = {"name": "Example PSP", "timeout_seconds": timeout_seconds}
    gateway = api.create("external_gateways", attributes)
    secret = gateway["attributes"]["shared_secret"]
    with running_endpoint(directory, secret, hang_seconds=hang_seconds) as endpoint:
        response = api.update("external_gateways", gateway["id"], endpoint.urls())
        assert response.status_code == 200, response.json()
        yield Psp(gateway["id"], endpoint)


@pytest.fixture
def psp(api: Api, tmp_path, private_allowed) -> Iterator[Psp]:
    """1 s timeout: the endpoint hangs 3 s when told to."""
    with external_gateway(api, tmp_path, timeout_seconds=1, hang_seconds=3) as made:
        yield made


def placed_shop(api: Api, psp: Psp, *, then_token: str | None = None, code: str = "TEE") -> Shop:
    """A source order of SKU ``code`` placed through the external gateway; its wallet
    entry's token changed to ``then_token`` afterwards (what the copies charge)."""
    shop = build_shop(api, code=code, token="tok_ext_ok", gateway=psp.gateway_id)
    assert shop.order["attributes"]["status"] == "placed"
    if then_token is not None:
        changed = api.update(
            "customer_payment_sources", shop.entry["id"], {"payment_source_token": then_token}
        )
        assert changed.status_code == 200, changed.json()
    return shop


def target_payments(committed, target_id: str) -> list[PaymentAuthorization]:
    with committed.begin() as session:
        return list(
            session.scalars(
                select(PaymentAuthorization).where(PaymentAuthorization.order_id == target_id)
            )
        )


def finished(api: Api, shop: Shop, **options: Any) -> dict[str, Any]:
    copy = create_copy(api, shop.order["id"], **options)
    return wait_until_finished(api, copy["id"])


def target_of(copy: dict[str, Any]) -> str:
    return copy["relationships"]["target_order"]["data"]["id"]  # type: ignore[no-any-return]


def test_a_copy_places_its_target_and_cancels_its_source_through_the_gateway(
    api, psp, committed, celery_worker
):
    shop = placed_shop(api, psp)
    copy = finished(api, shop, place_target_order=True, cancel_source_order=True)

    assert copy["attributes"]["status"] == "completed", copy["attributes"]["errors_log"]
    key = f"order_copy:{copy['id']}:place"
    held = psp.authorizations()
    assert len(held) == 2
    [source_key] = set(held) - {key}
    assert (held[key]["voided"], held[source_key]["voided"]) == (0, 1)
    assert psp.statuses(f"{source_key}:void") == [200]
    [payment] = target_payments(committed, target_of(copy))
    assert (payment.status, payment.gateway, payment.gateway_reference) == (
        AuthorizationStatus.AUTHORIZED,
        psp.gateway_id,
        held[key]["reference"],
    )
    source = api.retrieve("orders", shop.order["id"])["attributes"]
    assert (source["status"], source["payment_status"]) == ("cancelled", "voided")


def test_a_decline_fails_the_copy_with_the_payment_error(api, psp, committed, celery_worker):
    shop = placed_shop(api, psp, then_token="tok_ext_decline")
    copy = finished(api, shop, place_target_order=True)

    assert copy["attributes"]["status"] == "failed"
    [message] = copy["attributes"]["errors_log"]["payment"]
    assert "card_declined" in message
    [payment] = target_payments(committed, target_of(copy))
    assert payment.status == AuthorizationStatus.DECLINED
    assert f"order_copy:{copy['id']}:place" not in psp.authorizations()


def test_a_5xx_is_retried_under_the_same_key(api, psp, committed, celery_worker):
    shop = placed_shop(api, psp, then_token="tok_ext_flaky")
    copy = finished(api, shop, place_target_order=True)

    assert copy["attributes"]["status"] == "completed", copy["attributes"]["errors_log"]
    key = f"order_copy:{copy['id']}:place"
    assert psp.statuses(key) == [503, 503, 200]
    [payment] = target_payments(committed, target_of(copy))
    assert payment.gateway_reference == psp.authorizations()[key]["reference"]


def test_a_timeout_after_the_charge_is_resolved_by_the_retry_with_the_same_key(
    api, psp, committed, celery_worker
):
    shop = placed_shop(api, psp, then_token="tok_ext_late")
    copy = finished(api, shop, place_target_order=True)

    assert copy["attributes"]["status"] == "completed", copy["attributes"]["errors_log"]
    key = f"order_copy:{copy['id']}:place"
    assert len(psp.statuses(key)) >= 2  # the first answer was lost, the replay got it
    holds = [t for t in psp.endpoint.transactions("authorize") if t["idempotency_key"] == key]
    assert len(holds) == 1
    [payment] = target_payments(committed, target_of(copy))
    assert (payment.status, payment.gateway_reference) == (
        AuthorizationStatus.AUTHORIZED,
        holds[0]["reference"],
    )


def test_a_subscription_renews_through_the_gateway(api, psp, committed, celery_worker):
    subscription, _ = renew_over_http(api, placed_shop(api, psp))
    attributes = subscription["attributes"]
    assert attributes["succeeded_on_last_run"] is True, attributes
    [copy] = api.get(f"/api/order_subscriptions/{subscription['id']}/order_copies").json()["data"]
    target = api.get(f"/api/order_copies/{copy['id']}/target_order").json()["data"]
    assert target["attributes"]["status"] == "placed"
    [payment] = target_payments(committed, target["id"])
    held = psp.authorizations()[payment.idempotency_key]
    assert (payment.gateway, payment.gateway_reference) == (psp.gateway_id, held["reference"])


def test_capture_refunds_and_void_go_through_the_gateway(api, psp, private_allowed):
    """The orders' payment triggers, run by the web process through the same gateway: a
    capture, a partial refund and the rest, each one transaction at the endpoint tied to
    its parent; another order's hold voided."""
    shop = placed_shop(api, psp)
    order_id = shop.order["id"]
    total = shop.order["attributes"]["total_amount_cents"]
    paid = api.update("orders", order_id, {"_capture": True})
    assert paid.status_code == 200, paid.json()
    assert paid.json()["data"]["attributes"]["payment_status"] == "paid"
    part = api.update("orders", order_id, {"_refund_amount_cents": 1000})
    assert part.json()["data"]["attributes"]["payment_status"] == "partially_refunded"
    rest = api.update("orders", order_id, {"_refund": True})
    assert rest.json()["data"]["attributes"]["payment_status"] == "refunded", rest.json()

    [held] = psp.endpoint.transactions("authorize")
    [capture] = psp.endpoint.transactions("capture")
    assert (capture["parent"], capture["amount_cents"]) == (held["reference"], total)
    refunds = psp.endpoint.transactions("refund")
    assert [r["amount_cents"] for r in refunds] == [1000, total - 1000]
    assert {r["parent"] for r in refunds} == {capture["reference"]}
    assert {r["idempotency_key"] for r in refunds} == {
        f"order:{order_id}:refund:1",
        f"order:{order_id}:refund:2",
    }

    other = build_shop(api, code="CAP", token="tok_ext_ok", gateway=psp.gateway_id)
    voided = api.update("orders", other.order["id"], {"_void": True})
    assert voided.json()["data"]["attributes"]["payment_status"] == "voided", voided.json()
    released = {t["idempotency_key"]: t["voided"] for t in psp.endpoint.transactions("authorize")}
    assert sorted(released.values()) == [0, 1]


def test_copies_are_charged_once_each_while_the_endpoint_is_killed_and_restarted(
    api, tmp_path, private_allowed, committed, celery_worker, settings_env
):
    """Eight copies place their targets through an endpoint that takes 0.5 s a call and
    is SIGKILLed three times at seeded moments, down up to 1 s each (calls cut off,
    refused, some after the endpoint recorded the charge): every copy completes, with
    one hold at the endpoint under its key and our one authorization naming it.

    Kept short of the circuit's 30 failures in a row: with twenty copies in flight, an
    outage of a few seconds opens it (each copy's retry counts), and the copies then fail
    fast until ``_reset_circuit``, as Commerce Layer's breaker does. The beat's part is
    played here: the sweeper every 2 s, a claim budget that outlasts the outages (a copy
    whose retries all land in one gives up: the engine's budget, not the gateway's)."""
    settings_env.update(ORDERCOPY_MAX_CLAIMS="40", ORDERCOPY_LEASE_SECONDS="5")
    settings_env["ORDERCOPY_REDISPATCH_AFTER_SECONDS"] = "2"
    get_settings.cache_clear()
    rng = random.Random(21)
    with external_gateway(api, tmp_path, timeout_seconds=2, hang_seconds=0.5) as psp:
        shops = [placed_shop(api, psp, then_token="tok_ext_hang", code=f"T{n}") for n in range(8)]
        copies = [
            create_copy(api, shop.order["id"], place_target_order=True)["id"] for shop in shops
        ]
        for _ in range(3):
            time.sleep(rng.uniform(0.3, 1.5))
            psp.endpoint.kill()
            time.sleep(rng.uniform(0.2, 1.0))
            psp.endpoint.start()
        done = finish_with_sweeps(api, copies)
        # Under a loaded machine's slower retries the outages can still add up to the
        # circuit's 30 failures in a row: the copies then fail fast, charging nothing. An
        # operator's move finishes them (_reset_circuit, then _retry), and no copy may be
        # charged twice for it.
        stopped = [copy["id"] for copy in done if failed_by_open_circuit(copy)]
        if stopped:
            reset = api.update("external_gateways", psp.gateway_id, {"_reset_circuit": True})
            assert reset.status_code == 200, reset.json()
            for copy_id in stopped:
                retried = api.update("order_copies", copy_id, {"_retry": True})
                assert retried.status_code == 200, retried.json()
            done = finish_with_sweeps(api, copies)
        held = psp.authorizations()
        requests = psp.endpoint.requests()

    for copy in done:
        assert copy["attributes"]["status"] == "completed", copy["attributes"]["errors_log"]
        key = f"order_copy:{copy['id']}:place"
        [payment] = target_payments(committed, target_of(copy))
        assert (payment.status, payment.gateway_reference) == (
            AuthorizationStatus.AUTHORIZED,
            held[key]["reference"],
        )
    # One hold per key (the ledger's answers are by key); the restarts were felt.
    assert len(held) == len(shops) + len(copies)
    assert len(requests) >= len(held)


def failed_by_open_circuit(copy: Any) -> bool:
    """Whether the copy failed because its gateway's circuit was open (and for no other
    reason): nothing was asked of the endpoint under that run's key."""
    attributes = copy["attributes"]
    return attributes["status"] == "failed" and all(
        "circuit open" in str(message) for message in attributes["errors_log"].values()
    )


def finish_with_sweeps(api: Api, copy_ids: list[str], timeout: float = 240) -> list[Any]:
    """Each copy once finished, the sweeper sent every 2 s meanwhile (as the beat would)."""
    from worker.app import SWEEP_TASK, app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = {
            copy_id: api.retrieve("order_copies", copy_id)["attributes"]["status"]
            for copy_id in copy_ids
        }
        if all(status in ("completed", "failed") for status in statuses.values()):
            return [wait_until_finished(api, copy_id) for copy_id in copy_ids]
        app.send_task(SWEEP_TASK)
        time.sleep(2)
    raise AssertionError(f"copies not finished: {statuses}")
