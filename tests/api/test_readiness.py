"""``/readyz`` under a flood: checks over kept connections, one check at a time per process
and its answer kept ``readyz_cache_seconds``; bodies that name no host, port or driver."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from unittest import mock
from urllib.request import urlopen

import pytest
import redis
from sqlalchemy import event

from api import health
from config import get_settings
from tests.api.web import server_in_thread
from tests.chaos.services import RedisServer
from tests.services import free_port

PROBES = 20


@pytest.fixture
def settings_env() -> Iterator[dict[str, str]]:
    with mock.patch.dict(os.environ) as environ:
        get_settings.cache_clear()
        health.forget()
        yield environ
    get_settings.cache_clear()
    health.forget()


def use(settings_env, **values: str) -> None:
    settings_env.update({f"ORDERCOPY_{name.upper()}": value for name, value in values.items()})
    get_settings.cache_clear()


class Counted:
    """A check that counts its runs; it waits for ``release`` when one is given."""

    def __init__(self, release: threading.Event | None = None) -> None:
        self.runs = 0
        self.started = threading.Event()
        self.release = release
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            self.runs += 1
        self.started.set()
        if self.release is not None:
            assert self.release.wait(30)


def test_probes_within_the_cache_time_get_the_last_answer(http, settings_env, monkeypatch):
    use(settings_env, readyz_cache_seconds="3600")
    database, broker = Counted(), Counted()
    monkeypatch.setattr(health, "check_database", database)
    monkeypatch.setattr(health, "check_broker", broker)

    answers = [http.get("/readyz") for _ in range(PROBES)]

    assert {a.status_code for a in answers} == {200}
    assert (database.runs, broker.runs) == (1, 1)


def test_probes_during_a_check_wait_for_it_instead_of_checking_too(settings_env, monkeypatch):
    use(settings_env, readyz_cache_seconds="3600")
    release = threading.Event()
    database, broker = Counted(release), Counted()
    monkeypatch.setattr(health, "check_database", database)
    monkeypatch.setattr(health, "check_broker", broker)

    with server_in_thread() as url, ThreadPoolExecutor(PROBES) as pool:
        first = pool.submit(lambda: urlopen(f"{url}/readyz", timeout=30).status)
        assert database.started.wait(30)  # the first probe's check is running...
        others = [
            pool.submit(lambda: urlopen(f"{url}/readyz", timeout=30).status)
            for _ in range(PROBES - 1)
        ]
        release.set()  # ...and ends once the others came
        statuses = [first.result(), *(o.result() for o in others)]

    assert statuses == [200] * PROBES
    assert (database.runs, broker.runs) == (1, 1)


def test_with_no_cache_time_every_probe_checks(http, settings_env, monkeypatch):
    use(settings_env, readyz_cache_seconds="0")
    database, broker = Counted(), Counted()
    monkeypatch.setattr(health, "check_database", database)
    monkeypatch.setattr(health, "check_broker", broker)

    for _ in range(3):
        http.get("/readyz")

    assert (database.runs, broker.runs) == (3, 3)


def test_a_kept_answer_is_for_the_services_it_checked(http, settings_env, tmp_path):
    use(settings_env, readyz_cache_seconds="3600")
    assert http.get("/readyz").status_code == 200

    use(settings_env, broker_url=f"redis://127.0.0.1:{free_port()}/0")

    assert http.get("/readyz").status_code == 503


def test_database_checks_reuse_one_pooled_connection(http, settings_env):
    use(settings_env, readyz_cache_seconds="0")
    engine = health._engine(get_settings().resolved_database_url)
    connects: list[object] = []

    def count(*_: object) -> None:
        connects.append(1)

    event.listen(engine, "connect", count)
    try:
        answers = [http.get("/readyz") for _ in range(5)]
    finally:
        event.remove(engine, "connect", count)

    assert [a.status_code for a in answers] == [200] * 5
    assert len(connects) <= 1  # one, or none when an earlier test's connection is kept


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


def test_broker_checks_reuse_one_connection(http, settings_env, own_redis):
    use(settings_env, broker_url=own_redis.url, readyz_cache_seconds="0")
    watcher = redis.Redis.from_url(own_redis.url)

    def connections() -> int:
        return int(watcher.info("stats")["total_connections_received"])

    before = connections()
    answers = [http.get("/readyz") for _ in range(5)]
    after = connections()
    watcher.close()

    assert [a.status_code for a in answers] == [200] * 5
    assert after - before == 1


def test_readyz_names_the_service_down_but_not_where_it_looked(http, settings_env, caplog):
    port = free_port()
    use(
        settings_env,
        readyz_cache_seconds="0",
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/nowhere",
    )

    response = http.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "database unavailable", "broker": "ok"},
    }
    assert "readyz_check_failed" in caplog.text
    assert str(port) in caplog.text  # the detail is in the log
