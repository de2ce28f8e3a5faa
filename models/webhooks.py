"""Webhooks: who wants to hear of what, the events owed to them, and each delivery tried."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, PublicId, Record, enum_column
from models.circuits import Circuit

#: An event's id: a UUID, made by the database when a state change writes its events
#: (one statement for however many webhooks listen), and sent as ``X-Ordercopy-Event-Id``.
EVENT_ID_LENGTH = 36


class EventStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    #: Every attempt failed (``webhooks.delivery.MAX_ATTEMPTS``): kept, not tried again.
    FAILED = "failed"


class Webhook(Circuit, Record, Base):
    """A callback URL to send every event of one topic to, in one mode; its circuit opens
    after too many failed deliveries in a row (``copying.circuits``)."""

    __tablename__ = "webhooks"
    __table_args__ = (
        # What a state change looks up, in the same transaction: who listens to the topic.
        Index("ix_webhooks_topic_mode", "topic", "mode"),
    )

    id: Mapped[PublicId]
    name: Mapped[str | None] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(64))
    callback_url: Mapped[str] = mapped_column(String(2048))
    include_resources: Mapped[list[str]] = mapped_column(default=list)
    shared_secret: Mapped[str] = mapped_column(String(128))
    disabled_at: Mapped[datetime | None]
    reference: Mapped[str | None] = mapped_column(String(255))
    reference_origin: Mapped[str | None] = mapped_column(String(255))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)


class WebhookEvent(Record, Base):
    """An event owed to one webhook: written in the transaction of the state change that
    causes it (the outbox), delivered at least once afterwards."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        # The deliverer's query: pending events by due time (a partial index: delivered
        # ones leave it).
        Index(
            "ix_webhook_events_pending_next_attempt_at",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_events_webhook_id", "webhook_id"),
        # The cap on deliveries to one webhook at a time counts the events held.
        Index(
            "ix_webhook_events_webhook_id_taken_until",
            "webhook_id",
            "taken_until",
            postgresql_where=text("taken_until IS NOT NULL"),
            sqlite_where=text("taken_until IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(EVENT_ID_LENGTH), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[EventStatus] = mapped_column(
        enum_column(EventStatus, "webhook_event_status"), default=EventStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    #: Until when a deliverer holds the event (None: nobody does).
    taken_until: Mapped[datetime | None]
    #: A ``*.destroy`` event's document, rendered in the transaction that deleted the
    #: resource (None: the document is rendered when the event is sent).
    payload: Mapped[dict[str, Any] | None]


class EventCallback(Record, Base):
    """One delivery tried: what was sent where, and what came back."""

    __tablename__ = "event_callbacks"
    __table_args__ = (
        Index("ix_event_callbacks_webhook_id_created_at", "webhook_id", "created_at"),
        Index("ix_event_callbacks_event_id", "event_id"),
    )

    id: Mapped[PublicId]
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(
        String(EVENT_ID_LENGTH), ForeignKey("webhook_events.id", ondelete="CASCADE")
    )
    callback_url: Mapped[str] = mapped_column(String(2048))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: None when no answer came (timed out, refused, not sent).
    response_code: Mapped[int | None]
    response_message: Mapped[str | None] = mapped_column(String(1024))
