"""Tests of copying/subscriptions/: the rules, schedules and the renewals tick."""
