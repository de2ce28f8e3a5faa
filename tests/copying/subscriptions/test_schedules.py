"""Calendar rules: UTC, anchored to the first run, month ends, leap years, crontab."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from copying.subscriptions.schedules import (
    FREQUENCIES,
    Schedule,
    ScheduleError,
    check_frequency,
    period_key,
)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def runs(frequency: str, anchor: datetime, until: datetime) -> list[datetime]:
    return Schedule(frequency, anchor).between(anchor, until)


def test_monthly_from_january_31_keeps_to_month_ends_without_drifting():
    assert runs("monthly", at(2025, 1, 31), at(2025, 5, 31)) == [
        at(2025, 1, 31),
        at(2025, 2, 28),
        at(2025, 3, 31),
        at(2025, 4, 30),
        at(2025, 5, 31),
    ]


def test_monthly_in_a_leap_year_lands_on_february_29():
    assert runs("monthly", at(2024, 1, 31, 10, 30), at(2024, 3, 31, 10, 30)) == [
        at(2024, 1, 31, 10, 30),
        at(2024, 2, 29, 10, 30),
        at(2024, 3, 31, 10, 30),
    ]


def test_yearly_from_february_29_is_february_28_until_the_next_leap_year():
    assert runs("yearly", at(2024, 2, 29), at(2028, 3, 1)) == [
        at(2024, 2, 29),
        at(2025, 2, 28),
        at(2026, 2, 28),
        at(2027, 2, 28),
        at(2028, 2, 29),
    ]


@pytest.mark.parametrize(
    ("frequency", "second"),
    [
        ("hourly", at(2026, 1, 1, 1)),
        ("daily", at(2026, 1, 2)),
        ("weekly", at(2026, 1, 8)),
        ("two-month", at(2026, 3, 1)),
        ("three-month", at(2026, 4, 1)),
        ("four-month", at(2026, 5, 1)),
        ("six-month", at(2026, 7, 1)),
    ],
)
def test_each_named_frequency_steps_from_the_anchor(frequency, second):
    assert Schedule(frequency, at(2026, 1, 1)).next_after(at(2026, 1, 1)) == second


def test_next_after_a_long_gap_is_exact_for_weekly_runs():
    schedule = Schedule("weekly", at(2026, 1, 1))
    assert schedule.next_after(at(2026, 12, 30, 12)) == at(2026, 12, 31)
    assert schedule.next_after(at(2026, 12, 31)) == at(2027, 1, 7)


def test_next_after_is_strictly_after_and_before_the_anchor_is_the_anchor():
    schedule = Schedule("monthly", at(2026, 3, 15))
    assert schedule.next_after(at(2026, 1, 1)) == at(2026, 3, 15)
    assert schedule.next_after(at(2026, 3, 15)) == at(2026, 4, 15)


def test_crontab_runs_at_its_times_in_utc():
    schedule = Schedule("30 9 * * 1", at(2026, 11, 1))  # Mondays 09:30
    assert schedule.first() == at(2026, 11, 2, 9, 30)
    assert schedule.between(at(2026, 11, 1), at(2026, 11, 30, 23)) == [
        at(2026, 11, 2, 9, 30),
        at(2026, 11, 9, 9, 30),
        at(2026, 11, 16, 9, 30),
        at(2026, 11, 23, 9, 30),
        at(2026, 11, 30, 9, 30),
    ]


@pytest.mark.parametrize("expression", ["* * * * *", "*/5 * * * *", "0,30 * * * *", "0-5 * * * *"])
def test_crontab_more_often_than_hourly_is_refused(expression):
    with pytest.raises(ScheduleError, match="more often than hourly"):
        check_frequency(expression)


@pytest.mark.parametrize("frequency", ["fortnightly", "61 * * * *", "0 9 * *", ""])
def test_unknown_frequencies_are_refused(frequency):
    with pytest.raises(ScheduleError):
        check_frequency(frequency)


def test_period_keys_name_the_run_to_the_second_in_utc():
    assert period_key(at(2026, 2, 28, 9, 0)) == "2026-02-28T09:00:00Z"


@pytest.mark.parametrize("expression", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 9 *"])
def test_a_crontab_naming_no_real_date_is_refused(expression):
    with pytest.raises(ScheduleError, match="never run"):
        check_frequency(expression)


def test_a_crontab_on_a_rare_real_date_is_taken():
    check_frequency("0 0 29 2 *")
    assert Schedule("0 0 29 2 *", at(2026, 1, 1)).first() == at(2028, 2, 29)


@pytest.mark.parametrize("frequency", sorted(FREQUENCIES))
@pytest.mark.parametrize(
    "anchor",
    [at(2024, 1, 31, 23, 59), at(2024, 2, 29, 6), at(2025, 8, 31), at(2026, 12, 30, 12, 30)],
)
def test_the_nth_run_is_the_anchor_plus_n_steps_as_relativedelta_adds_them(frequency, anchor):
    """The schedule computes month steps itself (for speed); relativedelta is the reference."""
    schedule = Schedule(frequency, anchor)
    step = FREQUENCIES[frequency]
    expected = [anchor + step * n for n in range(40)]
    assert schedule.between(anchor, expected[-1]) == expected


def test_a_frequency_is_checked_once_however_many_schedules_use_it():
    anchor = at(2026, 1, 5)
    check_frequency.cache_clear()
    for _ in range(3):
        Schedule("0 9 * * 1", anchor)
    assert check_frequency.cache_info().misses == 1
