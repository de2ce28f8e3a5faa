"""The bench run's own database and broker key prefix, put in the environment.

Like ``tests/conftest.py``, this must happen before anything reads the
settings: every process the bench starts (workers, raw SQL loops) inherits it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ADMIN_URL = os.environ.get("ORDERCOPY_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ORDERCOPY_TEST_REDIS_URL", "redis://127.0.0.1:6379")


@dataclass(frozen=True)
class BenchEnvironment:
    run_id: str
    database_name: str
    database_url: str  # SQLAlchemy's spelling
    psycopg_url: str  # psycopg's spelling, for the raw SQL baseline
    broker_url: str
    key_prefix: str
    data_dir: Path


def configure(data_dir: Path) -> BenchEnvironment:
    """Choose this run's names and export them as ``ORDERCOPY_*``; call before any settings read."""
    run_id = f"{os.getpid():x}{int(time.time()) % 0xFFFFF:x}"
    name = f"ordercopy_bench_{run_id}"
    netloc = urlsplit(ADMIN_URL).netloc
    bench = BenchEnvironment(
        run_id=run_id,
        database_name=name,
        database_url=f"postgresql+psycopg://{netloc}/{name}",
        psycopg_url=f"postgresql://{netloc}/{name}",
        broker_url=f"{REDIS_URL}/1",
        key_prefix=f"bench-{run_id}:",
        data_dir=data_dir,
    )
    os.environ.update(
        ORDERCOPY_DATABASE_URL=bench.database_url,
        ORDERCOPY_BROKER_URL=bench.broker_url,
        ORDERCOPY_BROKER_KEY_PREFIX=bench.key_prefix,
        ORDERCOPY_DATA_DIR=str(data_dir),
        # The production shape: JSON log lines at INFO, as the Procfile's worker writes them.
        ORDERCOPY_ENV="production",
        ORDERCOPY_LOG_FORMAT="json",
        ORDERCOPY_LOG_LEVEL="INFO",
        # The benches measure the service's speed: one key sends thousands of requests a
        # second, which production's per-key limits would throttle to 429s.
        ORDERCOPY_RATE_LIMITS="off",
    )
    return bench
