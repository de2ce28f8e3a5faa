"""Workers as they report themselves: one row per worker node, touched while it runs.

Not scoped by ``mode``, unlike every other table: a worker serves both modes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Timestamp, utcnow


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"

    #: Celery's node name (``copies@host``).
    hostname: Mapped[str] = mapped_column(String(255), primary_key=True)
    pid: Mapped[int]
    started_at: Mapped[datetime]
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[Timestamp]
