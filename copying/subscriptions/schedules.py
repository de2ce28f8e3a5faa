"""When a subscription renews: fixed frequencies and crontab expressions, in UTC.

Runs are anchored to the first one: the n-th monthly run after Jan 31 is
Jan 31 + n months (Feb 28 or 29, then Mar 31), never a date drifting from
one short month to the next.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from croniter import CroniterError, croniter
from dateutil.relativedelta import relativedelta

FREQUENCIES: dict[str, relativedelta] = {
    "hourly": relativedelta(hours=1),
    "daily": relativedelta(days=1),
    "weekly": relativedelta(weeks=1),
    "monthly": relativedelta(months=1),
    "two-month": relativedelta(months=2),
    "three-month": relativedelta(months=3),
    "four-month": relativedelta(months=4),
    "six-month": relativedelta(months=6),
    "yearly": relativedelta(years=1),
}
#: Upper bound on the runs one call lists: years of hourly runs, never an endless loop.
MAX_RUNS = 100_000
#: Where check_frequency looks for a crontab's first run (croniter searches decades on).
NEVER_PROBE = datetime(2000, 1, 1, tzinfo=UTC)


class ScheduleError(ValueError):
    """The frequency is neither a known name nor a crontab at most hourly."""


@lru_cache(maxsize=1024)
def check_frequency(frequency: str) -> None:
    """Raises ScheduleError unless ``frequency`` is valid. Cached (a pure function of the
    string; a crontab takes 0.5-2 ms, and the tick builds two Schedules per subscription);
    errors are not cached."""
    if frequency in FREQUENCIES:
        return
    fields = frequency.split()
    if len(fields) != 5 or not croniter.is_valid(frequency):
        raise ScheduleError(
            f"{frequency!r} is not one of {', '.join(FREQUENCIES)} nor a crontab expression"
        )
    if not (fields[0].isascii() and fields[0].isdigit()):
        raise ScheduleError(
            f"{frequency!r} runs more often than hourly: its minute field must be one number"
        )
    try:
        croniter(frequency, NEVER_PROBE).get_next(datetime)
    except CroniterError:
        raise ScheduleError(
            f"{frequency!r} names no date that exists (it would never run)"
        ) from None


class Schedule:
    """The run times of ``frequency`` from ``anchor`` (the first run), all aware UTC."""

    def __init__(self, frequency: str, anchor: datetime) -> None:
        check_frequency(frequency)
        self.frequency = frequency
        self.anchor = anchor.astimezone(UTC)
        self.step = FREQUENCIES.get(frequency)
        step = self.step or relativedelta()
        self._months = step.months + 12 * step.years
        # relativedelta keeps weeks as days (``.weeks`` is a view of them).
        self._fixed = timedelta(days=step.days, hours=step.hours)

    def _nth(self, n: int) -> datetime:
        """``anchor + step * n``, as relativedelta computes it (a month's step ends on
        the anchor's day, or on the month's last day if it is shorter), but without its
        cost: the tick computes this for every due subscription."""
        assert self.step is not None
        if not self._months:
            return self.anchor + self._fixed * n
        year, month = divmod(self.anchor.month - 1 + self._months * n, 12)
        year += self.anchor.year
        day = min(self.anchor.day, monthrange(year, month + 1)[1])
        return self.anchor.replace(year=year, month=month + 1, day=day)

    def _cron_after(self, moment: datetime) -> datetime:
        try:
            after: datetime = croniter(self.frequency, moment).get_next(datetime)
        except CroniterError as error:  # validated already; kept for safety
            raise ScheduleError(str(error)) from None
        return after.astimezone(UTC)

    def first(self) -> datetime:
        """The first run: the anchor itself, or the first crontab time from it on."""
        if self.step is not None:
            return self.anchor
        return self._cron_after(self.anchor - timedelta(seconds=1))

    def next_after(self, moment: datetime) -> datetime:
        """The first run strictly after ``moment``."""
        if self.step is None:
            return self._cron_after(max(moment, self.anchor - timedelta(seconds=1)))
        if moment < self.anchor:
            return self.anchor
        n = self._estimate(moment)
        while self._nth(n) <= moment:
            n += 1
        while n > 0 and self._nth(n - 1) > moment:
            n -= 1
        return self._nth(n)

    def last_until(self, moment: datetime) -> datetime | None:
        """The last run at or before ``moment``; None before the first."""
        upcoming = self.next_after(moment - timedelta(microseconds=1))
        if upcoming == moment:
            return moment
        if moment < self.first():
            return None
        if self.step is None:
            try:
                before: datetime = croniter(self.frequency, moment).get_prev(datetime)
            except CroniterError as error:  # validated already; kept for safety
                raise ScheduleError(str(error)) from None
            return before.astimezone(UTC)
        n = self._estimate(moment)
        while n > 0 and self._nth(n) > moment:
            n -= 1
        while self._nth(n + 1) <= moment:
            n += 1
        return self._nth(n)

    def _estimate(self, moment: datetime) -> int:
        assert self.step is not None
        if self._months:
            elapsed = (moment.year - self.anchor.year) * 12 + moment.month - self.anchor.month
            return max(elapsed // self._months, 0)
        return max(int((moment - self.anchor) // self._fixed), 0)

    def between(self, start: datetime, end: datetime) -> list[datetime]:
        """Every run in ``[start, end]``."""
        runs: list[datetime] = []
        moment = self.next_after(start - timedelta(microseconds=1))
        while moment <= end and len(runs) < MAX_RUNS:
            runs.append(moment)
            moment = self.next_after(moment)
        return runs


def period_key(run: datetime) -> str:
    """The identity of one scheduled run: its UTC time, to the second."""
    return run.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
