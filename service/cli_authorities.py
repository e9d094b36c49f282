"""``caf-relay authority|adapter ...``: authorities, their receipt keys and their adapters."""

from __future__ import annotations

import json

import click
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from adapters.registry import AdapterConfigError
from service.cli_common import load_services as _services


@click.group()
def adapter() -> None:
    """Receiving authorities' delivery adapters."""


@adapter.command("set")
@click.argument("authority")
@click.argument("adapter_type")
@click.option("--settings", "settings_json", default="{}", help="Settings as a JSON object.")
@click.option(
    "--secrets-file",
    type=click.File("r"),
    help="A JSON file with the secrets (tokens, passwords); '-' reads standard input.",
)
@click.option(
    "--retry",
    "retry_json",
    default=None,
    help='Retry overrides as JSON, e.g. {"max_attempts": 20, "max_age_seconds": 86400}.',
)
def adapter_set(
    authority: str, adapter_type: str, settings_json: str, secrets_file, retry_json: str | None
) -> None:
    """Configure how AUTHORITY receives envelopes; secrets are stored encrypted."""
    services = _services()
    if authority not in services.store.authorities():
        raise click.UsageError(f"Unknown authority {authority}.")
    secrets = json.load(secrets_file) if secrets_file else {}
    retry = json.loads(retry_json) if retry_json else None
    try:
        services.store.set_adapter(
            authority, adapter_type, json.loads(settings_json), secrets, retry
        )
    except AdapterConfigError as exc:
        raise click.ClickException(f"{exc} {json.dumps(exc.errors)}") from exc
    click.echo(f"{authority} now receives through the {adapter_type} adapter.")
    services.close()


@click.group()
def authority() -> None:
    """Authorities."""


@authority.command("keys")
@click.argument("code")
@click.argument("jwks_file", type=click.File("r"))
def authority_keys(code: str, jwks_file) -> None:
    """Register the public keys (a JWKS file) CODE signs its delivery receipts with."""
    try:
        jwks = KeySet.import_key_set(json.load(jwks_file)).as_dict(private=False)
    except (ValueError, JoseError) as exc:
        raise click.ClickException(f"Not a usable JWKS: {exc}") from exc
    services = _services()
    if code not in services.store.authorities():
        raise click.UsageError(f"Unknown authority {code}.")
    services.store.set_authority_keys(code, jwks)
    click.echo(f"{code}: {len(jwks['keys'])} receipt key(s) registered.")
    services.close()
