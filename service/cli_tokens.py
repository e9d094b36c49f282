"""``caf-relay token ...``: API tokens; the secret is shown once, only its digest is kept."""

from __future__ import annotations

from datetime import timedelta

import click

from service.access import MAX_TOKEN_DAYS, OPERATOR, TOKEN_DAYS, Role, check_scope
from service.cli_common import emit
from service.cli_common import load_services as _services
from service.domain.isotime import iso
from service.store.organisations import UnknownAuthority


@click.group()
def token() -> None:
    """API tokens, each with a role and (except a global admin's or monitor's) one authority."""


@token.command("create")
@click.option("--name", required=True, help="Who or what holds it, e.g. 'Hackney Mosaic'.")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option(
    "--authority", help="The authority it acts for; omit only for a global admin or monitor."
)
@click.option(
    "--expires-in-days",
    type=click.IntRange(1, MAX_TOKEN_DAYS),
    default=TOKEN_DAYS,
    show_default=True,
    help=f"Days until it stops working, at most {MAX_TOKEN_DAYS}.",
)
def token_create(name: str, role: str, authority: str | None, expires_in_days: int) -> None:
    """Make a token and print its secret, once; store it as you would a password.

    Every token expires (why: ``service.access``); give its holder a new one before then."""
    try:
        check_scope(Role(role), authority)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    services = _services()
    now = services.clock()
    expires_at = now + timedelta(days=expires_in_days)
    try:
        issued = services.store.access.create_token(
            name=name,
            role=Role(role),
            authority=authority,
            now=now,
            expires_at=expires_at,
            by=OPERATOR,
        )
    except UnknownAuthority as exc:
        raise click.UsageError(f"Unknown authority {authority}.") from exc
    finally:
        services.close()
    click.echo(
        f"Token {issued.token_id} ({role}, {authority or 'global'}) for {name},"
        f" expiring at {iso(expires_at)}:",
        err=True,
    )
    click.echo(issued.secret)


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def token_list(as_json: bool) -> None:
    """Every token ever made, with when it expires and when it was revoked; never a secret."""
    services = _services()
    rows = services.store.access.tokens()
    services.close()
    columns = ["token_id", "name", "role", "authority", "created_at", "expires_at", "revoked_at"]
    emit(rows, as_json, columns)


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
