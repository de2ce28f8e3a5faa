"""bundle line stock: what a bundle line took of each of its bundle's SKUs

A bundle line now holds its SKUs' stock while its order is placed, as a SKU line does. A
SKU line records what it took in ``reserved_quantity``; a bundle line takes several SKUs,
so ``line_item_stock`` records each (the line, the SKU, the quantity taken), and giving
back returns that record, whatever the bundle's list says by then. Bundle lines placed
before this revision took nothing and record nothing: they give back nothing.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "line_item_stock",
        sa.Column("line_item_id", sa.String(10), nullable=False),
        sa.Column("sku_code", sa.String(64), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_line_item_stock_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["line_item_id"],
            ["line_items.id"],
            name=op.f("fk_line_item_stock_line_item_id_line_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("line_item_id", "sku_code", name=op.f("pk_line_item_stock")),
    )


def downgrade() -> None:
    # The stock bundle lines hold goes back to the SKUs first: without its record, nothing
    # would give it back.
    op.execute(
        "UPDATE skus SET stock_quantity = stock_quantity + (SELECT SUM(s.quantity)"
        " FROM line_item_stock AS s JOIN line_items AS l ON l.id = s.line_item_id"
        " WHERE l.mode = skus.mode AND s.sku_code = skus.code)"
        " WHERE EXISTS (SELECT 1 FROM line_item_stock AS s JOIN line_items AS l"
        " ON l.id = s.line_item_id WHERE l.mode = skus.mode AND s.sku_code = skus.code)"
    )
    op.drop_table("line_item_stock")
