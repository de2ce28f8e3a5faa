"""The outbox: a copy row is the job, the broker message only a doorbell.

Domain functions note which copies to announce with :func:`publish_after_commit`;
:func:`unit_of_work` commits, then hands those ids to the caller's ``publish``
callable (the worker's Celery publisher, or a test's recorder). A doorbell that
is lost is rung again by the sweeper; one rung twice is harmless (claim).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

Publish = Callable[[Sequence[str]], None]

_OUTBOX = "ordercopy.outbox"


def publish_after_commit(session: Session, copy_ids: Sequence[str]) -> None:
    """Announce ``copy_ids`` once the session's transaction commits. Does not commit."""
    session.info.setdefault(_OUTBOX, []).extend(copy_ids)


def pending_announcements(session: Session) -> list[str]:
    return list(session.info.get(_OUTBOX, ()))


@contextmanager
def unit_of_work(sessions: sessionmaker[Session], publish: Publish) -> Iterator[Session]:
    """One transaction; on commit, publish what it asked to announce. Nothing on rollback."""
    with sessions.begin() as session:
        yield session
        announced = session.info.pop(_OUTBOX, [])
    if announced:
        publish(announced)
