"""order subscription items, and the frequency a line item is subscribed at

A subscription with items renews only them (Commerce Layer's automatic mode); one
without renews its whole source order, as every subscription did before (manual mode):
existing subscriptions get no items and keep renewing as they did.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 12:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TABLE = "order_subscription_items"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.String(10), nullable=False),
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
        sa.Column("order_subscription_id", sa.String(10), nullable=False),
        sa.Column("sku_code", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_amount_cents", sa.Integer(), nullable=False),
        sa.Column("source_line_item_id", sa.String(10), nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f(f"ck_{TABLE}_quantity_positive")),
        sa.CheckConstraint(
            "unit_amount_cents >= 0", name=op.f(f"ck_{TABLE}_unit_amount_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["order_subscription_id"],
            ["order_subscriptions.id"],
            name=op.f(f"fk_{TABLE}_order_subscription_id_order_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_line_item_id"],
            ["line_items.id"],
            name=op.f(f"fk_{TABLE}_source_line_item_id_line_items"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TABLE}")),
    )
    op.create_index(
        f"ix_{TABLE}_order_subscription_id_created_at",
        TABLE,
        ["order_subscription_id", "created_at"],
    )
    op.create_index(f"ix_{TABLE}_source_line_item_id", TABLE, ["source_line_item_id"])
    with op.batch_alter_table("line_items") as table:
        table.add_column(sa.Column("frequency", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("line_items") as table:
        table.drop_column("frequency")
    op.drop_index(f"ix_{TABLE}_source_line_item_id", table_name=TABLE)
    op.drop_index(f"ix_{TABLE}_order_subscription_id_created_at", table_name=TABLE)
    op.drop_table(TABLE)
