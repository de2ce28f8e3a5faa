"""the ops dashboard: bulk jobs, worker heartbeats, failed copies by failure time

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
FAILED_AT = sa.text("failed_at IS NOT NULL")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(
        *values, name=name, native_enum=False, create_constraint=True, length=max(map(len, values))
    )


def upgrade() -> None:
    op.create_table(
        "bulk_jobs",
        sa.Column("id", sa.String(10), nullable=False),
        sa.Column("mode", _enum("mode", "test", "live"), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("action", _enum("action", "retry", "abort"), nullable=False),
        sa.Column("status", _enum("status", "running", "finished"), nullable=False),
        sa.Column("selection", sa.String(1000), nullable=False),
        sa.Column("started_by", sa.String(255), nullable=False),
        sa.Column("copy_ids", JSON, nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_jobs")),
    )
    op.create_index("ix_bulk_jobs_mode_created_at", "bulk_jobs", ["mode", "created_at"])
    op.create_table(
        "worker_heartbeats",
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("hostname", name=op.f("pk_worker_heartbeats")),
    )
    # Failed copies by failure time (the dashboard's charts): only failed copies' rows.
    op.create_index(
        "ix_order_copies_mode_failed_at",
        "order_copies",
        ["mode", "failed_at"],
        postgresql_where=FAILED_AT,
        sqlite_where=FAILED_AT,
    )


def downgrade() -> None:
    op.drop_index("ix_order_copies_mode_failed_at", table_name="order_copies")
    op.drop_table("worker_heartbeats")
    op.drop_index("ix_bulk_jobs_mode_created_at", table_name="bulk_jobs")
    op.drop_table("bulk_jobs")
