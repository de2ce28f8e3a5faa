"""order_copies: the indexes only some row versions need become partial

A copy's row is written four times (queued, claimed, checkpoint, finished), none of
them a HOT update, and each version went into every index. An index whose queries
only ever look for one status, or for a set value, now holds only those versions:
pending copies by dispatch time (the sweeper's doorbells), leased copies by lease end
(the sweeper's rescues), set target orders (the foreign key's lookups) and completed
copies (/metrics' durations).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 07:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLE = "order_copies"
#: (old name, old columns) -> (new name, new columns, predicate)
CHANGES = [
    (
        ("ix_order_copies_status_dispatched_at", ["status", "dispatched_at"]),
        ("ix_order_copies_pending_dispatched_at", ["dispatched_at"], "status = 'pending'"),
    ),
    (
        ("ix_order_copies_status_lease_expires_at", ["status", "lease_expires_at"]),
        ("ix_order_copies_leased_lease_expires_at", ["lease_expires_at"], "status = 'in_progress'"),
    ),
    (
        ("ix_order_copies_target_order_id", ["target_order_id"]),
        ("ix_order_copies_target_order_id", ["target_order_id"], "target_order_id IS NOT NULL"),
    ),
    (
        ("ix_order_copies_mode_completed_at", ["mode", "completed_at", "started_at"]),
        (
            "ix_order_copies_mode_completed_at",
            ["mode", "completed_at", "started_at"],
            "completed_at IS NOT NULL",
        ),
    ),
]


def upgrade() -> None:
    for (old, _), (new, columns, predicate) in CHANGES:
        op.drop_index(old, table_name=TABLE)
        where = sa.text(predicate)
        op.create_index(new, TABLE, columns, postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for (old, old_columns), (new, _, _) in reversed(CHANGES):
        op.drop_index(new, table_name=TABLE)
        op.create_index(old, TABLE, old_columns)
