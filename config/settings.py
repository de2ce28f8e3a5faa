"""The one place that reads the environment (prefix ``ORDERCOPY_``).

Unset URLs mean the *embedded default*: SQLite (WAL) for data and Kombu's
SQLAlchemy transport on another SQLite file for the broker, so ``make run``
needs no server at all.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DATABASE_SCHEMES = ("postgresql", "postgresql+psycopg", "sqlite")
BROKER_SCHEMES = (
    "redis",
    "rediss",
    "sqla+sqlite",
    "sqla+postgresql",
    "sqla+postgresql+psycopg",
    "memory",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERCOPY_", extra="ignore")

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset means SQLite under data_dir."
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker URL; unset means a SQLite broker under data_dir."
    )
    broker_key_prefix: str = Field(
        default="", description="Prefix of every Redis key, to share one Redis between deployments."
    )
    data_dir: Path = Field(default=Path("var"), description="Where the embedded default lives.")
    env: Literal["development", "production"] = "development"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"

    lease_seconds: int = Field(default=30, ge=5, description="A claim's lease, renewed per step.")
    max_claims: int = Field(default=8, ge=1, description="Claims of one run before it fails.")
    chunk_size: int = Field(
        default=200,
        ge=1,
        le=500,
        description="Copies a worker claims and runs together: a copy's message takes other due"
        " pending copies up to this many, a batch message takes its ids this many at a time.",
    )
    gateway_concurrency: int = Field(
        default=4,
        ge=1,
        le=32,
        description="Payment gateway calls a worker process makes at once for a chunk of copies.",
    )
    redispatch_after_seconds: int = Field(
        default=120, ge=1, description="A pending copy not claimed by then is published again."
    )
    redispatch_max_seconds: int = Field(
        default=1800,
        ge=1,
        description="... then after twice as long each time, up to this (a backlog's bound).",
    )
    sweep_interval_seconds: float = Field(default=15.0, gt=0)
    sweep_batch_size: int = Field(default=1000, ge=1)
    abandoned_payment_after_seconds: int = Field(
        default=300,
        ge=10,
        description="A payment asked for (or being voided) and untouched this long was left by"
        " a process that died during its gateway call: the sweeper voids it; a capture or"
        " refund asked for and untouched this long is asked again under its key.",
    )
    renewals_interval_seconds: float = Field(default=60.0, gt=0, description="Beat's renewal tick.")
    renewals_batch_size: int = Field(default=1000, ge=1, le=1000)
    task_time_limit_seconds: int = Field(default=300, ge=10)
    worker_metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve the worker's /metrics on this port."
    )
    failpoints: str = Field(default="", description="Test only: NAME=raise|exit,…")
    webhooks_allow_private: bool = Field(
        default=False,
        description="Allow callback URLs on loopback/private addresses (tests, the embedded"
        " default): webhooks', and test-mode external gateways' (live ones never).",
    )
    webhooks_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="One webhook request's time limit: connect, TLS, send and reading the answer.",
    )
    webhooks_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often the beat looks for webhook events due (new ones and retries).",
    )
    webhooks_backoff_seconds: float = Field(
        default=60.0,
        gt=0,
        description="The wait after a webhook event's first failed attempt; it doubles after"
        " each, up to eight hours (10 attempts in all).",
    )
    webhooks_batch_size: int = Field(
        default=50, ge=1, description="Webhook events one delivery task takes at most."
    )
    webhooks_concurrency: int = Field(
        default=8,
        ge=1,
        description="Deliveries one task makes at once (at most two to the same webhook).",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The API's address as web apps reach it: the links in webhook payloads.",
    )

    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1,
        description="Largest request body the API reads (413 beyond it, before parsing).",
    )
    api_key_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="How long a web process trusts an API key it found (a revoked key is "
        "refused at most this long after; 0: every request reads the key).",
    )
    readyz_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        description="How long /readyz answers from its last check (0: every probe checks).",
    )
    rate_limits: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Per-API-key rate limits; auto: on when ENV=production.",
    )
    rate_limit_scale: float = Field(
        default=1.0, gt=0, description="Multiplies every rate limit (api/rate_limits.py)."
    )
    rate_limit_average_seconds: int = Field(
        default=60, ge=1, description="The window of the per-class (average) limits."
    )
    rate_limit_burst_seconds: int = Field(
        default=10, ge=1, description="The window of the per-endpoint (burst) limits."
    )

    @model_validator(mode="after")
    def _check_redispatch(self) -> Settings:
        if self.redispatch_max_seconds < self.redispatch_after_seconds:
            raise ValueError(
                f"REDISPATCH_MAX_SECONDS ({self.redispatch_max_seconds}) is below "
                f"REDISPATCH_AFTER_SECONDS ({self.redispatch_after_seconds})"
            )
        return self

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is not None:
            _check_url(value, DATABASE_SCHEMES)
        return value

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, value: str | None) -> str | None:
        if value is not None and _scheme(value) not in BROKER_SCHEMES:
            raise ValueError(
                f"{value!r} is not a broker URL; use one of {', '.join(BROKER_SCHEMES)}://…"
            )
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ordercopy.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        return f"sqla+sqlite:///{(self.data_dir / 'broker.db').resolve()}"

    @property
    def is_embedded(self) -> bool:
        return self.database_url is None

    @property
    def rate_limited(self) -> bool:
        return self.rate_limits == "on" or (self.rate_limits == "auto" and self.env == "production")


def _scheme(url: str) -> str:
    """What comes before ``://`` (``dialect[+driver]``, as SQLAlchemy and Kombu read it),
    or '' when there is no ``://``; read without importing either: the CLI's listings load
    the settings and never SQLAlchemy (cli/rows.py)."""
    scheme, separator, _ = url.partition("://")
    return scheme if separator else ""


def _check_url(value: str, schemes: tuple[str, ...]) -> None:
    scheme = _scheme(value)
    if not scheme.replace("+", "").replace("_", "").isalnum() or not _port_is_a_number(value):
        raise ValueError(f"{value!r} is not a URL such as postgresql+psycopg://user@host/db")
    if scheme not in schemes:
        raise ValueError(f"{scheme!r} is not supported; use one of {', '.join(schemes)}")


def _port_is_a_number(url: str) -> bool:
    try:
        urlsplit(url).port  # noqa: B018 (reading it raises when it is not one)
    except ValueError:
        return False
    return True


def load_settings() -> Settings:
    """Read the environment, or exit with one line naming what is wrong."""
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"ORDERCOPY_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        print(f"ordercopy: invalid settings: {problems}", file=sys.stderr)
        raise SystemExit(2) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
