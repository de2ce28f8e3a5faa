"""The topics a webhook may listen to: Commerce Layer's names, each the resource it sends.

Only topics that fire are listed: each is written by the state change it names, in that
change's transaction (``webhooks.events``).
"""

from __future__ import annotations

from copying.errors import CopyInputError

#: Topic → the type of the resource its payload is.
TOPICS: dict[str, str] = {
    "order_copies.create": "order_copies",
    "order_copies.start": "order_copies",
    "order_copies.complete": "order_copies",
    "order_copies.fail": "order_copies",
    "order_copies.abort": "order_copies",
    "order_copies.destroy": "order_copies",
    "recurring_order_copies.create": "recurring_order_copies",
    "recurring_order_copies.start": "recurring_order_copies",
    "recurring_order_copies.complete": "recurring_order_copies",
    "recurring_order_copies.fail": "recurring_order_copies",
    "recurring_order_copies.abort": "recurring_order_copies",
    "recurring_order_copies.destroy": "recurring_order_copies",
    "order_subscriptions.create": "order_subscriptions",
    "order_subscriptions.activate": "order_subscriptions",
    "order_subscriptions.deactivate": "order_subscriptions",
    "order_subscriptions.cancel": "order_subscriptions",
    "order_subscriptions.destroy": "order_subscriptions",
    "order_subscriptions.last_run_failed": "order_subscriptions",
    "order_subscriptions.last_run_succeeded": "order_subscriptions",
    "order_subscriptions.pending": "order_subscriptions",
    "order_subscriptions.renewal": "order_subscriptions",
    "orders.place": "orders",
    "orders.cancel": "orders",
}

#: The topics of a copy, named for a copy asked for (``order_copies.*``); a renewal's
#: are ``recurring_order_copies.*`` (:func:`of_copy`).
CREATE, START, COMPLETE, FAIL, ABORT, DESTROY = list(TOPICS)[:6]
(
    SUBSCRIPTION_CREATE,
    SUBSCRIPTION_ACTIVATE,
    SUBSCRIPTION_DEACTIVATE,
    SUBSCRIPTION_CANCEL,
    SUBSCRIPTION_DESTROY,
    LAST_RUN_FAILED,
    LAST_RUN_SUCCEEDED,
    #: No usable wallet entry: the subscription waits for one (and ``_activate``).
    SUBSCRIPTION_PENDING,
    #: The reminder ``renewal_alert_period`` hours before a run.
    SUBSCRIPTION_RENEWAL,
) = list(TOPICS)[12:21]
ORDER_PLACE, ORDER_CANCEL = list(TOPICS)[21:]


def of_copy(topic: str, copy_type: str) -> str:
    """A copy topic (``order_copies.*``) for a copy of ``copy_type`` (``OrderCopy.copy_type``:
    a renewal's is ``recurring_order_copies.*``, as in Commerce Layer)."""
    return f"{copy_type}.{topic.split('.', 1)[1]}"


def check_topic(topic: object) -> str:
    """The topic, or CopyInputError naming the ones there are."""
    if not isinstance(topic, str) or topic not in TOPICS:
        raise CopyInputError("topic", f"{topic!r} is not one of {', '.join(TOPICS)}")
    return topic
