"""``ordercopy db``: the database schema."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from cli import process

db_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="The database.")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[
        str, typer.Argument(metavar="REVISION", help="The Alembic revision to reach.")
    ] = "head",
) -> None:
    """Run the Alembic migrations up to REVISION (default: head)."""
    settings = process.settings()
    # Alembic announces each of its plugins at INFO, on import: noise on every upgrade.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    from sqlalchemy.engine import make_url

    from migrations import upgrade

    upgrade(settings.resolved_database_url, revision)
    url = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    typer.echo(f"database at {revision}: {url}")
