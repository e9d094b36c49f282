"""What every ``caf-relay`` command group shares: services from the environment, a JWKS."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from contracts.common import OUT_OF_UTC_RANGE, has_utc_time
from contracts.rfc3339 import rfc3339_moment
from service.bootstrap import Services, services_from_env
from service.documents import read_json


def load_services(*, migrating: bool = False) -> Services:
    """The services the settings describe; a setting that is wrong is a one-line error.

    Unless the command is ``migrating`` the database itself (``db upgrade`` and the processes
    that run the relay), its schema must be this release's already: a command on a database
    not yet migrated says to run ``caf-relay db upgrade`` (``SchemaBehind``), rather than that
    the database is unavailable, or a traceback, for a table that is not there.
    """
    try:
        services = services_from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if not migrating:
        services.store.require_migrated()
    return services


class Moment(click.ParamType):
    """An ISO 8601 date or time, with or without its zone (UTC if none), as the HTTP API's
    transfer listing takes it."""

    name = "time"

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = rfc3339_moment(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date or time, e.g. 2026-11-24T09:00:00Z.")
        moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        if not has_utc_time(moment):
            self.fail(f"{value!r}: {OUT_OF_UTC_RANGE}")
        return moment


def require_known_authority(services: Services, code: str | None) -> None:
    """Refuse an ``--authority`` the register does not hold: a mistyped code would otherwise
    list nothing, as if there were nothing to list."""
    if code is not None and code not in services.store.authorities():
        raise click.BadParameter(
            f"{code!r} is not an organisation in the register.", param_hint="'--authority'"
        )


def read_text(path: Path, what: str) -> str:
    """A file's text (UTF-8), or a one-line reason it cannot be read: a binary file given by
    mistake is not a traceback."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"Cannot read {what} from {path}: {exc}") from exc


def write_text(path: Path, text: str, what: str) -> None:
    """Write ``text`` to ``path``, or say in one line why it cannot be written there."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"Cannot write {what} to {path}: {exc.strerror}.") from exc


LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def read_jwks(source: str) -> dict[str, Any]:
    """A JWKS from a file or an https URL, or a ClickException saying why not.

    Plain http only to this machine: keys fetched over the network unprotected could be
    anyone's, and would make a forged envelope or checkpoint look genuine.
    """
    if source.startswith("http://") and urlsplit(source).hostname not in LOCAL_HOSTS:
        raise click.ClickException(f"Fetch the JWKS over https, not {source}.")
    import requests  # here: every process starts through this module, few of them fetch keys

    try:
        if source.startswith(("https://", "http://")):
            # Not followed: a redirect could lead to plain http, or to anyone's keys.
            response = requests.get(source, timeout=10, allow_redirects=False)
            if response.is_redirect:
                moved = response.headers["Location"]
                raise click.ClickException(
                    f"{source} redirects to {moved}; give the JWKS's own https address."
                )
            response.raise_for_status()
            document = read_json(response.content)
        else:
            document = read_json(Path(source).read_bytes())
    except (OSError, ValueError, requests.RequestException) as exc:
        raise click.ClickException(f"Cannot read the JWKS from {source}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise click.ClickException(f"{source} is not a JWKS: an object with a list of keys.")
    return document


def emit(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    """Print rows as JSON (for scripts) or as an aligned table (for people)."""
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    cells = [[("" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
