"""Alembic migrations (``ordercopy db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

HERE = Path(__file__).parent


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic config for the packaged scripts, whatever the working directory."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)
