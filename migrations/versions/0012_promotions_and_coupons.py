"""promotions and coupons; orders carry a coupon, their discount and whether they are frozen

Promotion lines name the promotion they apply and the coupon that unlocked them (whose use
the line holds once its order is placed). Copies get ``apply_promotions`` and
``ignore_invalid_coupon``. A copy's target is frozen (prices and promotion lines as
copied) until it is edited.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
KINDS = ("percentage_discount_promotions", "fixed_amount_promotions")


def _record_columns() -> list[sa.Column]:  # type: ignore[type-arg]
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
        "promotions",
        *_record_columns(),
        sa.Column(
            "kind",
            sa.Enum(*KINDS, name="kind", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("currency_code", sa.String(3), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("percentage", sa.Integer(), nullable=True),
        sa.Column("fixed_amount_cents", sa.Integer(), nullable=True),
        sa.Column("sku_codes", JSON, nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.CheckConstraint("expires_at > starts_at", name=op.f("ck_promotions_window")),
        sa.CheckConstraint(
            "(kind = 'percentage_discount_promotions' AND percentage BETWEEN 1 AND 100"
            " AND fixed_amount_cents IS NULL)"
            " OR (kind = 'fixed_amount_promotions' AND fixed_amount_cents > 0"
            " AND percentage IS NULL AND currency_code IS NOT NULL)",
            name=op.f("ck_promotions_amount_fits_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotions")),
    )
    op.create_index("ix_promotions_mode_starts_at", "promotions", ["mode", "starts_at"])
    op.create_table(
        "coupons",
        *_record_columns(),
        sa.Column("promotion_id", sa.String(10), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("usage_limit", sa.Integer(), nullable=True),
        sa.Column("usage_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "usage_count >= 0 AND (usage_limit IS NULL OR usage_count <= usage_limit)",
            name=op.f("ck_coupons_usage_within_limit"),
        ),
        sa.ForeignKeyConstraint(
            ["promotion_id"],
            ["promotions.id"],
            name=op.f("fk_coupons_promotion_id_promotions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons")),
    )
    op.create_index("ix_coupons_promotion_id", "coupons", ["promotion_id"])
    op.create_index(
        "uq_coupons_mode_lower_code", "coupons", ["mode", sa.text("lower(code)")], unique=True
    )
    with op.batch_alter_table("orders") as table:
        table.add_column(
            sa.Column("discount_amount_cents", sa.Integer(), server_default="0", nullable=False)
        )
        table.add_column(sa.Column("coupon_code", sa.String(64), nullable=True))
        table.add_column(
            sa.Column("frozen", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("line_items") as table:
        table.add_column(sa.Column("promotion_id", sa.String(10), nullable=True))
        table.add_column(sa.Column("coupon_code", sa.String(64), nullable=True))
        table.create_foreign_key(
            op.f("fk_line_items_promotion_id_promotions"),
            "promotions",
            ["promotion_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_index(
        "ix_line_items_promotion_id",
        "line_items",
        ["promotion_id"],
        postgresql_where=sa.text("promotion_id IS NOT NULL"),
        sqlite_where=sa.text("promotion_id IS NOT NULL"),
    )
    with op.batch_alter_table("order_copies") as table:
        table.add_column(
            sa.Column("apply_promotions", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        table.add_column(
            sa.Column(
                "ignore_invalid_coupon", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("order_copies") as table:
        table.drop_column("ignore_invalid_coupon")
        table.drop_column("apply_promotions")
    op.drop_index("ix_line_items_promotion_id", table_name="line_items")
    with op.batch_alter_table("line_items") as table:
        table.drop_constraint(op.f("fk_line_items_promotion_id_promotions"), type_="foreignkey")
        table.drop_column("coupon_code")
        table.drop_column("promotion_id")
    with op.batch_alter_table("orders") as table:
        table.drop_column("frozen")
        table.drop_column("coupon_code")
        table.drop_column("discount_amount_cents")
    op.drop_index("uq_coupons_mode_lower_code", table_name="coupons")
    op.drop_index("ix_coupons_promotion_id", table_name="coupons")
    op.drop_table("coupons")
    op.drop_index("ix_promotions_mode_starts_at", table_name="promotions")
    op.drop_table("promotions")
