"""Commerce Layer's own JS SDK (``@commercelayer/sdk`` 7.x, pinned in sdk/package-lock.json)
as a client of the API: sdk/drive.mjs drives every resource both have, as a new user of
the SDK would write it, against a real uvicorn, and prints what it did as JSON.

The SDK is redirected from ``https://<org>.commercelayer.io/api`` to the test server with
its request interceptor, and our API key is its access token. What a worker would have
done (a copy that completed, one that failed, a renewal) and what the deliverer writes (event
callbacks) are seeded here, beforehand."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from api.auth import issue_key
from copying.runs import Outcome
from copying.subscriptions import renewals
from copying.webhooks import topics, webhooks
from models import EventCallback, Mode, WebhookEvent, utcnow
from tests.api.web import server_in_thread
from tests.factories import create_copy, make_shop, make_subscription
from tests.interop import npm
from tests.runs import execute_one
from tests.worker.processes import flush_broker

pytestmark = pytest.mark.slow

SDK = Path(__file__).parent / "sdk"
#: Seconds the script may take; it takes about two (a bound, not a measurement).
RUN_WITHIN = 120.0
#: A public address written as one: a webhook takes it in test mode without asking DNS.
PUBLIC_HOOK = "https://93.184.215.14/hooks"

#: What the script must have done with each resource (it may do more): the test fails
#: if a section stopped early or an operation went missing from it.
EXPECTED = {
    resource: set(operations.split())
    for resource, operations in {
        "skus": "create retrieve update delete list filter sort page fields count refused",
        "bundles": "create retrieve update delete list filter sort refused",
        "adjustments": "create retrieve update delete list filter sort refused",
        "customers": "create retrieve update delete list filter sort include related",
        "customer_payment_sources": "create retrieve update delete filter include related",
        "addresses": "create retrieve update delete filter sort page",
        "orders": "create retrieve update delete list filter sort page include related unlink"
        " _customer_payment_source_id _place _cancel _capture _refund _refund_amount_cents _void",
        "line_items": "create retrieve delete filter sort page include related",
        "order_copies": "create retrieve update delete list filter sort page include fields"
        " related refused _abort _retry",
        "order_subscriptions": "create retrieve update delete list filter sort page include"
        " related unlink _activate _deactivate _cancel",
        "order_subscription_items": "create retrieve update delete list filter sort include"
        " related refused",
        "webhooks": "create retrieve update delete list filter sort page include related"
        " _disable _enable _reset_circuit",
        "event_callbacks": "list retrieve filter sort page include related",
        "recurring_order_copies": "list retrieve filter sort include related refused",
        "percentage_discount_promotions": "create update delete",
        "fixed_amount_promotions": "create retrieve",
        "coupons": "create update filter include refused delete",
        "promotions": "list filter",
        "external_gateways": "create retrieve update delete list filter sort refused"
        " _reset_circuit isolated",
        "authorizations": "filter retrieve",
        "captures": "filter related",
        "refunds": "filter",
        "voids": "filter",
    }.items()
}


@pytest.fixture(scope="module")
def sdk() -> tuple[str, Path]:
    """``node`` and the folder the SDK is installed in (installed once per lock file)."""
    node, npm_command = npm.tools()
    return node, npm.install(SDK, npm_command)


@pytest.fixture
def web(committed) -> Iterator[str]:
    with server_in_thread() as url:
        yield url
    flush_broker()  # the copies the script created rang for a worker that never came


def seed(committed, gateways) -> dict[str, Any]:
    """What no API call makes: copies a worker ran (one completed, one failed: its card is
    declined when the target is placed) and a webhook with two delivery attempts."""
    with committed.begin() as session:
        good = make_shop(session).source.id
        declined = make_shop(session, token="tok_declined").source.id
    completed = create_copy(committed, good).id
    failed = create_copy(committed, declined, place_target_order=True).id
    assert execute_one(committed, completed, gateways=gateways) == Outcome.COMPLETED
    assert execute_one(committed, failed, gateways=gateways) == Outcome.FAILED
    now = utcnow()
    # A renewal, in live mode (the test-mode sections count what they list): a
    # subscription due a day ago, renewed by the tick, run.
    with committed.begin() as session:
        shop = make_shop(session, mode=Mode.LIVE)
        subscription = make_subscription(session, shop.source, starts_at=now - timedelta(days=1))
        session.flush()
        subscription_id = subscription.id
    asked_live = create_copy(committed, shop.source.id, mode=Mode.LIVE).id
    with committed.begin() as session:
        [renewal] = renewals.tick(session, now, batch_size=10).copies
    assert execute_one(committed, renewal, gateways=gateways) == Outcome.COMPLETED
    with committed.begin() as session:
        webhook = webhooks.create(
            session,
            mode=Mode.TEST,
            topic=topics.COMPLETE,
            callback_url=PUBLIC_HOOK,
            name="seeded",
            now=now,
        )
        session.flush()
        callbacks = []
        for minutes, code in ((2, 500), (1, 200)):
            at = now - timedelta(minutes=minutes)
            event = WebhookEvent(
                id=str(uuid.uuid4()),
                mode=Mode.TEST,
                webhook_id=webhook.id,
                topic=webhook.topic,
                resource_type="order_copies",
                resource_id=completed,
                next_attempt_at=at,
            )
            session.add(event)
            session.flush()
            callback = EventCallback(
                mode=Mode.TEST,
                webhook_id=webhook.id,
                event_id=event.id,
                callback_url=PUBLIC_HOOK,
                payload={"data": {"type": "order_copies", "id": completed}},
                response_code=code,
                response_message="OK" if code == 200 else "Internal Server Error",
                created_at=at,
                updated_at=at,
            )
            session.add(callback)
            session.flush()
            callbacks.append(callback.id)
    return {
        "completed_copy": completed,
        "renewal": renewal,
        "renewed_subscription": subscription_id,
        "live_copy": asked_live,
        "failed_copy": failed,
        "webhook": webhook.id,
        "event_callbacks": callbacks,  # oldest first
    }


def test_the_commerce_layer_sdk_drives_every_resource_both_have(sdk, web, committed, gateways):
    node, installed = sdk
    with committed.begin() as session:
        _, token = issue_key(session, name="Commerce Layer SDK", mode=Mode.TEST)
        _, live_token = issue_key(session, name="Commerce Layer SDK, live", mode=Mode.LIVE)
    env = {
        **os.environ,
        "ORDERCOPY_URL": web,
        "ORDERCOPY_API_KEY": token,
        "ORDERCOPY_LIVE_API_KEY": live_token,
        "ORDERCOPY_SEED": json.dumps(seed(committed, gateways)),
    }

    with npm.beside(installed, SDK) as scripts:
        done = npm.run_script(node, scripts / "drive.mjs", env, RUN_WITHIN)

    output = f"exit status {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    summary = npm.last_json_line(done.stdout)
    assert summary is not None, f"the script printed no summary:\n{output}"
    failures = summary["failures"]
    assert failures == [], "the SDK met refusals or wrong answers:\n" + json.dumps(
        failures, indent=2
    )
    assert done.returncode == 0, output
    operations = summary["operations"]
    missing = {
        resource: sorted(wanted - set(operations.get(resource, {})))
        for resource, wanted in EXPECTED.items()
        if wanted - set(operations.get(resource, {}))
    }
    assert not missing, f"operations the script did not do: {missing}\n{output}"
