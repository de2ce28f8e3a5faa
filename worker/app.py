"""The Celery app, configured from the settings with the design's reliability rules."""

from __future__ import annotations

from celery import Celery
from kombu.entity import Exchange, Queue

from config import get_settings
from worker.broker import celery_broker

QUEUES = ("copies", "renewals", "maintenance", "webhooks")
EXCHANGE = Exchange("ordercopy", type="direct")
COPY_TASK = "ordercopy.copy_order"
COPY_BATCH_TASK = "ordercopy.copy_orders"
SWEEP_TASK = "ordercopy.sweep"
RECOUNT_TASK = "ordercopy.metric_counts.reconcile"
#: Seconds between two checks of metric_counts against a recount of the tables.
RECOUNT_INTERVAL_SECONDS = 3600
RENEWALS_TICK_TASK = "ordercopy.renewals.tick"
WEBHOOKS_TASK = "ordercopy.webhooks.deliver"


def make_app() -> Celery:
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = Celery(
        "ordercopy",
        include=["tasks.copies", "tasks.maintenance", "tasks.renewals", "tasks.webhooks"],
    )
    # The broker must hold an unacknowledged message longer than any task may run,
    # or a slow copy would be handed to a second worker while the first still runs.
    visibility_timeout = max(3600, 4 * settings.task_time_limit_seconds)
    # Redis only: Kombu's SQLAlchemy transport (the embedded default) hands every
    # option to create_engine(), and it has no visibility timeout to set anyway.
    transport_options: dict[str, object] = {}
    if settings.resolved_broker_url.startswith(("redis://", "rediss://")):
        transport_options["visibility_timeout"] = visibility_timeout
        if settings.broker_key_prefix:
            transport_options["global_keyprefix"] = settings.broker_key_prefix
    app.conf.update(
        # broker_url and broker_transport: the embedded default's SQLAlchemy broker is
        # polled by worker/broker.py's transport.
        **celery_broker(settings.resolved_broker_url),
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options,
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_time_limit=settings.task_time_limit_seconds,
        task_soft_time_limit=settings.task_time_limit_seconds - 5,
        # One direct exchange, each queue bound under its own name: a message routed
        # to one queue reaches that queue only, so each pool can be scaled alone.
        task_queues=[Queue(name, EXCHANGE, routing_key=name) for name in QUEUES],
        task_default_exchange=EXCHANGE.name,
        task_default_routing_key="copies",
        task_default_queue="copies",
        task_routes={
            COPY_TASK: {"queue": "copies"},
            COPY_BATCH_TASK: {"queue": "copies"},
            SWEEP_TASK: {"queue": "maintenance"},
            RECOUNT_TASK: {"queue": "maintenance"},
            RENEWALS_TICK_TASK: {"queue": "renewals"},
            WEBHOOKS_TASK: {"queue": "webhooks"},
        },
        # A broker outage must not hang the web request that publishes: the
        # sweeper re-sends whatever could not be published.
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0.1,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        # No task-sent event per publish: it cost the API a second Redis publish per
        # created copy (issue 20). Workers still send received/started/succeeded.
        task_send_sent_event=False,
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
        beat_schedule={
            "sweep": {
                "task": SWEEP_TASK,
                "schedule": settings.sweep_interval_seconds,
                "options": {"queue": "maintenance", "expires": settings.sweep_interval_seconds},
            },
            "recount": {
                "task": RECOUNT_TASK,
                "schedule": RECOUNT_INTERVAL_SECONDS,
                "options": {"queue": "maintenance", "expires": RECOUNT_INTERVAL_SECONDS},
            },
            "renewals": {
                "task": RENEWALS_TICK_TASK,
                "schedule": settings.renewals_interval_seconds,
                "options": {"queue": "renewals", "expires": settings.renewals_interval_seconds},
            },
            "webhooks": {
                "task": WEBHOOKS_TASK,
                "schedule": settings.webhooks_poll_seconds,
                "options": {"queue": "webhooks", "expires": settings.webhooks_poll_seconds},
            },
        },
    )
    return app


app = make_app()
