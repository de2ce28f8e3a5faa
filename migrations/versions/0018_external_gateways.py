"""external_gateways: a merchant's endpoints for each payment transaction type

Commerce Layer's external payment gateways: one URL per transaction type, a shared secret
that signs each request, the circuit breaker webhooks have (the same columns, the same
``circuit_state`` check), and each request's time limit. Wallet entries, orders and
payments name one by its id where they name the built-in ``test`` gateway today.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "external_gateways",
        sa.Column("id", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("authorize_url", sa.String(length=2048), nullable=True),
        sa.Column("capture_url", sa.String(length=2048), nullable=True),
        sa.Column("void_url", sa.String(length=2048), nullable=True),
        sa.Column("refund_url", sa.String(length=2048), nullable=True),
        sa.Column("token_url", sa.String(length=2048), nullable=True),
        sa.Column("shared_secret", sa.String(length=128), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=255), nullable=True),
        sa.Column("reference_origin", sa.String(length=255), nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column(
            "circuit_state",
            sa.Enum(
                "closed", "open", name="circuit_state", native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column("circuit_failure_count", sa.Integer(), nullable=False),
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
        sa.CheckConstraint(
            "timeout_seconds BETWEEN 1 AND 60",
            name=op.f("ck_external_gateways_timeout_seconds_in_bounds"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_gateways")),
    )


def downgrade() -> None:
    op.drop_table("external_gateways")
