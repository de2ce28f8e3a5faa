"""renewals: catch_up, copy retries

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 21:38:52.049697
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('order_copies', sa.Column('retries', sa.Integer(), server_default='0', nullable=False))
    op.add_column('order_subscriptions', sa.Column('catch_up', sa.Boolean(), server_default=sa.text('false'), nullable=False))


def downgrade() -> None:
    op.drop_column('order_subscriptions', 'catch_up')
    op.drop_column('order_copies', 'retries')
