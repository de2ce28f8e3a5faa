"""Commerce Layer's states and fields on subscriptions, in the domain: ``pending`` (no usable
wallet entry) and resuming, the renewal reminder sent exactly once per run, ``_skip``, the
wallet entry that fixed a failed renewal taken by its subscription, and which failures a
retry could fix."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from copying.copies.dispatch import unit_of_work
from copying.errors import ErrorKey
from copying.orders import gateways as gateway_module
from copying.orders import placing, wallet
from copying.orders.targets import problem_selling
from copying.runs import Outcome
from copying.subscriptions import failures, history, renewals, subscription_states
from copying.subscriptions.subscription_states import SubscriptionStateError
from copying.webhooks import topics
from models import (
    CustomerPaymentSource,
    Mode,
    Order,
    OrderCopy,
    OrderSubscription,
    SubscriptionStatus,
    WebhookEvent,
)
from tests.copying.clock import FixedClock
from tests.factories import make_shop, make_subscription, make_wallet_entry
from tests.fixtures import Published
from tests.runs import execute_one
from tests.webhooks.test_events import listen

START = datetime(2026, 3, 1, 8, tzinfo=UTC)
S = SubscriptionStatus


def tick(sessions, now, batch_size=10):
    with unit_of_work(sessions, Published()) as s:
        return renewals.tick(s, now, batch_size=batch_size)


def events_of(sessions, topic: str, resource_id: str) -> int:
    with sessions.begin() as s:
        return s.scalar(
            select(func.count()).where(
                WebhookEvent.topic == topic, WebhookEvent.resource_id == resource_id
            )
        )


def kinds(sessions, subscription_id: str) -> list[str]:
    with sessions.begin() as s:
        return [kind for kind, _ in history.of(s, subscription_id)]


def subscription(sessions, subscription_id: str) -> OrderSubscription:
    with sessions.begin() as s:
        return s.get_one(OrderSubscription, subscription_id)


# --- pending -------------------------------------------------------------------------------


def test_a_due_subscription_whose_card_cannot_pay_goes_pending_without_a_run(sessions):
    listen(sessions, topics.SUBSCRIPTION_PENDING)
    with sessions.begin() as s:
        shop = make_shop(s)
        shop.entry.disabled = True
        sub_id = make_subscription(s, shop.source, starts_at=START).id

    result = tick(sessions, START)

    assert result.copies == []
    assert result.parked == 1
    sub = subscription(sessions, sub_id)
    assert sub.status == S.PENDING
    assert sub.next_run_at == START  # the run stays planned as it was
    assert events_of(sessions, topics.SUBSCRIPTION_PENDING, sub_id) == 1
    with sessions.begin() as s:
        [(kind, data)] = history.of(s, sub_id)
    assert kind == "pending"
    assert "is disabled" in data["reason"]
    # a pending subscription is not due: later ticks leave it alone
    assert tick(sessions, START + timedelta(days=40)).subscriptions == 0


def test_a_pending_subscription_resumes_with_a_usable_card_and_activate(sessions):
    with sessions.begin() as s:
        shop = make_shop(s)
        shop.entry.disabled = True
        sub_id = make_subscription(s, shop.source, starts_at=START).id
    tick(sessions, START)
    now = START + timedelta(days=2)

    with sessions.begin() as s, pytest.raises(SubscriptionStateError, match="usable wallet"):
        subscription_states.activate(s, s.get_one(OrderSubscription, sub_id), now)
    with sessions.begin() as s:
        sub = s.get_one(OrderSubscription, sub_id)
        sub.customer_payment_source_id = make_wallet_entry(s, shop.customer).id
        subscription_states.activate(s, sub, now)

    sub = subscription(sessions, sub_id)
    assert sub.status == S.ACTIVE
    assert sub.next_run_at == datetime(2026, 4, 1, 8, tzinfo=UTC)  # the missed run is not renewed
    assert len(tick(sessions, sub.next_run_at).copies) == 1


def test_a_renewal_that_finds_no_usable_card_parks_its_subscription(sessions, gateways):
    with sessions.begin() as s:
        shop = make_shop(s)
        sub_id = make_subscription(
            s, shop.source, starts_at=START, failure_policy=subscription_states.DUNNING
        ).id
    [copy_id] = tick(sessions, START).copies
    with sessions.begin() as s:  # disabled between the tick and the run
        s.get_one(CustomerPaymentSource, shop.entry.id).disabled = True

    assert execute_one(sessions, copy_id, gateways=gateways, clock=FixedClock(START)) == (
        Outcome.FAILED
    )

    sub = subscription(sessions, sub_id)
    assert sub.status == S.PENDING  # not retried: no retry brings a card back
    assert sub.next_attempt_at is None
    assert kinds(sessions, sub_id) == ["pending", "renewal_failed"]


@pytest.mark.parametrize("source_entry", ["usable", "disabled", "none"])
def test_without_an_entry_of_its_own_the_source_orders_entry_decides(sessions, source_entry):
    """Its renewals charge the source order's entry (the API's ``null``): the tick checks
    that one."""
    with sessions.begin() as s:
        shop = make_shop(s)
        sub = make_subscription(s, shop.source, starts_at=START)
        sub.customer_payment_source_id = None
        if source_entry == "disabled":
            shop.entry.disabled = True
        elif source_entry == "none":
            shop.source.customer_payment_source_id = None
        sub_id = sub.id

    result = tick(sessions, START)

    assert len(result.copies) == (source_entry == "usable")
    assert subscription(sessions, sub_id).status == (
        S.RUNNING if source_entry == "usable" else S.PENDING
    )
    with sessions.begin() as s:
        sub = s.get_one(OrderSubscription, sub_id)
        problem = subscription_states.problem_with_wallet(s, sub, START.date())
    assert (problem is None) == (source_entry == "usable")


# --- renewal reminders ---------------------------------------------------------------------


def test_the_reminder_is_sent_once_per_run_period_hours_before_it(sessions):
    listen(sessions, topics.SUBSCRIPTION_RENEWAL)
    with sessions.begin() as s:
        sub = make_subscription(
            s, make_shop(s).source, starts_at=START, next_run_at=START, status=S.DRAFT
        )
        sub.renewal_alert_period = 24
        subscription_states.activate(s, sub, START - timedelta(days=3))
        sub_id = sub.id
    assert subscription(sessions, sub_id).renewal_alert_at == START - timedelta(hours=24)

    assert tick(sessions, START - timedelta(hours=25)).alerts == 0
    assert tick(sessions, START - timedelta(hours=24)).alerts == 1
    for hours in (23, 1):  # later ticks, and a tick again after a restart: nothing more
        assert tick(sessions, START - timedelta(hours=hours)).alerts == 0
    assert events_of(sessions, topics.SUBSCRIPTION_RENEWAL, sub_id) == 1

    assert len(tick(sessions, START).copies) == 1  # the run; the next one's reminder planned
    upcoming = datetime(2026, 4, 1, 8, tzinfo=UTC)
    assert subscription(sessions, sub_id).renewal_alert_at == upcoming - timedelta(hours=24)
    assert tick(sessions, upcoming - timedelta(hours=24)).alerts == 1
    assert events_of(sessions, topics.SUBSCRIPTION_RENEWAL, sub_id) == 2
    with sessions.begin() as s:
        runs = [data["run"] for kind, data in history.of(s, sub_id) if kind == "renewal_alert"]
    assert runs == [START.isoformat(), upcoming.isoformat()]


def test_a_reminder_owed_when_its_run_is_due_goes_out_with_the_run_once(sessions):
    """Ticks down through the reminder's time: the tick that renews sends it, once."""
    listen(sessions, topics.SUBSCRIPTION_RENEWAL)
    with sessions.begin() as s:
        sub = make_subscription(s, make_shop(s).source, starts_at=START, next_run_at=START)
        sub.renewal_alert_at = START - timedelta(hours=1)
        sub_id = sub.id

    first = tick(sessions, START + timedelta(minutes=5))
    again = tick(sessions, START + timedelta(minutes=6))

    assert (len(first.copies), first.alerts) == (1, 1)
    assert (again.copies, again.alerts) == ([], 0)
    assert events_of(sessions, topics.SUBSCRIPTION_RENEWAL, sub_id) == 1


def test_a_new_alert_period_moves_a_reminder_owed_but_never_resends_one_sent(sessions):
    with sessions.begin() as s:
        sub = make_subscription(s, make_shop(s).source, starts_at=START, next_run_at=START)
        subscription_states.plan_alert(sub)
        sub_id = sub.id
    with sessions.begin() as s:
        sub = s.get_one(OrderSubscription, sub_id)
        sub.renewal_alert_period = 48
        subscription_states.apply_changes(
            s, sub, {"renewal_alert_period"}, START - timedelta(days=5)
        )
    assert subscription(sessions, sub_id).renewal_alert_at == START - timedelta(hours=48)
    assert tick(sessions, START - timedelta(hours=48)).alerts == 1
    with sessions.begin() as s:
        sub = s.get_one(OrderSubscription, sub_id)
        sub.renewal_alert_period = 12
        subscription_states.apply_changes(
            s, sub, {"renewal_alert_period"}, START - timedelta(days=1)
        )
    assert tick(sessions, START - timedelta(hours=12)).alerts == 0


def test_paused_and_cancelled_subscriptions_owe_no_reminder(sessions):
    with sessions.begin() as s:
        shop = make_shop(s)
        paused = make_subscription(s, shop.source, starts_at=START)
        gone = make_subscription(s, shop.source, starts_at=START)
        for sub in (paused, gone):
            subscription_states.plan_alert(sub)
        subscription_states.deactivate(s, paused, START - timedelta(days=1))
        subscription_states.cancel(s, gone, START - timedelta(days=1))

    assert tick(sessions, START - timedelta(minutes=30)).alerts == 0


@pytest.mark.usefixtures("committed")
def test_concurrent_ticks_send_each_reminder_once(committed):
    count = 60
    with committed.begin() as s:
        shop = make_shop(s)
        for _ in range(count):
            sub = make_subscription(s, shop.source, starts_at=START + timedelta(days=1))
            sub.renewal_alert_at = START
    listen(committed, topics.SUBSCRIPTION_RENEWAL)
    sent: list[int] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        for _ in range(count):
            with unit_of_work(committed, Published()) as s:
                alerts = renewals.send_alerts(s, START, batch_size=7)
            sent.append(alerts)
            if alerts == 0:
                return

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(sent) == count
    with committed.begin() as s:
        assert s.scalar(select(func.count()).select_from(WebhookEvent)) == count


# --- skip ------------------------------------------------------------------------------------


def test_skip_moves_the_next_run_to_the_one_after_once_and_records_it(sessions):
    with sessions.begin() as s:
        sub_id = make_subscription(s, make_shop(s).source, starts_at=START).id
    with sessions.begin() as s:
        sub = s.get_one(OrderSubscription, sub_id)
        renewals.skip(s, sub, START - timedelta(days=1))

    sub = subscription(sessions, sub_id)
    after = datetime(2026, 4, 1, 8, tzinfo=UTC)
    assert sub.next_run_at == after
    assert tick(sessions, START).copies == []  # the skipped run
    assert len(tick(sessions, after).copies) == 1  # the next one renews
    with sessions.begin() as s:
        skipped = [data for kind, data in history.of(s, sub_id) if kind == "skipped"]
    assert skipped == [{"run": START.isoformat(), "next_run_at": after.isoformat()}]


@pytest.mark.parametrize("status", [S.DRAFT, S.PENDING, S.INACTIVE, S.RUNNING, S.CANCELLED])
def test_only_an_active_subscription_skips(sessions, status):
    with sessions.begin() as s:
        sub = make_subscription(s, make_shop(s).source, starts_at=START, status=status)
        with pytest.raises(SubscriptionStateError, match="only an active"):
            renewals.skip(s, sub, START - timedelta(days=1))


def test_the_last_run_before_expiry_is_not_skipped(sessions):
    with sessions.begin() as s:
        sub = make_subscription(
            s, make_shop(s).source, starts_at=START, expires_at=START + timedelta(days=10)
        )
        with pytest.raises(SubscriptionStateError, match="last before expires_at"):
            renewals.skip(s, sub, START - timedelta(days=1))


# --- the wallet entry that fixed a failed renewal ----------------------------------------------


def failed_renewal(sessions, gateways):
    """A renewal declined for good (Commerce Layer's default: no retry), its target pending."""
    with sessions.begin() as s:
        shop = make_shop(s)
        declined = make_wallet_entry(s, shop.customer, token="tok_declined")
        sub_id = make_subscription(s, shop.source, starts_at=START, wallet_entry=declined).id
    [copy_id] = tick(sessions, START).copies
    assert execute_one(sessions, copy_id, gateways=gateways, clock=FixedClock(START)) == (
        Outcome.FAILED
    )
    with sessions.begin() as s:
        target_id = s.get_one(OrderCopy, copy_id).target_order_id
    return shop, sub_id, declined, target_id, copy_id


def place_with(sessions, gateways, order_id: str, entry_id: str) -> list[str]:
    with sessions.begin() as s:
        order = s.get_one(Order, order_id)
        wallet.attach_wallet_entry(order, s.get_one(CustomerPaymentSource, entry_id))
    return placing.place_order(sessions, order_id, Mode.TEST, gateways=gateways)


def test_placing_a_failed_renewals_target_with_another_card_switches_the_subscription(
    sessions, gateways
):
    shop, sub_id, declined, target_id, copy_id = failed_renewal(sessions, gateways)
    assert subscription(sessions, sub_id).customer_payment_source_id == declined.id

    assert place_with(sessions, gateways, target_id, shop.entry.id) == []

    assert subscription(sessions, sub_id).customer_payment_source_id == shop.entry.id
    with sessions.begin() as s:
        switched = [data for kind, data in history.of(s, sub_id) if kind == "wallet_switched"]
    assert switched == [
        {"from": declined.id, "to": shop.entry.id, "order_id": target_id, "order_copy_id": copy_id}
    ]


def test_placing_another_order_with_another_card_switches_nothing(sessions, gateways):
    _shop, sub_id, declined, _, _ = failed_renewal(sessions, gateways)
    with sessions.begin() as s:
        other = make_shop(s)
        order_id = other.source.id

    placing.place_order(sessions, order_id, Mode.TEST, gateways=gateways)

    assert subscription(sessions, sub_id).customer_payment_source_id == declined.id
    assert "wallet_switched" not in kinds(sessions, sub_id)


# --- which failures a retry could fix -------------------------------------------------------


class _Sku:
    def __init__(self, *, discontinued: bool = False, currency_code: str = "EUR") -> None:
        self.discontinued = discontinued
        self.currency_code = currency_code
        self.unit_amount_cents = 100


@pytest.mark.parametrize(
    ("errors", "retryable"),
    [
        ({ErrorKey.LINE_ITEMS: [problem_selling("TEE", _Sku(discontinued=True), "EUR")]}, False),
        ({ErrorKey.LINE_ITEMS: [problem_selling("TEE", None, "EUR")]}, False),
        ({ErrorKey.LINE_ITEMS: [problem_selling("TEE", _Sku(currency_code="USD"), "EUR")]}, False),
        ({ErrorKey.LINE_ITEMS: ["SKU TEE is out of stock (2 requested, 0 left)"]}, True),
        ({ErrorKey.PAYMENT: ["payment declined: card declined"]}, False),
        (
            {
                ErrorKey.PAYMENT: [
                    "payment declined: " + gateway_module.soft_decline("insufficient funds")
                ]
            },
            True,
        ),
        ({ErrorKey.PAYMENT_SOURCE: ["wallet entry X is disabled"]}, False),
        ({ErrorKey.ORDER_COPY: ["given up after 8 claims"]}, True),
    ],
)
def test_which_failures_a_retry_could_fix(errors, retryable):
    assert (failures.why_not_retry({str(k): v for k, v in errors.items()}) is None) == retryable


def test_the_test_gateway_declines_insufficient_funds_softly_and_tok_declined_hard():
    soft = gateway_module._answer_for("tok_insufficient_funds")
    hard = gateway_module._answer_for("tok_declined")
    assert not soft.succeeded
    assert gateway_module.is_soft_decline(soft.message)
    assert not hard.succeeded
    assert not gateway_module.is_soft_decline(hard.message)
