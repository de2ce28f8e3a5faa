"""``ordercopy``: database, demo, order copies and their status from the command line.

Settings errors end the command with the one line :func:`config.settings.load_settings`
prints; a database that cannot be reached ends it with one line too, never a traceback.
The command modules import the models, SQLAlchemy, the settings and rich only inside the
commands that use them, so the command tree (``--help``, ``--version``) builds without them.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cli import output, rows
from cli.api_keys import api_keys_app
from cli.copies import copies_app
from cli.db import db_app
from cli.demo import demo_app
from cli.orders import orders_app
from cli.status import status
from cli.subscriptions import subscriptions_app

UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for a missing table


class OneLineErrors(TyperGroup):
    """The root command: a database that is unreachable or not migrated is a one-line error."""

    # ``ctx: Any``: Typer's Context class moved (click's, then a vendored copy).
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            problem = database_problem(error)
            if problem is None:
                raise
            output.fail(problem)


def database_problem(error: Exception) -> str | None:
    """One line for an unreachable or unmigrated database; None for anything else (a bug)."""
    if isinstance(error, rows.NoDatabase):
        return f"database error: {error} (run `ordercopy db upgrade` first)"
    if isinstance(error, rows.BadUrl):
        return f"database error: {error}"
    cause = _driver_error(error)
    if cause is None:
        return None
    lines = str(cause).strip().splitlines() or [type(cause).__name__]
    if getattr(cause, "sqlstate", None) == UNDEFINED_TABLE or "no such table" in lines[0]:
        return f"database error: {lines[0]} (run `ordercopy db upgrade` first)"
    # DB-API 2 names the class in every driver (sqlite3's, psycopg's).
    if any(cls.__name__ == "OperationalError" for cls in type(cause).__mro__):
        return f"database error: {lines[0]}"
    return None


def _driver_error(error: Exception) -> BaseException | None:
    """The driver's error behind ``error``: the error itself (a listing reads through the
    driver, cli/rows.py) or the one SQLAlchemy wraps; None for any other error."""
    # Only a command that imported SQLAlchemy can raise its errors: importing it here would
    # make every other error (typer.Exit included) pay for SQLAlchemy.
    if "sqlalchemy.exc" in sys.modules:
        from sqlalchemy.exc import DBAPIError

        if isinstance(error, DBAPIError):
            return error.orig
    return error if rows.is_driver_error(error) else None


app = typer.Typer(
    cls=OneLineErrors,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="ordercopy: executes order copies.",
    # A traceback's locals would print settings, URLs and passwords included.
    pretty_exceptions_show_locals=False,
)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(copies_app, name="copies")
app.add_typer(orders_app, name="orders")
app.add_typer(subscriptions_app, name="subscriptions")
app.add_typer(api_keys_app, name="api-keys")
app.command("status")(status)

#: ``-v`` and ``-vv``: the log level of a command (WARNING without either).
VERBOSITY = {0: logging.WARNING, 1: logging.INFO}


def print_version(wanted: bool) -> None:
    if wanted:
        # Imported here: importlib.metadata (and the email, zipfile and csv modules it
        # brings) is for --version alone, and every --help would load it otherwise.
        from importlib.metadata import version

        typer.echo(f"ordercopy {version('ordercopy')}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Log INFO lines (-vv: DEBUG too).")
    ] = 0,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """ordercopy: executes order copies."""
    # Only the level here: logging is configured from the settings by the command that
    # loads them (cli.process); `ordercopy copies --help` runs this callback too.
    # Progress bars and tables, not log lines, unless asked: the root level is put back
    # when the command ends (tests run many commands in one process).
    root = logging.getLogger()
    previous = root.level
    root.setLevel(VERBOSITY.get(verbose, logging.DEBUG))
    ctx.call_on_close(lambda: root.setLevel(previous))


if __name__ == "__main__":
    app()
