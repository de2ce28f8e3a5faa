"""A clock the tests move by hand, for exact timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


class FixedClock:
    """Stands still until ``advance`` is called; pass it as ``execute(clock=...)``."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now
