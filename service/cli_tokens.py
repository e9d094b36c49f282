"""``caf-relay token ...``: API tokens; the secret is shown once, only its digest is kept."""

from __future__ import annotations

import click

from service.access import OPERATOR, Role, check_scope
from service.cli_common import emit
from service.cli_common import load_services as _services
from service.store.organisations import UnknownAuthority


@click.group()
def token() -> None:
    """API tokens, each with a role and (except a global admin's) one authority."""


@token.command("create")
@click.option("--name", required=True, help="Who or what holds it, e.g. 'Hackney Mosaic'.")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--authority", help="The authority it acts for; omit only for a global admin.")
def token_create(name: str, role: str, authority: str | None) -> None:
    """Make a token and print its secret, once; store it as you would a password."""
    try:
        check_scope(Role(role), authority)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    services = _services()
    try:
        issued = services.store.access.create_token(
            name=name, role=Role(role), authority=authority, now=services.clock(), by=OPERATOR
        )
    except UnknownAuthority as exc:
        raise click.UsageError(f"Unknown authority {authority}.") from exc
    finally:
        services.close()
    click.echo(f"Token {issued.token_id} ({role}, {authority or 'global'}) for {name}:", err=True)
    click.echo(issued.secret)


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def token_list(as_json: bool) -> None:
    """Every token ever made, with when it was revoked; never a secret."""
    services = _services()
    rows = services.store.access.tokens()
    services.close()
    emit(rows, as_json, ["token_id", "name", "role", "authority", "created_at", "revoked_at"])


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Stop TOKEN_ID working, at once."""
    services = _services()
    revoked = services.store.access.revoke_token(token_id, now=services.clock(), by=OPERATOR)
    services.close()
    if not revoked:
        raise click.ClickException(f"No live token {token_id}.")
    click.echo(f"Token {token_id} revoked.")
