"""Bulk retry / abort of a failure group, run by the web process in a thread of its own
through ``copying.copies.bulk`` (the code ``ordercopy copies retry`` runs), its progress
written to its ``bulk_jobs`` row as it goes: a reload, or another web process, reads it
there. A job whose process went away stops advancing and is shown as interrupted; the
copies it did not reach are unchanged (each copy is its own transaction)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from copying.copies import bulk
from copying.copies.bulk import RetryOutcome
from copying.copies.dispatch import Publish
from dashboard.copies import is_id
from models import BulkAction, BulkJob, BulkJobStatus, Mode, utcnow

log = structlog.get_logger("ordercopy.dashboard")
#: Progress is written at most this often (and at the end).
WRITE_EVERY_SECONDS = 0.25
#: A running job not advanced for this long lost its process.
STALLED_AFTER = timedelta(seconds=60)
RUNNERS = {BulkAction.RETRY: bulk.retry_each, BulkAction.ABORT: bulk.abort_each}


def start(
    sessions: sessionmaker[Session],
    *,
    mode: Mode,
    action: BulkAction,
    copy_ids: Sequence[str],
    selection: str,
    by: str,
    publish: Publish,
) -> str:
    """Record a job over ``copy_ids`` and start it in a thread; its id. Commits."""
    with sessions.begin() as session:
        job = BulkJob(
            mode=mode,
            action=action,
            selection=selection[:1000],
            started_by=by[:255],
            copy_ids=list(copy_ids),
            total=len(copy_ids),
            changed=0,
            skipped=0,
            errors=0,
        )
        session.add(job)
        session.flush()
        job_id = job.id
    thread = threading.Thread(
        target=run, args=(sessions, job_id, publish), name=f"bulk-{job_id}", daemon=True
    )
    thread.start()
    return job_id


def run(sessions: sessionmaker[Session], job_id: str, publish: Publish) -> None:
    """Run a recorded job to its end, writing its progress as it goes. Commits."""
    with sessions.begin() as session:
        job = session.get(BulkJob, job_id)
        if job is None or job.status is not BulkJobStatus.RUNNING:
            return
        mode, action, ids, by = job.mode, job.action, list(job.copy_ids), job.started_by
    counts = {RetryOutcome.RETRIED: 0, RetryOutcome.SKIPPED: 0, RetryOutcome.ERROR: 0}
    written = time.monotonic()

    def write(finished: bool) -> None:
        values: dict[str, object] = {
            "changed": counts[RetryOutcome.RETRIED],
            "skipped": counts[RetryOutcome.SKIPPED],
            "errors": counts[RetryOutcome.ERROR],
            "updated_at": utcnow(),
        }
        if finished:
            values.update(status=BulkJobStatus.FINISHED, finished_at=utcnow())
        with sessions.begin() as session:
            session.execute(update(BulkJob).where(BulkJob.id == job_id).values(**values))

    def advance(_copy_id: str, outcome: RetryOutcome) -> None:
        nonlocal written
        counts[outcome] += 1
        if time.monotonic() - written >= WRITE_EVERY_SECONDS:
            write(finished=False)
            written = time.monotonic()

    try:
        RUNNERS[action](sessions, ids, mode, by=by, publish=publish, progress_callback=advance)
    finally:
        write(finished=True)
        log.info(
            "dashboard_bulk_job", job_id=job_id, action=action, **{k: v for k, v in counts.items()}
        )


def stalled(job: BulkJob, now: datetime) -> bool:
    return job.status is BulkJobStatus.RUNNING and now - job.updated_at > STALLED_AFTER


def load(session: Session, job_id: str, mode: Mode) -> BulkJob | None:
    if not is_id(job_id):
        return None
    job = session.get(BulkJob, job_id, populate_existing=True)
    return job if job is not None and job.mode == mode else None


def recent(session: Session, mode: Mode, limit: int = 10) -> list[BulkJob]:
    return list(
        session.scalars(
            select(BulkJob)
            .where(BulkJob.mode == mode)
            .order_by(BulkJob.created_at.desc())
            .limit(limit)
        )
    )
