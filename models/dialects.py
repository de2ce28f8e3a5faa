"""The few statements where PostgreSQL and SQLite spell things differently."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect


def insert_ignoring_conflicts(dialect: Dialect, table: Any, columns: Sequence[str]) -> Any:
    """``INSERT … ON CONFLICT (columns) DO NOTHING`` (both backends support it)."""
    module: Any = postgresql if dialect.name == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing(index_elements=list(columns))
