"""bundles and adjustments: what a subscription item may name besides a SKU

Commerce Layer's ``order_subscription_items`` name a SKU, a bundle or an adjustment. The
catalog gets ``bundles`` (SKUs sold together at one price) and ``adjustments`` (an amount
added or taken off); an item gets ``item_type`` (existing items are SKUs), ``bundle_code``
and ``adjustment_id`` (exactly one of the three is set), and the ids of its SKU or bundle
for the relationships the API shows (existing items find theirs by code). A line item
gets ``bundle_code``.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ITEMS = "order_subscription_items"
ITEM_TYPES = (
    "skus",
    "bundles",
    "gift_cards",
    "adjustments",
    "shipments",
    "payment_methods",
    "promotions",
)
NAMES_ONE_ITEM = (
    "(item_type = 'skus' AND sku_code IS NOT NULL AND bundle_code IS NULL"
    " AND adjustment_id IS NULL)"
    " OR (item_type = 'bundles' AND bundle_code IS NOT NULL AND sku_code IS NULL"
    " AND adjustment_id IS NULL)"
    " OR (item_type = 'adjustments' AND adjustment_id IS NOT NULL AND sku_code IS NULL"
    " AND bundle_code IS NULL)"
)


def _record_columns() -> list[sa.Column[object]]:
    return [
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
    ]


def upgrade() -> None:
    op.create_table(
        "bundles",
        *_record_columns(),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("currency_code", sa.String(3), nullable=False),
        sa.Column("price_amount_cents", sa.Integer(), nullable=False),
        sa.Column("compare_at_amount_cents", sa.Integer(), nullable=True),
        sa.Column("sku_list_items", JSON, nullable=False),
        sa.Column("discontinued", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "price_amount_cents >= 0", name=op.f("ck_bundles_price_amount_not_negative")
        ),
        sa.CheckConstraint(
            "compare_at_amount_cents >= 0",
            name=op.f("ck_bundles_compare_at_amount_not_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bundles")),
        sa.UniqueConstraint("mode", "code", name=op.f("uq_bundles_mode_code")),
    )
    op.create_table(
        "adjustments",
        *_record_columns(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("currency_code", sa.String(3), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("distribute_discount", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adjustments")),
    )
    with op.batch_alter_table("line_items") as table:
        table.add_column(sa.Column("bundle_code", sa.String(64), nullable=True))
    with op.batch_alter_table(ITEMS) as table:
        table.add_column(
            sa.Column("item_type", sa.String(15), nullable=False, server_default="skus")
        )
        table.create_check_constraint(
            op.f(f"ck_{ITEMS}_item_type"),
            "item_type IN (" + ", ".join(f"'{value}'" for value in ITEM_TYPES) + ")",
        )
        table.add_column(sa.Column("bundle_code", sa.String(64), nullable=True))
        table.add_column(sa.Column("sku_id", sa.String(10), nullable=True))
        table.add_column(sa.Column("bundle_id", sa.String(10), nullable=True))
        table.add_column(sa.Column("adjustment_id", sa.String(10), nullable=True))
        table.alter_column("sku_code", existing_type=sa.String(64), nullable=True)
        table.drop_constraint(op.f(f"ck_{ITEMS}_unit_amount_not_negative"), type_="check")
        table.create_check_constraint(
            op.f(f"ck_{ITEMS}_unit_amount_not_negative"),
            "unit_amount_cents >= 0 OR item_type = 'adjustments'",
        )
        table.create_check_constraint(op.f(f"ck_{ITEMS}_names_one_item"), NAMES_ONE_ITEM)
        table.create_foreign_key(
            op.f(f"fk_{ITEMS}_sku_id_skus"), "skus", ["sku_id"], ["id"], ondelete="SET NULL"
        )
        table.create_foreign_key(
            op.f(f"fk_{ITEMS}_bundle_id_bundles"),
            "bundles",
            ["bundle_id"],
            ["id"],
            ondelete="SET NULL",
        )
        table.create_foreign_key(
            op.f(f"fk_{ITEMS}_adjustment_id_adjustments"),
            "adjustments",
            ["adjustment_id"],
            ["id"],
            ondelete="RESTRICT",
        )
    with op.batch_alter_table(ITEMS) as table:
        table.alter_column("item_type", existing_type=sa.String(15), server_default=None)
    op.create_index(f"ix_{ITEMS}_sku_id", ITEMS, ["sku_id"])
    op.create_index(f"ix_{ITEMS}_bundle_id", ITEMS, ["bundle_id"])
    op.create_index(f"ix_{ITEMS}_adjustment_id", ITEMS, ["adjustment_id"])
    op.execute(
        f"UPDATE {ITEMS} SET sku_id = (SELECT skus.id FROM skus WHERE skus.mode = {ITEMS}.mode"
        f" AND skus.code = {ITEMS}.sku_code)"
    )


def downgrade() -> None:
    # Items of bundles and adjustments cannot be SKU items: they go.
    op.execute(f"DELETE FROM {ITEMS} WHERE item_type <> 'skus'")
    op.drop_index(f"ix_{ITEMS}_adjustment_id", table_name=ITEMS)
    op.drop_index(f"ix_{ITEMS}_bundle_id", table_name=ITEMS)
    op.drop_index(f"ix_{ITEMS}_sku_id", table_name=ITEMS)
    with op.batch_alter_table(ITEMS) as table:
        table.drop_constraint(op.f(f"fk_{ITEMS}_adjustment_id_adjustments"), type_="foreignkey")
        table.drop_constraint(op.f(f"fk_{ITEMS}_bundle_id_bundles"), type_="foreignkey")
        table.drop_constraint(op.f(f"fk_{ITEMS}_sku_id_skus"), type_="foreignkey")
        table.drop_constraint(op.f(f"ck_{ITEMS}_names_one_item"), type_="check")
        table.drop_constraint(op.f(f"ck_{ITEMS}_unit_amount_not_negative"), type_="check")
        table.create_check_constraint(
            op.f(f"ck_{ITEMS}_unit_amount_not_negative"), "unit_amount_cents >= 0"
        )
        table.drop_constraint(op.f(f"ck_{ITEMS}_item_type"), type_="check")
        table.alter_column("sku_code", existing_type=sa.String(64), nullable=False)
        table.drop_column("adjustment_id")
        table.drop_column("bundle_id")
        table.drop_column("sku_id")
        table.drop_column("bundle_code")
        table.drop_column("item_type")
    with op.batch_alter_table("line_items") as table:
        table.drop_column("bundle_code")
    op.drop_table("adjustments")
    op.drop_table("bundles")
