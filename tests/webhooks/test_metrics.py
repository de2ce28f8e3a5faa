"""/metrics on webhooks: open circuits, and how long the oldest event owed has waited."""

from __future__ import annotations

from datetime import timedelta

from api.metrics import CopiesCollector
from models import CircuitState, EventStatus, Mode, Webhook, WebhookEvent, utcnow


def samples() -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("mode", "")): sample.value
        for family in CopiesCollector().collect()
        for sample in family.samples
    }


def test_metrics_count_open_circuits_and_the_oldest_undelivered_event(committed):
    now = utcnow()
    with committed.begin() as s:
        hooks = [
            Webhook(
                mode=mode,
                topic="order_copies.create",
                callback_url="https://receiver.example/",
                shared_secret="x",
                circuit_state=state,
            )
            for mode, state in (
                (Mode.TEST, CircuitState.OPEN),
                (Mode.TEST, CircuitState.OPEN),
                (Mode.TEST, CircuitState.CLOSED),
                (Mode.LIVE, CircuitState.CLOSED),
            )
        ]
        s.add_all(hooks)
        s.flush()
        for n, (status, age) in enumerate(
            ((EventStatus.PENDING, 90), (EventStatus.PENDING, 30), (EventStatus.DELIVERED, 900))
        ):
            s.add(
                WebhookEvent(
                    id=f"00000000-0000-0000-0000-00000000000{n}",
                    mode=Mode.TEST,
                    webhook_id=hooks[0].id,
                    topic="order_copies.create",
                    resource_type="order_copies",
                    resource_id="x",
                    status=status,
                    next_attempt_at=now,
                    created_at=now - timedelta(seconds=age),
                )
            )

    seen = samples()

    assert seen["ordercopy_webhooks_open_circuits", "test"] == 2
    assert seen["ordercopy_webhooks_open_circuits", "live"] == 0
    assert 90 <= seen["ordercopy_oldest_undelivered_webhook_event_age_seconds", "test"] < 900
    assert seen["ordercopy_oldest_undelivered_webhook_event_age_seconds", "live"] == 0
