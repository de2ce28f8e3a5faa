"""aborted copies: a status for pending copies that will never run

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 21:50:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BEFORE = "status IN ('pending', 'in_progress', 'completed', 'failed')"
AFTER = "status IN ('pending', 'in_progress', 'completed', 'failed', 'aborted')"


def _check(condition: str) -> None:
    with op.batch_alter_table("order_copies") as table:
        table.drop_constraint(op.f("ck_order_copies_status"), type_="check")
        table.create_check_constraint(op.f("ck_order_copies_status"), condition)


def upgrade() -> None:
    _check(AFTER)


def downgrade() -> None:
    op.execute("UPDATE order_copies SET status = 'failed' WHERE status = 'aborted'")
    _check(BEFORE)
