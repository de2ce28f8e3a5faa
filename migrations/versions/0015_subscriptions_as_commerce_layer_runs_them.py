"""order subscriptions as Commerce Layer runs them: number, customer_email,
activate_by_source_order, pending, renewal reminders, next_attempt_at, and a history

Existing subscriptions keep their behaviour: a failure policy stored empty (which meant
the old default, three retries then deactivate) is spelled out as that schedule, so only
subscriptions made from now on get Commerce Layer's default (no retries, stay active).
Existing rows were made as drafts: their ``activate_by_source_order`` is false. Each
gets a number (in creation order) and its source order's customer email.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TABLE = "order_subscriptions"
STATUSES_BEFORE = "status IN ('draft', 'inactive', 'active', 'running', 'cancelled')"
STATUSES_AFTER = "status IN ('draft', 'pending', 'inactive', 'active', 'running', 'cancelled')"
#: The failure policy that an empty stored one meant before this revision.
OLD_DEFAULT_POLICY = (
    '{"retry_after_seconds": [86400, 259200, 604800], "final_action": "deactivate"}'
)
SEQUENCE = "order_subscriptions_number_seq"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(sa.schema.CreateSequence(sa.Sequence(SEQUENCE, start=1000)))
    with op.batch_alter_table(TABLE) as table:
        table.add_column(sa.Column("number", sa.BigInteger(), nullable=True))
        table.add_column(sa.Column("customer_email", sa.String(255), nullable=True))
        table.add_column(
            sa.Column(
                "activate_by_source_order",
                sa.Boolean(),
                server_default=sa.false(),
                nullable=False,
            )
        )
        table.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(
            sa.Column(
                "renewal_alert_period", sa.Integer(), server_default=sa.text("1"), nullable=False
            )
        )
        table.add_column(sa.Column("renewal_alert_at", sa.DateTime(timezone=True), nullable=True))
    # Numbers in creation order; customer emails from the source orders.
    op.execute(
        f"""UPDATE {TABLE} SET number = numbered.number
        FROM (SELECT id, 999 + row_number() OVER (ORDER BY created_at, id) AS number
              FROM {TABLE}) AS numbered
        WHERE {TABLE}.id = numbered.id"""
    )
    op.execute(
        f"""UPDATE {TABLE} SET customer_email =
        (SELECT o.customer_email FROM orders AS o WHERE o.id = {TABLE}.source_order_id)"""
    )
    if postgres:
        op.execute(
            f"SELECT setval('{SEQUENCE}', (SELECT coalesce(max(number), 999) + 1 FROM {TABLE}),"
            " false)"
        )
        op.execute(
            f"UPDATE {TABLE} SET failure_policy = '{OLD_DEFAULT_POLICY}'::jsonb"
            " WHERE failure_policy = '{}'::jsonb OR failure_policy = 'null'::jsonb"
        )
    else:
        op.execute(
            f"UPDATE {TABLE} SET failure_policy = '{OLD_DEFAULT_POLICY}'"
            " WHERE failure_policy IN ('{}', 'null') OR failure_policy IS NULL"
        )
    with op.batch_alter_table(TABLE) as table:
        table.alter_column("number", existing_type=sa.BigInteger(), nullable=False)
        table.alter_column(
            "activate_by_source_order",
            existing_type=sa.Boolean(),
            server_default=sa.true(),
            existing_nullable=False,
        )
        table.create_unique_constraint(op.f("uq_order_subscriptions_number"), ["number"])
        table.drop_constraint(op.f("ck_order_subscriptions_status"), type_="check")
        table.create_check_constraint(op.f("ck_order_subscriptions_status"), STATUSES_AFTER)
    op.create_index(
        op.f("ix_order_subscriptions_renewal_alert_at"),
        TABLE,
        ["renewal_alert_at"],
        unique=False,
        postgresql_where=sa.text("renewal_alert_at IS NOT NULL"),
        sqlite_where=sa.text("renewal_alert_at IS NOT NULL"),
    )
    op.create_table(
        "order_subscription_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
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
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["order_subscription_id"],
            [f"{TABLE}.id"],
            name=op.f("fk_order_subscription_events_order_subscription_id_order_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_subscription_events")),
    )
    op.create_index(
        "ix_order_subscription_events_order_subscription_id_id",
        "order_subscription_events",
        ["order_subscription_id", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_order_subscription_events_order_subscription_id_id",
        table_name="order_subscription_events",
    )
    op.drop_table("order_subscription_events")
    op.drop_index(op.f("ix_order_subscriptions_renewal_alert_at"), table_name=TABLE)
    # Pending subscriptions had no usable card: inactive is the nearest status before.
    op.execute(f"UPDATE {TABLE} SET status = 'inactive' WHERE status = 'pending'")
    with op.batch_alter_table(TABLE) as table:
        table.drop_constraint(op.f("ck_order_subscriptions_status"), type_="check")
        table.create_check_constraint(op.f("ck_order_subscriptions_status"), STATUSES_BEFORE)
        table.drop_constraint(op.f("uq_order_subscriptions_number"), type_="unique")
        for column in (
            "renewal_alert_at",
            "renewal_alert_period",
            "next_attempt_at",
            "activate_by_source_order",
            "customer_email",
            "number",
        ):
            table.drop_column(column)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.schema.DropSequence(sa.Sequence(SEQUENCE)))
