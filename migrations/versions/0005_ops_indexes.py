"""ops indexes: what /metrics counts, read from indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 00:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_order_copies_mode_status_created_at", "order_copies", ["mode", "status", "created_at"]),
    ("ix_order_copies_mode_completed_at", "order_copies", ["mode", "completed_at", "started_at"]),
    ("ix_order_copy_events_kind_mode", "order_copy_events", ["kind", "mode"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
