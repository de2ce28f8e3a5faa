"""Test set-up: real PostgreSQL and Redis, a database and a key prefix per xdist worker.

The environment is set before anything reads the settings, so every process
the tests start (workers, CLI) sees the same database and broker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest

from tests import services
from tests.services import ADMIN_URL, REDIS_URL

# One database and one broker key prefix per run and xdist worker, so that runs
# on the same machine (CI, a developer, a benchmark) never see each other.
RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID", f"{os.getpid():x}")[:8]
WORKER_ID = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
DATABASE_NAME = f"ordercopy_test_{RUN_ID}_{WORKER_ID}"
_admin = urlsplit(ADMIN_URL)
DATABASE_URL = f"postgresql+psycopg://{_admin.netloc}/{DATABASE_NAME}"

os.environ["ORDERCOPY_DATABASE_URL"] = DATABASE_URL
os.environ["ORDERCOPY_BROKER_URL"] = f"{REDIS_URL}/1"
os.environ["ORDERCOPY_BROKER_KEY_PREFIX"] = f"test-{RUN_ID}-{WORKER_ID}:"
os.environ.setdefault("ORDERCOPY_LOG_FORMAT", "json")

pytest_plugins = ["tests.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    problems = services.missing()
    if problems:
        pytest.exit("; ".join(problems), returncode=3)


@pytest.fixture(scope="session", autouse=True)
def database() -> Iterator[str]:
    """A fresh database for this worker, migrated once to head."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    from migrations import upgrade

    upgrade(DATABASE_URL)
    yield DATABASE_URL
    from models import db

    db.dispose()
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)')
