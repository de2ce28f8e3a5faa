"""``ordercopy api-keys``: create, list and revoke the API's keys."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import output, process, records
from cli.choices import ModeName

api_keys_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="API keys (only their hashes are stored)."
)


@api_keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who or what the key is for.")],
    mode: Annotated[
        ModeName, typer.Option(help="The records the key sees: test or live.")
    ] = "test",
) -> None:
    """Create a key; the key itself is printed once, alone on the last line."""
    # Here, not at the top: api.auth imports FastAPI, which every other command can do without.
    from api.auth import issue_key
    from models import Mode

    with process.sessions().begin() as session:
        key, token = issue_key(session, name=name, mode=Mode(mode))
    typer.echo(f"created {mode} API key {key.id} ({name}); the key, shown only once:", err=True)
    typer.echo(token)


@api_keys_app.command("list")
def list_keys(as_json: records.JsonOption = False) -> None:
    """Every key: id, name, mode, last use, revoked (never the key itself)."""
    from sqlalchemy import select

    from models import ApiKey

    with process.sessions().begin() as session:
        keys = session.scalars(select(ApiKey).order_by(ApiKey.created_at)).all()
    if as_json:
        documents = records.rows_json(keys)
        for document in documents:
            document.pop("token_hash", None)
        records.print_json(documents)
        return
    table = output.table("id", "name", "mode", "created", "last used", "revoked")
    for key in keys:
        table.add_row(
            key.id,
            key.name,
            key.mode.value,
            output.when(key.created_at),
            output.when(key.last_used_at),
            output.when(key.revoked_at),
        )
    output.console().print(table)


@api_keys_app.command("revoke")
def revoke(
    key_id: Annotated[
        str, typer.Argument(metavar="ID", help="The key's id (see `api-keys list`).")
    ],
) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    from models import ApiKey, utcnow

    with process.sessions().begin() as session:
        key = session.get(ApiKey, key_id)
        if key is None:
            output.fail(f"no API key {key_id}")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
    typer.echo(f"revoked API key {key_id}")
