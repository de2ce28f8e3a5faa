"""``/healthz``, ``/readyz`` and ``/metrics``: no key, plain answers, values read from the
database (checked against the rows each test makes) and services really stopped."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from unittest import mock

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, func, select, update

from api import health, metrics
from api.app import app
from config import get_settings
from copying.copies import copy_states, counts, lifecycle
from copying.runs import Outcome
from models import (
    CopyStatus,
    Mode,
    OrderCopy,
    OrderCopyEvent,
    SubscriptionStatus,
    db,
    utcnow,
)
from models.db import make_engine
from tests.chaos.services import RedisServer
from tests.factories import create_copy, make_shop, make_subscription
from tests.runs import execute_one
from tests.services import free_port


def test_healthz_answers_without_a_key(http):
    response = http.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_the_ops_endpoints_are_not_in_the_openapi_document():
    paths = app.openapi()["paths"]

    assert not {"/healthz", "/readyz", "/metrics"} & set(paths)


# --- /readyz ------------------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def settings_env() -> Iterator[dict[str, str]]:
    """Environment changes for this test only, seen by the next ``get_settings()``; every
    probe checks (no answer kept from the last one)."""
    with mock.patch.dict(os.environ) as environ:
        get_settings.cache_clear()
        environ["ORDERCOPY_READYZ_CACHE_SECONDS"] = "0"
        yield environ
    get_settings.cache_clear()
    health.forget()


def use(settings_env, **values: str) -> None:
    settings_env.update({f"ORDERCOPY_{name.upper()}": value for name, value in values.items()})
    get_settings.cache_clear()


def test_readyz_is_200_when_the_database_and_the_broker_answer(http):
    response = http.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_is_503_while_the_broker_is_down_and_200_once_it_is_back(
    http, own_redis, settings_env
):
    use(settings_env, broker_url=own_redis.url)
    assert http.get("/readyz").status_code == 200

    own_redis.kill()
    down = http.get("/readyz")

    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"database": "ok", "broker": "broker unavailable"}
    assert str(own_redis.port) not in down.text  # where it looked goes to the log only

    own_redis.start()
    back = http.get("/readyz")

    assert back.status_code == 200
    assert back.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_is_503_when_the_database_cannot_be_reached(http, settings_env):
    port = free_port()  # nothing listens there
    use(settings_env, database_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/nowhere")

    response = http.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"] == {"broker": "ok", "database": "database unavailable"}
    assert str(port) not in response.text


def test_readyz_checks_the_embedded_default_too(http, settings_env, tmp_path):
    database, broker = tmp_path / "ordercopy.db", tmp_path / "broker.db"
    use(settings_env, database_url=f"sqlite:///{database}", broker_url=f"sqla+sqlite:///{broker}")
    sqlite3.connect(database).close()

    missing = http.get("/readyz")  # the broker's file is not there: the probe does not make it

    assert missing.status_code == 503
    assert missing.json()["checks"]["database"] == "ok"
    assert missing.json()["checks"]["broker"] != "ok"
    assert not broker.exists()

    sqlite3.connect(broker).close()
    ready = http.get("/readyz")

    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}


# --- /metrics -----------------------------------------------------------------------------


def scrape(http) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) → value."""
    response = http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples[name, tuple(sorted(labels.items()))]


def _set(copy_id: str, **values) -> None:
    with db.sessions().begin() as session:
        session.execute(update(OrderCopy).where(OrderCopy.id == copy_id).values(**values))


@pytest.fixture
def copies(committed, gateways) -> dict[str, str]:
    """Test-mode copies in every status (two completed with known run times, one failed
    twice), two due renewals, and one pending live copy: ids by role."""
    now = utcnow()
    with committed.begin() as session:
        good = make_shop(session)
        declined = make_shop(session, token="tok_declined")
        live = make_shop(session, mode=Mode.LIVE)
        make_subscription(session, good.source, starts_at=now - timedelta(days=1))
        make_subscription(
            session,
            good.source,
            starts_at=now - timedelta(days=1),
            status=SubscriptionStatus.RUNNING,
        )
        make_subscription(session, good.source, starts_at=now + timedelta(days=1))
        make_subscription(
            session,
            good.source,
            starts_at=now - timedelta(days=1),
            status=SubscriptionStatus.CANCELLED,
        )
    ids = {}
    for name in ("quick", "slow"):
        ids[name] = create_copy(committed, good.source.id).id
        assert execute_one(committed, ids[name], gateways=gateways) == Outcome.COMPLETED
    started = now - timedelta(hours=3)
    _set(ids["quick"], started_at=started, completed_at=started + timedelta(seconds=0.05))
    _set(ids["slow"], started_at=started, completed_at=started + timedelta(seconds=120))
    ids["failed"] = create_copy(committed, declined.source.id, place_target_order=True).id
    # It fails, is retried and fails again.
    assert execute_one(committed, ids["failed"], gateways=gateways) == Outcome.FAILED
    with committed.begin() as session:
        lifecycle.retry(session, ids["failed"], Mode.TEST, by="test")
    assert execute_one(committed, ids["failed"], gateways=gateways) == Outcome.FAILED
    ids["waiting"] = create_copy(committed, good.source.id, now=now - timedelta(hours=1)).id
    ids["scheduled"] = create_copy(committed, good.source.id, now=now - timedelta(hours=2)).id
    _set(ids["scheduled"], next_attempt_at=now + timedelta(hours=1))
    ids["aborted"] = create_copy(committed, good.source.id).id
    ids["running"] = create_copy(committed, good.source.id).id
    with committed.begin() as session:
        lifecycle.abort(session, ids["aborted"], Mode.TEST, by="test")
        assert copy_states.claim(session, ids["running"], now, timedelta(minutes=5), 8)
    ids["live"] = create_copy(committed, live.source.id, mode=Mode.LIVE).id
    return ids


def test_metrics_count_copies_by_status_as_the_table_holds_them(http, copies):
    samples = scrape(http)

    expected = {
        (Mode.TEST, CopyStatus.PENDING): 2,
        (Mode.TEST, CopyStatus.IN_PROGRESS): 1,
        (Mode.TEST, CopyStatus.COMPLETED): 2,
        (Mode.TEST, CopyStatus.FAILED): 1,
        (Mode.TEST, CopyStatus.ABORTED): 1,
        (Mode.LIVE, CopyStatus.PENDING): 1,
    }
    with db.sessions().begin() as session:
        stored = dict(
            ((Mode(mode), CopyStatus(status)), count)
            for mode, status, count in session.execute(
                select(OrderCopy.mode, OrderCopy.status, func.count()).group_by(
                    OrderCopy.mode, OrderCopy.status
                )
            )
        )
    assert stored == expected
    for mode in Mode:
        for status in CopyStatus:
            assert value(samples, "ordercopy_copies", mode=mode, status=status) == expected.get(
                (mode, status), 0
            ), (mode, status)


def test_metrics_counters_come_from_the_history(http, copies):
    samples = scrape(http)

    def history(kind: str, mode: Mode) -> int:
        with db.sessions().begin() as session:
            return session.scalar(
                select(func.count())
                .select_from(OrderCopyEvent)
                .where(OrderCopyEvent.kind == kind, OrderCopyEvent.mode == mode)
            )

    assert value(samples, "ordercopy_copies_created_total", mode="test") == 7
    assert value(samples, "ordercopy_copies_created_total", mode="live") == 1
    assert value(samples, "ordercopy_copies_completed_total", mode="test") == 2
    # One copy, two failed runs (retried in between): both count.
    assert value(samples, "ordercopy_copies_failed_total", mode="test") == 2
    assert value(samples, "ordercopy_copies_failed_total", mode="live") == 0
    for kind in ("created", "completed", "failed"):
        for mode in Mode:
            assert value(samples, f"ordercopy_copies_{kind}_total", mode=mode) == history(
                kind, mode
            )


def test_metrics_histogram_holds_the_completed_copies_run_times(http, copies):
    samples = scrape(http)

    def bucket(le: str) -> float:
        return value(samples, "ordercopy_copy_duration_seconds_bucket", le=le, mode="test")

    assert bucket("0.1") == 1  # quick: 0.05 s
    assert bucket("60.0") == 1
    assert bucket("300.0") == 2  # slow: 120 s
    assert bucket("+Inf") == 2
    assert value(samples, "ordercopy_copy_duration_seconds_count", mode="test") == 2
    assert value(samples, "ordercopy_copy_duration_seconds_sum", mode="test") == pytest.approx(
        120.05
    )
    buckets = [bucket(repr(bound)) for bound in metrics.DURATION_BUCKETS]
    assert buckets == sorted(buckets)  # cumulative
    assert value(samples, "ordercopy_copy_duration_seconds_count", mode="live") == 0


def test_metrics_oldest_pending_age_skips_copies_scheduled_for_later(http, copies):
    samples = scrape(http)

    age = value(samples, "ordercopy_oldest_pending_copy_age_seconds", mode="test")
    # "waiting" (created an hour ago), not "scheduled" (two hours ago, due in an hour).
    assert 3600 <= age < 7200
    assert 0 <= value(samples, "ordercopy_oldest_pending_copy_age_seconds", mode="live") < 3600


def test_metrics_renewals_due_are_active_or_running_subscriptions_past_their_next_run(http, copies):
    samples = scrape(http)

    assert value(samples, "ordercopy_renewals_due", mode="test") == 2
    assert value(samples, "ordercopy_renewals_due", mode="live") == 0


def test_metrics_of_an_empty_database_are_zeros(http, committed):
    samples = scrape(http)

    assert value(samples, "ordercopy_copies", mode="test", status="pending") == 0
    assert value(samples, "ordercopy_copies_created_total", mode="live") == 0
    assert value(samples, "ordercopy_oldest_pending_copy_age_seconds", mode="test") == 0
    assert value(samples, "ordercopy_copy_duration_seconds_count", mode="test") == 0


def test_metrics_read_the_same_on_the_embedded_sqlite(sqlite, gateways):
    sessions, sqlite_gateways = sqlite
    with sessions.begin() as session:
        shop = make_shop(session)
    copy_id = create_copy(sessions, shop.source.id).id
    assert execute_one(sessions, copy_id, gateways=sqlite_gateways) == Outcome.COMPLETED
    started = utcnow() - timedelta(hours=1)
    with sessions.begin() as session:
        session.execute(
            update(OrderCopy)
            .where(OrderCopy.id == copy_id)
            .values(started_at=started, completed_at=started + timedelta(seconds=7))
        )
        counted = counts.current(session.connection())
    durations = metrics._durations(counted)
    by_status = metrics._by_status(counted)

    within, count, total = durations[Mode.TEST]
    assert (count, total) == (1, pytest.approx(7.0, abs=0.01))
    assert within == [0 if bound < 7 else 1 for bound in metrics.DURATION_BUCKETS]
    assert by_status[Mode.TEST, CopyStatus.COMPLETED] == 1


def test_a_scrape_counts_no_table_of_copies_or_history(http, copies):
    """The counts come from metric_counts; the copies table is read only for the oldest
    pending copy (one row from an index), the history not at all."""
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(db.engine(), "before_cursor_execute", seen)
    try:
        scrape(http)
    finally:
        event.remove(db.engine(), "before_cursor_execute", seen)

    assert any("FROM metric_counts" in s for s in statements), statements
    assert not [s for s in statements if "order_copy_events" in s]
    on_copies = [s for s in statements if "FROM order_copies" in s]
    assert len(on_copies) == len(Mode), on_copies
    assert all("LIMIT" in s and "count(" not in s for s in on_copies), on_copies


def test_metrics_is_a_503_without_driver_text_when_the_database_cannot_be_reached(
    http, monkeypatch
):
    port = free_port()  # nothing listens there
    nowhere = make_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{port}/nowhere",
        connect_args={"connect_timeout": 2},
    )
    monkeypatch.setattr(metrics.db, "engine", lambda: nowhere)

    response = http.get("/metrics")

    assert response.status_code == 503
    assert response.text == "database unavailable\n"  # the driver's text goes to the log
    nowhere.dispose()
