"""pending copies not waiting for a time, oldest announced first: the copies a claim takes along

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 04:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WHERE = sa.text("status = 'pending' AND next_attempt_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_order_copies_ready_dispatched_at",
        "order_copies",
        ["dispatched_at"],
        postgresql_where=WHERE,
        sqlite_where=WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_order_copies_ready_dispatched_at", table_name="order_copies")
