"""``ordercopy``: database, demo and order copies from the command line."""

from __future__ import annotations

import typer

from config.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="ordercopy: executes order copies.")
db_app = typer.Typer(no_args_is_help=True, help="The database.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Run the Alembic migrations up to REVISION (default: head)."""
    from migrations import upgrade

    settings = get_settings()
    upgrade(settings.resolved_database_url, revision)
    typer.echo(f"database at {revision}: {settings.resolved_database_url}")


if __name__ == "__main__":
    app()
