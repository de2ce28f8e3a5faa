from __future__ import annotations

import warnings

from alembic import context

import models
from config import get_settings
from models.db import make_engine

config = context.config
url = config.attributes.get("database_url") or get_settings().resolved_database_url


#: SQLite cannot reflect an index on an expression (``coupons``' ``lower(code)``), so a
#: comparison there (``alembic check``) leaves such indexes out, saying so in these two
#: warnings; PostgreSQL compares them. (A batch migration of such a table on SQLite would
#: lose the index too: recreate it by hand in that migration.)
EXPRESSION_INDEX_WARNINGS = (
    "Skipped unsupported reflection of expression-based index",
    "autogenerate skipping metadata-specified expression-based index",
)


def run_migrations() -> None:
    engine = make_engine(url)
    with engine.connect() as connection, warnings.catch_warnings():
        if connection.dialect.name == "sqlite":
            for message in EXPRESSION_INDEX_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
        context.configure(
            connection=connection,
            target_metadata=models.Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=url, target_metadata=models.Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations()
