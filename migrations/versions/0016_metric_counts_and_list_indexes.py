"""metric_counts kept by triggers; indexes for the lists' filters at a million copies

``/metrics`` read six whole-table aggregates per scrape (156 ms at 1,000,000 copies).
``metric_counts`` holds the counts instead: on PostgreSQL, statement-level triggers on
``order_copies`` and ``order_copy_events`` write each statement's change of the counts
(copies by status, events by kind, completed copies' run times by histogram bucket and
their sum) in its own transaction; ``copying.copies.counts`` sums them, folds them and
checks them against a recount. The upgrade counts the tables once.

The lists' filters get indexes (issue 20): ``reference`` (btree for ``eq`` and
``start``; trigrams, ``pg_trgm``, for ``cont`` and ``end``), ``errors_count`` by mode and
creation, and a copy's source order by creation. ``pg_trgm`` is a trusted extension: the
database owner may create it.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

#: The run time histogram's upper bounds (copying.copies.counts.DURATION_BUCKETS, as of
#: this revision).
BOUNDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
#: A row's run time in whole microseconds (NULL unless started and completed): computed
#: once per row, compared as integers (numeric arithmetic per bucket cost 10x more).
MICROS = "(extract(epoch FROM completed_at - started_at) * 1000000)::bigint AS micros"
BUCKET = (
    "CASE "
    + " ".join(
        f"WHEN r.micros <= {round(bound * 1_000_000)} THEN '{float(bound)!r}'" for bound in BOUNDS
    )
    + " ELSE '+Inf' END"
)

#: Each row's share of the counts: (name, label, value), NULL name for none.
COPY_SHARES = f"""(VALUES ('copies', r.status::text, 1::bigint),
    (CASE WHEN r.micros IS NOT NULL THEN 'copy_durations' END, {BUCKET}, 1::bigint),
    (CASE WHEN r.micros IS NOT NULL THEN 'copy_duration_micros' END, '', r.micros))"""
EVENT_SHARES = "(VALUES ('copy_events', r.kind::text, 1::bigint))"


def _delta(rows: str, shares: str) -> str:
    """The statement that adds the shares of ``rows`` (a subquery of rows with a ``sign``)."""
    return f"""INSERT INTO metric_counts (mode, name, label, value)
        SELECT r.mode, s.name, s.label, sum(s.value * r.sign)
        FROM ({rows}) AS r CROSS JOIN LATERAL {shares} AS s(name, label, value)
        WHERE s.name IS NOT NULL
        GROUP BY r.mode, s.name, s.label
        HAVING sum(s.value * r.sign) <> 0;"""


def _function(name: str, columns: str, shares: str, names: tuple[str, ...]) -> str:
    new = f"SELECT {columns}, 1 AS sign FROM new_rows"
    old = f"SELECT {columns}, -1 AS sign FROM old_rows"
    listed = ", ".join(f"'{n}'" for n in names)
    return f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_delta(new, shares)}
    ELSIF TG_OP = 'DELETE' THEN
        {_delta(old, shares)}
    ELSIF TG_OP = 'UPDATE' THEN
        {_delta(f"{new} UNION ALL {old}", shares)}
    ELSE  -- TRUNCATE
        DELETE FROM metric_counts WHERE name IN ({listed});
    END IF;
    RETURN NULL;
END $$"""


COUNTED = (
    (
        "order_copies",
        "metric_counts_of_copies",
        f"mode, status, {MICROS}",
        COPY_SHARES,
        ("copies", "copy_durations", "copy_duration_micros"),
        ("INSERT", "UPDATE", "DELETE"),
    ),
    (
        "order_copy_events",
        "metric_counts_of_copy_events",
        "mode, kind",
        EVENT_SHARES,
        ("copy_events",),
        ("INSERT", "DELETE"),  # events are never updated
    ),
)


def _triggers() -> None:
    for table, function, columns, shares, names, operations in COUNTED:
        op.execute(_function(function, columns, shares, names))
        for operation in operations:
            referencing = {
                "INSERT": "NEW TABLE AS new_rows",
                "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
                "DELETE": "OLD TABLE AS old_rows",
            }[operation]
            op.execute(
                f"CREATE TRIGGER {function}_{operation.lower()} AFTER {operation} ON {table} "
                f"REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
        op.execute(
            f"CREATE TRIGGER {function}_truncate AFTER TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
        # The counts so far: every row as if inserted now (the table is locked meanwhile).
        op.execute(f"LOCK TABLE {table} IN SHARE MODE")
        op.execute(_delta(f"SELECT {columns}, 1 AS sign FROM {table}", shares))


def upgrade() -> None:
    op.create_table(
        "metric_counts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "mode",
            sa.Enum("test", "live", name="mode", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_counts")),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        _triggers()
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    _create_indexes(postgresql)


def _create_indexes(postgresql: bool) -> None:
    with_reference = sa.text("reference IS NOT NULL")
    op.create_index(
        "ix_order_copies_mode_reference",
        "order_copies",
        ["mode", "reference"],
        postgresql_where=with_reference,
        sqlite_where=with_reference,
    )
    op.create_index(
        "ix_order_copies_reference_trigrams",
        "order_copies",
        ["reference"],
        postgresql_using="gin",
        postgresql_ops={"reference": "gin_trgm_ops"},
        postgresql_where=with_reference,
        sqlite_where=with_reference,
    )
    op.create_index(
        "ix_order_copies_mode_errors_count_created_at",
        "order_copies",
        ["mode", "errors_count", "created_at"],
    )
    op.drop_index("ix_order_copies_source_order_id", table_name="order_copies")
    op.create_index(
        "ix_order_copies_source_order_id",
        "order_copies",
        ["source_order_id", "mode", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_order_copies_source_order_id", table_name="order_copies")
    op.create_index("ix_order_copies_source_order_id", "order_copies", ["source_order_id"])
    op.drop_index("ix_order_copies_mode_errors_count_created_at", table_name="order_copies")
    op.drop_index("ix_order_copies_reference_trigrams", table_name="order_copies")
    op.drop_index("ix_order_copies_mode_reference", table_name="order_copies")
    if op.get_bind().dialect.name == "postgresql":
        for table, function, _, _, _, operations in COUNTED:
            for operation in (*operations, "TRUNCATE"):
                op.execute(f"DROP TRIGGER {function}_{operation.lower()} ON {table}")
            op.execute(f"DROP FUNCTION {function}()")
    op.drop_table("metric_counts")
