"""What a command needs from the process: its settings, logging, the database's sessions.

Made on the first call, by the command that needs them, not by the root callback: ``--help``
and ``--version`` then import neither pydantic-settings nor SQLAlchemy, and a query pays for
them only when it runs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from config.settings import Settings


def settings() -> Settings:
    """The process's settings, with logging configured from them.

    A bad environment ends the command with the one line
    :func:`config.settings.load_settings` prints.
    """
    from config.logging import configure_logging
    from config.settings import get_settings

    loaded = get_settings()
    root = logging.getLogger()
    # The level the root callback chose (-v), which configuring logging would reset.
    level = root.level
    configure_logging(loaded)
    root.setLevel(level)
    return loaded


def database_url() -> str:
    """The database's URL, for a listing that reads through the driver (cli/rows.py).

    Logging is left as the root callback set it: configuring it loads structlog, which a
    listing, logging nothing, would pay for on every run.
    """
    from config.settings import get_settings

    return get_settings().resolved_database_url


def sessions() -> sessionmaker[Session]:
    """The process's session factory; open a unit of work with ``sessions().begin()``."""
    settings()
    from models import db

    return db.sessions()
