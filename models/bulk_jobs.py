"""Bulk actions started from the ops dashboard: the copies they cover and how far they got.

The row is the progress display's source, so a reload (or another web process) shows the
same numbers; the copies themselves change through ``copying.copies.bulk``.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, PublicId, Record, enum_column


class BulkAction(enum.StrEnum):
    RETRY = "retry"
    ABORT = "abort"


class BulkJobStatus(enum.StrEnum):
    RUNNING = "running"
    FINISHED = "finished"


class BulkJob(Record, Base):
    __tablename__ = "bulk_jobs"
    __table_args__ = (Index("ix_bulk_jobs_mode_created_at", "mode", "created_at"),)

    id: Mapped[PublicId]
    action: Mapped[BulkAction] = mapped_column(enum_column(BulkAction, "action"))
    status: Mapped[BulkJobStatus] = mapped_column(
        enum_column(BulkJobStatus, "status"), default=BulkJobStatus.RUNNING
    )
    #: What the copies were chosen by (an error key and normalized message), for people.
    selection: Mapped[str] = mapped_column(String(1000))
    #: Who started it (the API key's name).
    started_by: Mapped[str] = mapped_column(String(255))
    copy_ids: Mapped[list[str]]
    total: Mapped[int] = mapped_column(default=0)
    changed: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    finished_at: Mapped[datetime | None]
