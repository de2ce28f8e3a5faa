"""``ordercopy``: database, demo, order copies and their status from the command line.

Settings errors end the command with the one line :func:`config.settings.load_settings`
prints; a database that cannot be reached ends it with one line too, never a traceback.
"""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy.exc import DBAPIError, OperationalError
from typer.core import TyperGroup

from cli import output
from cli.api_keys import api_keys_app
from cli.copies import copies_app
from cli.db import db_app
from cli.demo import demo_app
from cli.status import status
from config.logging import configure_logging
from config.settings import get_settings

UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for a missing table


class OneLineErrors(TyperGroup):
    """The root command: a database that is unreachable or not migrated is a one-line error."""

    # ``ctx: Any``: Typer's Context class moved (click's, then a vendored copy).
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except DBAPIError as error:
            problem = database_problem(error)
            if problem is None:
                raise
            output.fail(problem)


def database_problem(error: DBAPIError) -> str | None:
    """One line for an unreachable or unmigrated database; None for anything else (a bug)."""
    lines = str(error.orig).strip().splitlines() or [type(error.orig).__name__]
    if getattr(error.orig, "sqlstate", None) == UNDEFINED_TABLE or "no such table" in lines[0]:
        return f"database error: {lines[0]} (run `ordercopy db upgrade` first)"
    if isinstance(error, OperationalError):
        return f"database error: {lines[0]}"
    return None


app = typer.Typer(
    cls=OneLineErrors,
    no_args_is_help=True,
    help="ordercopy: executes order copies.",
    # A traceback's locals would print settings, URLs and passwords included.
    pretty_exceptions_show_locals=False,
)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(copies_app, name="copies")
app.add_typer(api_keys_app, name="api-keys")
app.command("status")(status)


@app.callback()
def main() -> None:
    """ordercopy: executes order copies."""
    configure_logging(get_settings())


if __name__ == "__main__":
    app()
