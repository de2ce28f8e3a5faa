"""``event_callbacks``: each delivery of an event tried, as it was sent and answered.

Read-only: the deliverer writes them. A webhook's ``last_event_callbacks`` are these,
newest first (this type's default order).
"""

from __future__ import annotations

from api.resources.common import TIMESTAMPS
from api.spec import Attribute, Relationship, Resource
from models import EventCallback

EVENT_CALLBACKS = Resource(
    type="event_callbacks",
    model=EventCallback,
    description="Deliveries tried, one per attempt, newest first; written by the deliverer.",
    attributes=(
        Attribute("callback_url", "string", nullable=False, filterable=True),
        Attribute(
            "payload",
            "object",
            nullable=False,
            description="The JSON:API document sent (the signed body).",
        ),
        Attribute(
            "response_code",
            "integer",
            filterable=True,
            sortable=True,
            description="The receiver's HTTP status; null when no answer came.",
        ),
        Attribute(
            "response_message",
            "string",
            description="The receiver's answer (truncated), or why none came.",
        ),
        *TIMESTAMPS,
    ),
    relationships=(Relationship("webhook", "webhooks", column="webhook_id"),),
    updatable=False,
    extra_filters={"webhook_id": "string"},
)
