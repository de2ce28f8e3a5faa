"""Subscriptions: renewals of an order on a schedule.

``subscription_states`` (the subscription's state machine, rules and failure policy),
``schedules`` (the calendar), ``renewals`` (the tick that queues due renewals and the
outcome a renewal writes back).
"""
