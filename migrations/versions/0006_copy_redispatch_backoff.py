"""copy re-dispatch backoff: how many times the sweeper rang a pending copy again

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 01:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "order_copies", sa.Column("dispatches", sa.Integer(), server_default="0", nullable=False)
    )


def downgrade() -> None:
    with op.batch_alter_table("order_copies") as batch:
        batch.drop_column("dispatches")
