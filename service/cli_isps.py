"""``caf-relay isp ...``: the register of Information Sharing Protocols, as the operator.

The same actions as ``/api/v1/isps`` (``service.isps``), run as OPERATOR, a global admin.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from contracts.vocabulary import EVENT_TYPE, PURPOSES
from service import isps
from service.access import OPERATOR
from service.bootstrap import Services
from service.cli_common import emit
from service.cli_common import load_services as _services
from service.domain.basis import decision_day

SUMMARY = ["isp_id", "version", "status", "title", "parties", "effective_from", "expires_on"]
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON, not a table.")
FORMAT_OPTION = click.option(
    "--format",
    "file_format",
    type=click.Choice(sorted(isps.PARSERS)),
    help="How FILE is written [default: told by its name (.json, .yaml, .yml), else json].",
)


@contextmanager
def _register() -> Iterator[Services]:
    """Services for one command; the register's refusals become messages, not tracebacks."""
    services = _services()
    try:
        yield services
    except isps.InvalidIsp as exc:
        raise click.ClickException(f"{exc} {json.dumps(exc.errors)}") from exc
    except isps.IspConflict as exc:
        errors = f" {json.dumps(exc.errors)}" if exc.errors else ""
        raise click.ClickException(f"{exc}{errors}") from exc
    except (isps.UnknownIsp, isps.UnknownAuthorities) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        services.close()


def _read(file, file_format: str | None) -> tuple[bytes, str, str]:
    """A file's bytes, format (JSON unless told or named otherwise) and name.

    Standard input (``-``) may be a stream with no name at all.
    """
    name = getattr(file, "name", "-")
    return file.read(), file_format or isps.file_format(name, None) or "json", name


def _table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**row, "parties": ", ".join(row["parties"]), "unconfirmed": ", ".join(row["unconfirmed"])}
        for row in rows
    ]


def _write(action: Callable[[Services], dict[str, Any]], done: str) -> None:
    with _register() as services:
        recorded = action(services)
    click.echo(f"{done} ISP {recorded['isp_id']} v{recorded['version']} ({recorded['status']}).")


@click.group()
def isp() -> None:
    """Information Sharing Protocols: every version kept, the newest one counts."""


@isp.command("list")
@JSON_OPTION
def isp_list(as_json: bool) -> None:
    """The newest version of every ISP, with its status."""
    with _register() as services:
        rows = isps.register(services.store, decision_day(services.clock()))
    emit(rows if as_json else _table(rows), as_json, SUMMARY)


@isp.command("show")
@click.argument("isp_id")
@JSON_OPTION
def isp_show(isp_id: str, as_json: bool) -> None:
    """ISP_ID with every version ever recorded."""
    with _register() as services:
        history = isps.history(services.store, isp_id, decision_day(services.clock()))
    if as_json:
        click.echo(json.dumps(history, indent=2))
        return
    emit(_table(history["versions"]), False, [*SUMMARY[1:], "unconfirmed", "recorded_at"])


@isp.command("add")
@click.argument("file", type=click.File("rb"))
@FORMAT_OPTION
def isp_add(file, file_format: str | None) -> None:
    """Add a new ISP (version 1) from a JSON or YAML file (contracts/README.md)."""
    data, file_format, _ = _read(file, file_format)
    _write(
        lambda s: isps.create(s.store, isps.parse(data, file_format), by=OPERATOR, now=s.clock()),
        "Added",
    )


@isp.command("amend")
@click.argument("isp_id")
@click.argument("file", type=click.File("rb"))
@FORMAT_OPTION
def isp_amend(isp_id: str, file, file_format: str | None) -> None:
    """Record the next version of ISP_ID from FILE; the earlier versions stay as they were."""
    data, file_format, _ = _read(file, file_format)
    _write(
        lambda s: isps.amend(
            s.store, isp_id, isps.parse(data, file_format), by=OPERATOR, now=s.clock()
        ),
        "Amended",
    )


@isp.command("suspend")
@click.argument("isp_id")
@click.option("--reason", required=True, help="Why; kept in the audit trail.")
def isp_suspend(isp_id: str, reason: str) -> None:
    """Suspend ISP_ID: transfers between its parties then need a practitioner's judgement."""
    _write(
        lambda s: isps.suspend(s.store, isp_id, reason, by=OPERATOR, now=s.clock()),
        "Suspended",
    )


@isp.command("confirm")
@click.argument("isp_id")
@click.argument("version", type=click.IntRange(min=1))
@click.option(
    "--party",
    "parties",
    multiple=True,
    help="Confirm this party's signature only (repeatable) [default: every signature].",
)
def isp_confirm(isp_id: str, version: int, parties: tuple[str, ...]) -> None:
    """Confirm signatures on VERSION of ISP_ID, as a global admin, once the parties have told
    you they signed; until then a signature recorded by another party's admin binds no one."""
    _write(
        lambda s: isps.confirm(
            s.store, isp_id, version, by=OPERATOR, now=s.clock(), parties=parties or None
        ),
        "Confirmed the signatures on",
    )


@isp.command("import")
@click.argument("file", type=click.File("rb"))
@FORMAT_OPTION
@JSON_OPTION
def isp_import(file, file_format: str | None, as_json: bool) -> None:
    """Import every ISP in a JSON or YAML file (one or a list): all of them, or none."""
    data, file_format, name = _read(file, file_format)
    with _register() as services:
        rows = isps.import_isps(
            services.store,
            data,
            file_format,
            source=name,
            by=OPERATOR,
            now=services.clock(),
        )
    emit(rows if as_json else _table(rows), as_json, ["change", *SUMMARY])


@isp.command("applicable")
@click.option("--from", "from_authority", required=True, help="The sending authority's code.")
@click.option("--to", "to_authority", required=True, help="The receiving authority's code.")
@click.option("--purpose", required=True, type=click.Choice(PURPOSES))
@click.option("--flow", default=EVENT_TYPE, show_default=True, type=click.Choice([EVENT_TYPE]))
@click.option("--on", type=click.DateTime(["%Y-%m-%d"]), help="The day [default: today].")
@JSON_OPTION
def isp_applicable(from_authority, to_authority, purpose, flow, on, as_json: bool) -> None:
    """Which ISPs a routine transfer from one authority to another rests on, and why."""
    with _register() as services:
        answer = isps.applicable(
            services.store,
            from_authority=from_authority,
            to_authority=to_authority,
            flow=flow,
            purpose=purpose,
            on=on.date() if on else decision_day(services.clock()),
        )
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    click.echo(answer["reason"])
    emit(answer["considered"], False, ["isp_id", "version", "status", "finding", "reason"])
