"""webhook events: the payload of a destroyed resource, and the hold of an event taken

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 09:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("webhook_events") as table:
        # A ``*.destroy`` event's document, rendered before the row went.
        table.add_column(sa.Column("payload", JSON, nullable=True))
        # Until when a deliverer holds the event (None: nobody does): what the
        # per-webhook cap counts across deliverers.
        table.add_column(sa.Column("taken_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_webhook_events_webhook_id_taken_until",
        "webhook_events",
        ["webhook_id", "taken_until"],
        postgresql_where=sa.text("taken_until IS NOT NULL"),
        sqlite_where=sa.text("taken_until IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_events_webhook_id_taken_until", table_name="webhook_events")
    with op.batch_alter_table("webhook_events") as table:
        table.drop_column("taken_until")
        table.drop_column("payload")
