"""Running counts of the copies and their history, kept by the database itself.

``/metrics`` reads these instead of counting the tables at each scrape. On PostgreSQL,
statement-level triggers (migration 0016) add one row per (mode, name, label) that a
statement changes: the change's own delta, written in its transaction, so the sums are
exact whatever writes the tables (the domain, a bulk update, SQL by hand) and whatever
crashes (a rolled-back change rolls its delta back). The rows are summed by the reader
and folded into one per key by the maintenance tick (``copying.copies.counts``).

The embedded SQLite has no triggers for them: its ``/metrics`` counts the tables (a
small shop's).
"""

from __future__ import annotations

import enum

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Mode, enum_column


class CountName(enum.StrEnum):
    """What a row counts; its ``label`` says which one."""

    #: Copies by status (label: the status).
    COPIES = "copies"
    #: History events by kind (label: the kind).
    COPY_EVENTS = "copy_events"
    #: Copies with a run time (started and completed), by the histogram bucket it falls in
    #: (label: the bucket's upper bound, ``repr(float(bound))``, or ``+Inf``); not cumulative.
    COPY_DURATIONS = "copy_durations"
    #: The sum of those run times in microseconds (label: empty).
    COPY_DURATION_MICROS = "copy_duration_micros"


class MetricCount(Base):
    """One delta (or, once folded, the sum) of one count; no timestamps: never read alone."""

    __tablename__ = "metric_counts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    mode: Mapped[Mode] = mapped_column(enum_column(Mode, "mode"))
    name: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(32))
    value: Mapped[int] = mapped_column(BigInteger())
