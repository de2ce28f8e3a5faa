"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 21:15:07.640914
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Order numbers; SQLite (one writer) numbers with max + 1 instead.
        op.execute(sa.schema.CreateSequence(sa.Sequence("orders_number_seq", start=10000)))
    op.create_table('addresses',
    sa.Column('id', sa.String(length=10), nullable=False),
    sa.Column('first_name', sa.String(length=255), nullable=True),
    sa.Column('last_name', sa.String(length=255), nullable=True),
    sa.Column('company', sa.String(length=255), nullable=True),
    sa.Column('line_1', sa.String(length=255), nullable=False),
    sa.Column('line_2', sa.String(length=255), nullable=True),
    sa.Column('city', sa.String(length=255), nullable=False),
    sa.Column('zip_code', sa.String(length=32), nullable=True),
    sa.Column('state_code', sa.String(length=32), nullable=True),
    sa.Column('country_code', sa.String(length=2), nullable=False),
    sa.Column('phone', sa.String(length=64), nullable=True),
    sa.Column('email', sa.String(length=255), nullable=True),
    sa.Column('mode', sa.Enum('test', 'live', name='mode', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_addresses'))
    )
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=10), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('token_hash', sa.String(length=128), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('mode', sa.Enum('test', 'live', name='mode', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_keys_token_hash'))
    )
    op.create_table('customers',
    sa.Column('id', sa.String(length=10), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=False),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('mode', sa.Enum('test', 'live', name='mode', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers'))
    )
    op.create_index('ix_customers_mode_email', 'customers', ['mode', 'email'], unique=False)
    op.create_table('skus',
    sa.Column('id', sa.String(length=10), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('unit_amount_cents', sa.Integer(), nullable=False),
    sa.Column('currency_code', sa.String(length=3), nullable=False),
    sa.Column('stock_quantity', sa.Integer(), nullable=False),
    sa.Column('do_not_ship', sa.Boolean(), nullable=False),
    sa.Column('discontinued', sa.Boolean(), nullable=False),
    sa.Column('mode', sa.Enum('test', 'live', name='mode', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint('stock_quantity >= 0', name=op.f('ck_skus_stock_not_negative')),
    sa.CheckConstraint('unit_amount_cents >= 0', name=op.f('ck_skus_unit_amount_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_skus')),
    sa.UniqueConstraint('mode', 'code', name=op.f('uq_skus_mode_code'))
    )
    op.create_table('test_gateway_charges',
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('token', sa.String(length=255), nullable=False),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('currency_code', sa.String(length=3), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('reference', sa.String(length=64), nullable=True),
    sa.Column('message', sa.String(length=255), nullable=True),
    sa.Column('voided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('idempotency_key', name=op.f('pk_test_gateway_charges'))
    )
    op.create_table('customer_payment_sources',
    sa.Column('id', sa.String(length=10), nullable=False),
    sa.Column('customer_id', sa.String(length=10), nullable=False),
    sa.Column('payment_method', sa.String(length=32), nullable=False),
    sa.Column('gateway', sa.String(length=32), nullable=False),
    sa.Column('payment_source_token', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('mode', sa.Enum('test', 'live', name='mode', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_payment_sources_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_payment_sources'))
    )
    op.create_index(op.f('ix_customer_payment_sources_customer_id'), 'customer_payment_sources', ['customer_id'], unique=False)
    op.create_table('orders',
    sa.Column('id', sa.String(length=10), nullable=False),
    sa.Column('number', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.Enum('draft', 'pending', 'placed', 'approved', 'cancelled', name='status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('payment_status', sa.Enum('unpaid', 'authorized', 'paid', 'voided', 'free', name='payment_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('fulfillment_status', sa.Enum('unfulfilled', 'in_progress', 'fulfilled', 'not_required', name='fulfillment_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('customer_id', sa.String(length=10), nullable=True),
    sa.Column('customer_email', sa.String(length=255), nullable=True),
    sa.Column('currency_code', sa.String(length=3), nullable=False),
    sa.Column('billing_address_id', sa.String(length=10), nullable=True),
    sa.Column('shipping_address_id', sa.String(length=10), nullable=True),
    sa.Column('customer_payment_source_id', sa.String(length=10), nullable=True),
    sa.Column('payment_method', sa.String(length=32), nullable=True),
    sa.Column('payment_gateway', sa.String(length=32), nullable=True),
    sa.Column('payment_source_token', sa.String(length=255), nullable=True),
    sa.Column('subtotal_amount_cents', sa.Integer(), nullable=False),
    sa.Column('shipping_amount_cents', sa.Integer(), nullable=False),
    sa.Column('adjustment_amount_cents', sa.Integer(), nullable=False),
    sa.Column('total_amount_cents', sa.Integer(), nullable=False),
    sa.Column('placed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reference', sa.String(length=255), nullable=True),
    sa.Column('reference_origin', sa.String(length=255), nullable=True),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('mode', sa.Enum('test', 'live', name='mode', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['billing_address_id'], ['addresses.id'], name=op.f('fk_orders_billing_address_id_addresses'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_orders_customer_id_customers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['shipping_address_id'], ['addresses.id'], name=op.f('fk_orders_shipping_address_id_addresses'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('number', name=op.f('uq_orders_number'))
    )
    op.create_index('ix_orders_customer_id', 'orders', ['customer_id'], unique=False)
    op.create_index('ix_orders_mode_created_at', 'orders', ['mode', 'created_at'], unique=False)
    op.create_table('line_items',
    sa.Column('id', sa.String(length=10), nullable=False),
    sa.Column('order_id', sa.String(length=10), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('item_type', sa.Enum('skus', 'bundles', 'gift_cards', 'adjustments', 'shipments', 'payment_methods', 'promotions', name='item_type', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('sku_code', sa.String(length=64), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_amount_cents', sa.Integer(), nullable=False),
    sa.Column('total_amount_cents', sa.Integer(), nullable=False),
    sa.Column('options', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('mode', sa.Enum('test', 'live', name='mode', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_line_items_quantity_positive')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_line_items_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_line_items'))
    )
    op.create_index('ix_line_items_order_id_position', 'line_items', ['order_id', 'position'], unique=False)
    op.create_table('order_subscriptions',
    sa.Column('id', sa.String(length=10), nullable=False),
    sa.Column('source_order_id', sa.String(length=10), nullable=False),
    sa.Column('customer_id', sa.String(length=10), nullable=True),
    sa.Column('customer_payment_source_id', sa.String(length=10), nullable=True),
    sa.Column('frequency', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Enum('draft', 'inactive', 'active', 'running', 'cancelled', name='status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('occurrencies', sa.Integer(), nullable=False),
    sa.Column('errors_count', sa.Integer(), nullable=False),
    sa.Column('succeeded_on_last_run', sa.Boolean(), nullable=True),
    sa.Column('place_target_order', sa.Boolean(), nullable=False),
    sa.Column('failure_policy', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('reference', sa.String(length=255), nullable=True),
    sa.Column('reference_origin', sa.String(length=255), nullable=True),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('mode', sa.Enum('test', 'live', name='mode', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_order_subscriptions_customer_id_customers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['customer_payment_source_id'], ['customer_payment_sources.id'], name=op.f('fk_order_subscriptions_customer_payment_source_id_customer_payment_sources'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['source_order_id'], ['orders.id'], name=op.f('fk_order_subscriptions_source_order_id_orders'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_subscriptions'))
    )
    op.create_index('ix_order_subscriptions_status_next_run_at', 'order_subscriptions', ['status', 'next_run_at'], unique=False)
    op.create_table('payment_authorizations',
    sa.Column('id', sa.String(length=10), nullable=False),
    sa.Column('order_id', sa.String(length=10), nullable=False),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('currency_code', sa.String(length=3), nullable=False),
    sa.Column('gateway', sa.String(length=32), nullable=False),
    sa.Column('gateway_reference', sa.String(length=255), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('status', sa.Enum('authorized', 'declined', 'voided', 'captured', name='status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('message', sa.String(length=1024), nullable=True),
    sa.Column('voided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('mode', sa.Enum('test', 'live', name='mode', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_payment_authorizations_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_authorizations')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_payment_authorizations_idempotency_key'))
    )
    op.create_index('ix_payment_authorizations_order_id', 'payment_authorizations', ['order_id'], unique=False)
    op.create_table('order_copies',
    sa.Column('id', sa.String(length=10), nullable=False),
    sa.Column('status', sa.Enum('pending', 'in_progress', 'completed', 'failed', name='status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('source_order_id', sa.String(length=10), nullable=False),
    sa.Column('target_order_id', sa.String(length=10), nullable=True),
    sa.Column('order_subscription_id', sa.String(length=10), nullable=True),
    sa.Column('customer_payment_source_id', sa.String(length=10), nullable=True),
    sa.Column('place_target_order', sa.Boolean(), nullable=False),
    sa.Column('cancel_source_order', sa.Boolean(), nullable=False),
    sa.Column('reuse_wallet', sa.Boolean(), nullable=False),
    sa.Column('skip_errors', sa.Boolean(), nullable=False),
    sa.Column('errors_log', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('errors_count', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reference', sa.String(length=255), nullable=True),
    sa.Column('reference_origin', sa.String(length=255), nullable=True),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('claims', sa.Integer(), nullable=False),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('step', sa.Enum('target_built', 'stock_reserved', 'target_placed', 'source_cancelled', name='step', native_enum=False, create_constraint=True), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('period_key', sa.String(length=64), nullable=True),
    sa.Column('mode', sa.Enum('test', 'live', name='mode', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['order_subscription_id'], ['order_subscriptions.id'], name=op.f('fk_order_copies_order_subscription_id_order_subscriptions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['source_order_id'], ['orders.id'], name=op.f('fk_order_copies_source_order_id_orders'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['target_order_id'], ['orders.id'], name=op.f('fk_order_copies_target_order_id_orders'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_copies')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_order_copies_idempotency_key')),
    sa.UniqueConstraint('order_subscription_id', 'period_key', name=op.f('uq_order_copies_order_subscription_id_period_key'))
    )
    op.create_index('ix_order_copies_mode_created_at', 'order_copies', ['mode', 'created_at'], unique=False)
    op.create_index('ix_order_copies_source_order_id', 'order_copies', ['source_order_id'], unique=False)
    op.create_index('ix_order_copies_status_dispatched_at', 'order_copies', ['status', 'dispatched_at'], unique=False)
    op.create_index('ix_order_copies_status_lease_expires_at', 'order_copies', ['status', 'lease_expires_at'], unique=False)
    op.create_index('ix_order_copies_target_order_id', 'order_copies', ['target_order_id'], unique=False)
    op.create_table('order_copy_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('order_copy_id', sa.String(length=10), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('mode', sa.Enum('test', 'live', name='mode', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['order_copy_id'], ['order_copies.id'], name=op.f('fk_order_copy_events_order_copy_id_order_copies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_copy_events'))
    )
    op.create_index('ix_order_copy_events_order_copy_id_id', 'order_copy_events', ['order_copy_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_order_copy_events_order_copy_id_id', table_name='order_copy_events')
    op.drop_table('order_copy_events')
    op.drop_index('ix_order_copies_target_order_id', table_name='order_copies')
    op.drop_index('ix_order_copies_status_lease_expires_at', table_name='order_copies')
    op.drop_index('ix_order_copies_status_dispatched_at', table_name='order_copies')
    op.drop_index('ix_order_copies_source_order_id', table_name='order_copies')
    op.drop_index('ix_order_copies_mode_created_at', table_name='order_copies')
    op.drop_table('order_copies')
    op.drop_index('ix_payment_authorizations_order_id', table_name='payment_authorizations')
    op.drop_table('payment_authorizations')
    op.drop_index('ix_order_subscriptions_status_next_run_at', table_name='order_subscriptions')
    op.drop_table('order_subscriptions')
    op.drop_index('ix_line_items_order_id_position', table_name='line_items')
    op.drop_table('line_items')
    op.drop_index('ix_orders_mode_created_at', table_name='orders')
    op.drop_index('ix_orders_customer_id', table_name='orders')
    op.drop_table('orders')
    op.drop_index(op.f('ix_customer_payment_sources_customer_id'), table_name='customer_payment_sources')
    op.drop_table('customer_payment_sources')
    op.drop_table('test_gateway_charges')
    op.drop_table('skus')
    op.drop_index('ix_customers_mode_email', table_name='customers')
    op.drop_table('customers')
    op.drop_table('api_keys')
    op.drop_table('addresses')
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.schema.DropSequence(sa.Sequence("orders_number_seq")))
