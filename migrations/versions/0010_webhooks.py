"""webhooks: who listens to which topic, the events owed to them, each delivery tried

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
PENDING = "status = 'pending'"


def _record() -> list[sa.Column[object]]:
    """The columns every table has."""
    return [
        sa.Column(
            "mode",
            sa.Enum("test", "live", name="mode", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("callback_url", sa.String(length=2048), nullable=False),
        sa.Column("include_resources", JSON, nullable=False),
        sa.Column("shared_secret", sa.String(length=128), nullable=False),
        sa.Column(
            "circuit_state",
            sa.Enum(
                "closed", "open", name="circuit_state", native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column("circuit_failure_count", sa.Integer(), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reference", sa.String(length=255), nullable=True),
        sa.Column("reference_origin", sa.String(length=255), nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        *_record(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    op.create_index("ix_webhooks_topic_mode", "webhooks", ["topic", "mode"])
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("webhook_id", sa.String(length=10), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "delivered",
                "failed",
                name="webhook_event_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        *_record(),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name=op.f("fk_webhook_events_webhook_id_webhooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
    )
    op.create_index(
        "ix_webhook_events_pending_next_attempt_at",
        "webhook_events",
        ["next_attempt_at"],
        postgresql_where=sa.text(PENDING),
        sqlite_where=sa.text(PENDING),
    )
    op.create_index("ix_webhook_events_webhook_id", "webhook_events", ["webhook_id"])
    op.create_table(
        "event_callbacks",
        sa.Column("id", sa.String(length=10), nullable=False),
        sa.Column("webhook_id", sa.String(length=10), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("callback_url", sa.String(length=2048), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("response_message", sa.String(length=1024), nullable=True),
        *_record(),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name=op.f("fk_event_callbacks_webhook_id_webhooks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["webhook_events.id"],
            name=op.f("fk_event_callbacks_event_id_webhook_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_callbacks")),
    )
    op.create_index(
        "ix_event_callbacks_webhook_id_created_at",
        "event_callbacks",
        ["webhook_id", "created_at"],
    )
    op.create_index("ix_event_callbacks_event_id", "event_callbacks", ["event_id"])


def downgrade() -> None:
    op.drop_table("event_callbacks")
    op.drop_table("webhook_events")
    op.drop_table("webhooks")
