"""``caf-relay authority|adapter|secrets ...``: the register, receipt keys, publishers, adapters.

The same service functions as the API's (``service.authorities``), run as the operator.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from contracts.api.authorities import ORGANISATION_KINDS
from service import authorities as admin
from service.access import OPERATOR
from service.bootstrap import Services
from service.cli_common import emit, read_jwks
from service.cli_common import load_services as _services
from service.documents import GivenTwice, read_json
from service.secrets import SecretsKeyError

AS_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
AUTHORITY_COLUMNS = ["code", "name", "kind", "adapter_type"]
VIEW_COLUMNS = [*AUTHORITY_COLUMNS, "publishers", "receipt_kids"]


@contextmanager
def _administering() -> Iterator[Services]:
    """The services for one command; the service layer's refusals become its error message."""
    services = _services()
    try:
        yield services
    except admin.AdministrationError as exc:
        errors = f" {json.dumps(exc.errors)}" if exc.errors else ""
        raise click.ClickException(f"{exc}{errors}") from exc
    finally:
        services.close()


def _json_option(value: str | None, name: str) -> Any:
    try:
        return read_json(value) if value is not None else None
    except GivenTwice as exc:  # as the API refuses such a body
        raise click.BadParameter(f"Not JSON we accept: {exc}", param_hint=name) from exc
    except ValueError as exc:
        raise click.BadParameter(f"Not JSON: {exc}", param_hint=name) from exc


def _show_authority(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit([view], True, [])
        return
    kids = [key.get("kid") for key in (view["jwks"] or {}).get("keys", [])]
    row = {**view, "publishers": ", ".join(view["publishers"]), "receipt_kids": ", ".join(kids)}
    emit([row], False, VIEW_COLUMNS)


# -- authority -----------------------------------------------------------------------------------


@click.group()
def authority() -> None:
    """Authorities and other organisations: the register, receipt keys, broker publishers."""


@authority.command("list")
@AS_JSON
def authority_list(as_json: bool) -> None:
    """Every authority and organisation, with the adapter type each receives through."""
    with _administering() as services:
        emit(admin.authorities(services.store), as_json, AUTHORITY_COLUMNS)


@authority.command("show")
@click.argument("code")
@AS_JSON
def authority_show(code: str, as_json: bool) -> None:
    """One authority: receipt keys, broker publishers, adapter type."""
    with _administering() as services:
        _show_authority(admin.authority(services.store, code), as_json)


@authority.command("add")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--kind", required=True, type=click.Choice(ORGANISATION_KINDS))
@click.option("--jwks", "jwks_source", help="Receipt public keys: a JWKS file or https URL.")
@AS_JSON
def authority_add(code: str, name: str, kind: str, jwks_source: str | None, as_json: bool) -> None:
    """Add an organisation beyond the 33 London authorities (health, police, a school...)."""
    document = {"code": code, "name": name, "kind": kind}
    if jwks_source:
        document["jwks"] = read_jwks(jwks_source)
    with _administering() as services:
        _show_authority(admin.add_authority(services.store, document, by=OPERATOR), as_json)


@authority.command("edit")
@click.argument("code")
@click.option("--name")
@click.option("--kind", type=click.Choice(ORGANISATION_KINDS))
@click.option("--jwks", "jwks_source", help="Receipt public keys: a JWKS file or https URL.")
@click.option("--remove-keys", is_flag=True, help="Remove the receipt keys.")
@AS_JSON
def authority_edit(
    code: str,
    name: str | None,
    kind: str | None,
    jwks_source: str | None,
    remove_keys: bool,
    as_json: bool,
) -> None:
    """Change CODE's name, kind or receipt keys."""
    if jwks_source and remove_keys:
        raise click.UsageError("Give --jwks or --remove-keys, not both.")
    changes: dict[str, Any] = {k: v for k, v in (("name", name), ("kind", kind)) if v is not None}
    if jwks_source:
        changes["jwks"] = read_jwks(jwks_source)
    if remove_keys:
        changes["jwks"] = None
    with _administering() as services:
        view = admin.edit_authority(services.store, code, changes, by=OPERATOR)
        _show_authority(view, as_json)


@authority.command("keys")
@click.argument("code")
@click.argument("jwks_source")
@AS_JSON
def authority_keys(code: str, jwks_source: str, as_json: bool) -> None:
    """Register the public keys (a JWKS file or https URL) CODE signs delivery receipts with."""
    jwks = read_jwks(jwks_source)
    with _administering() as services:
        view = admin.edit_authority(services.store, code, {"jwks": jwks}, by=OPERATOR)
        _show_authority(view, as_json)


@authority.group("publisher")
def publisher() -> None:
    """RabbitMQ users that publish events for an authority (the ``user_id`` property)."""


@publisher.command("set")
@click.argument("code")
@click.argument("broker_user")
@AS_JSON
def publisher_set(code: str, broker_user: str, as_json: bool) -> None:
    """Let BROKER_USER publish events from CODE, and from no other authority."""
    with _administering() as services:
        _show_authority(
            admin.set_publisher(services.store, code, broker_user, by=OPERATOR), as_json
        )


@publisher.command("remove")
@click.argument("code")
@click.argument("broker_user")
@AS_JSON
def publisher_remove(code: str, broker_user: str, as_json: bool) -> None:
    """Stop BROKER_USER publishing for CODE."""
    with _administering() as services:
        admin.remove_publisher(services.store, code, broker_user, by=OPERATOR)
        _show_authority(admin.authority(services.store, code), as_json)


# -- adapter -------------------------------------------------------------------------------------


def _show_adapter(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit([view], True, [])
        return
    row = {
        **view,
        "settings": json.dumps(view["settings"]),
        "retry": json.dumps(view["retry"]) if view["retry"] else "default",
        "secrets": ", ".join(view["secrets"]) if view["secrets_readable"] else "UNREADABLE",
    }
    emit([row], False, ["authority", "type", "settings", "secrets", "retry", "updated_at"])


@click.group()
def adapter() -> None:
    """Receiving authorities' delivery adapters."""


@adapter.command("show")
@click.argument("authority_code")
@AS_JSON
def adapter_show(authority_code: str, as_json: bool) -> None:
    """AUTHORITY_CODE's adapter: type, settings, retry overrides, the NAMES of its secrets."""
    with _administering() as services:
        _show_adapter(admin.adapter(services.store, authority_code), as_json)


@adapter.command("set")
@click.argument("authority_code")
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
@AS_JSON
def adapter_set(
    authority_code: str,
    adapter_type: str,
    settings_json: str,
    secrets_file,
    retry_json: str | None,
    as_json: bool,
) -> None:
    """Configure how AUTHORITY_CODE receives envelopes; secrets are stored encrypted."""
    settings = _json_option(settings_json, "--settings")
    retry = _json_option(retry_json, "--retry")
    try:
        secrets = read_json(secrets_file.read()) if secrets_file else {}
    except GivenTwice as exc:
        raise click.BadParameter(f"Not JSON we accept: {exc}", param_hint="--secrets-file") from exc
    except ValueError as exc:
        raise click.BadParameter("Not JSON.", param_hint="--secrets-file") from exc
    with _administering() as services:
        view = admin.set_adapter(
            services.store, authority_code, adapter_type, settings, secrets, retry, by=OPERATOR
        )
        _show_adapter(view, as_json)


@adapter.command("remove")
@click.argument("authority_code")
def adapter_remove(authority_code: str) -> None:
    """Remove AUTHORITY_CODE's adapter; its transfers wait in the outbox, or fail, as retries
    allow, until an adapter is set again."""
    with _administering() as services:
        admin.remove_adapter(services.store, authority_code, by=OPERATOR)
    click.echo(f"{authority_code} has no adapter now; its transfers wait in the outbox.")


@adapter.command("test")
@click.argument("authority_code")
@AS_JSON
def adapter_test(authority_code: str, as_json: bool) -> None:
    """Send a signed test envelope (no case data, no transfer) and report the outcome.

    Exits 1 if it was not delivered.
    """
    with _administering() as services:
        result = admin.test_adapter(services, authority_code, by=OPERATOR)
    columns = ["authority", "adapter_type", "delivered", "duration_ms", "detail"]
    emit([result], as_json, columns)
    if not result["delivered"]:
        sys.exit(1)


# -- secrets -------------------------------------------------------------------------------------


@click.group()
def secrets() -> None:
    """The keys adapter secrets are encrypted with (CAF_RELAY_SECRETS_KEYS)."""


@secrets.command("rotate")
@AS_JSON
def secrets_rotate(as_json: bool) -> None:
    """Re-encrypt every stored adapter secret with the first key of CAF_RELAY_SECRETS_KEYS.

    Put the new key first, run this, then drop the old key. Nothing is rotated if any stored
    secret cannot be opened with the configured keys.
    """
    with _administering() as services:
        try:
            rotated = admin.rotate_secrets(services.store, by=OPERATOR)
        except SecretsKeyError as exc:
            raise click.ClickException(f"Nothing rotated: {exc}") from exc
    emit([{"authority": code} for code in rotated], as_json, ["authority"])
    if not as_json:
        click.echo(f"{len(rotated)} adapter(s) re-encrypted with the first key.", err=True)
