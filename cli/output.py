"""What the CLI prints: one console per command, tables, one-line errors, readable values.

Tables go to stdout; errors go to stderr as one line starting ``ordercopy:``,
like the settings errors of :func:`config.settings.load_settings`.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

#: Width used when stdout is not a terminal, so ids and dates are never folded.
PIPE_WIDTH = 200


def console(stream: TextIO | None = None) -> Console:
    """A console on ``stream`` (stdout by default); wide when piped, so output stays greppable."""
    from rich.console import Console

    stream = stream or sys.stdout
    return Console(file=stream, width=None if stream.isatty() else PIPE_WIDTH, highlight=False)


def table(*headers: str, **options: Any) -> Table:
    """A rich ``Table`` (rich is imported by the first command that prints one)."""
    from rich.table import Table

    return Table(*headers, **options)


def error_line(message: str) -> None:
    """Print ``ordercopy: message`` on stderr, on one line."""
    print(f"ordercopy: {' '.join(message.split())}", file=sys.stderr)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error and end the command with ``code``."""
    error_line(message)
    raise typer.Exit(code)


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def errors_text(errors_log: dict[str, Any]) -> str:
    """``key: message`` per line, or ``-`` when there are none."""
    lines = [f"{key}: {message}" for key, messages in errors_log.items() for message in messages]
    return "\n".join(lines) or "-"
