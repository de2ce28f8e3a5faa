"""structlog, configured once per process.

JSON lines when stderr is not a terminal (or in production), a readable
console renderer otherwise. Standard-library loggers (Celery, Kombu,
SQLAlchemy) go through the same processors, so every line has one shape.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from config.settings import Settings

_configured = False


def _wants_json(settings: Settings) -> bool:
    if settings.log_format != "auto":
        return settings.log_format == "json"
    return settings.env == "production" or not sys.stderr.isatty()


def configure_logging(settings: Settings, *, force: bool = False) -> None:
    """Configure structlog and the root logger. Later calls do nothing unless ``force``."""
    global _configured
    if _configured and not force:
        return
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if _wants_json(settings)
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            # A traceback's locals would print settings, URLs and passwords included.
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False),
        )
    )
    structlog.configure(
        # A line below the level is dropped before any processor runs (a worker's debug
        # lines are per copy).
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    _configured = True
