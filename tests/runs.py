"""Running one copy through the pipeline, as a copy's own message does."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from copying import runs
from copying.runs import Outcome


def execute_one(sessions: sessionmaker[Session], copy_id: str, **kwargs: Any) -> Outcome:
    """Claim the copy and run it (``copying.runs.execute``, a chunk of one): its outcome,
    or the transient trouble it met, raised as the task raises it for Celery to retry."""
    ran = runs.execute(sessions, [copy_id], **kwargs)
    if copy_id in ran.transient:
        raise ran.transient[copy_id]
    return ran.outcome[copy_id]
