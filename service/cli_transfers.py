"""``caf-relay transfer ...`` and ``caf-relay judgement ...``: transfers and decisions on them.

The operator acts as a global admin (``OPERATOR``) through the same service layer as the API.
"""

from __future__ import annotations

import json
from typing import Any

import click

from contracts.api.transfers import TRANSFER_STATES
from contracts.common import MAX_PAGE
from contracts.vocabulary import TransferState
from service.access import OPERATOR
from service.cli_common import Moment, emit, require_known_authority
from service.cli_common import load_services as _services
from service.documents import read_yaml
from service.judgements import JudgementRefused
from service.store.audit_search import AuditPage, AuditQuery
from service.store.transfers import TransferQuery, UnknownCursor

LISTED_COLUMNS = ["event_id", "state", "basis", "from_authority", "to_authority", "received_at"]
TIMELINE_COLUMNS = ["at", "action", "detail"]


@click.group()
def transfer() -> None:
    """Transfers."""


@transfer.command("list")
@click.option("--state", type=click.Choice(TRANSFER_STATES))
@click.option("--authority", help="Only transfers from or to this authority.")
@click.option("--since", type=Moment(), help="Received at or after (UTC if no zone given).")
@click.option("--until", type=Moment(), help="Received before (UTC if no zone given).")
@click.option("--after", help="The event id the previous page ended with.")
@click.option("--limit", type=click.IntRange(1, MAX_PAGE), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def transfer_list(as_json: bool, **filters: Any) -> None:
    """Transfers, oldest received first, one page at a time; never case data."""
    services = _services()
    try:
        require_known_authority(services, filters["authority"])
        page = services.store.transfers.page(TransferQuery(**filters))
    except UnknownCursor as exc:
        raise click.BadParameter(str(exc), param_hint="'--after'") from exc
    finally:
        services.close()
    emit(page.transfers, as_json, LISTED_COLUMNS)
    if page.next_after is not None:
        click.echo(f"More: --after {page.next_after}", err=True)


@transfer.command("show")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def transfer_show(event_id: str, as_json: bool) -> None:
    """One transfer: its state, basis, deliveries and timeline; for an event id with no
    transfer, whether and why the event was refused."""
    services = _services()
    try:
        view = services.store.transfers.view(event_id)
        refusals = None if view else services.store.audit_search.search(_refusals(event_id))
    finally:
        services.close()
    if view is None:
        raise click.ClickException(f"No transfer with event id {event_id!r}{_refused(refusals)}.")
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    envelope = view["envelope"]
    click.echo(
        f"{view['event_id']}  {view['case_reference']}\n"
        f"  {view['from_authority']} -> {view['to_authority']}, {view['mode']}, "
        f"{view['purpose']}\n"
        f"  state: {view['state']} ({view['decision']['reason']})\n"
        f"  envelope: {envelope['envelope_id'] if envelope else 'none'}"
    )
    timeline = [
        {**entry, "detail": json.dumps(entry["detail"], sort_keys=True)}
        for entry in view["timeline"]
    ]
    emit(timeline, False, TIMELINE_COLUMNS)


def _refusals(event_id: str) -> AuditQuery:
    return AuditQuery(event_id=event_id, action="rejected", page_size=MAX_PAGE)


def _refused(refusals: AuditPage) -> str:
    """What the audit says of an event with no transfer: its refusals, if it was refused (a
    refused event is no transfer, so its records are in the operator's audit only)."""
    if not refusals.records:
        return ""
    last = refusals.records[-1]
    count = len(refusals.records)
    times = f"{count} time{'s' if count > 1 else ''}, last"
    if refusals.next_after is not None:
        times = f"more than {count} times, the {count}th"
    return (
        f": refused {times} at {last['recorded_at']} ({last['detail']['rejection']}: "
        f"{last['detail']['reason']}); caf-relay audit search --event-id {last['event_id']}"
    )


@transfer.command("redeliver")
@click.argument("event_id")
def transfer_redeliver(event_id: str) -> None:
    """Put a failed transfer back in the outbox, to be delivered again with the same envelope."""
    services = _services()
    if not services.store.outbox.redeliver(event_id, services.clock(), by=OPERATOR):
        view = services.store.transfers.view(event_id)
        state = view["state"] if view else "unknown"
        raise click.ClickException(f"{event_id} is {state}; only a failed transfer is redelivered.")
    click.echo(f"{event_id} is back in the outbox.")
    services.close()


@click.group()
def judgement() -> None:
    """Practitioner judgements for parked transfers."""


@judgement.command("record")
@click.argument("event_id")
@click.argument("file", type=click.File("rb"))
def judgement_record(event_id: str, file) -> None:
    """Record the judgement in FILE (JSON or YAML) for the parked transfer EVENT_ID.

    share sends the transfer on, signed, on this judgement; not_share withholds it.
    """
    import yaml  # here, not in every process that imports the CLI: a worker's among them

    try:  # read as bytes: YAML then says where a file is not in UTF-8 (or UTF-16)
        document = read_yaml(file)  # refusing a field given twice, as ISP files are
    except yaml.reader.ReaderError as exc:
        raise click.ClickException(
            f"{file.name} is not text in UTF-8 ({exc.reason} at byte {exc.position}); "
            "save it as UTF-8."
        ) from exc
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{file.name} cannot be read as JSON or YAML: {exc}") from exc
    services = _services()
    try:
        state = services.judgements.record(event_id, document, by=OPERATOR)
        view = services.store.transfers.view(event_id)
    except JudgementRefused as refused:
        errors = f"\n{json.dumps(refused.errors, indent=2)}" if refused.errors else ""
        raise click.ClickException(f"{refused.reason}{errors}") from refused
    finally:
        services.close()
    click.echo(f"{event_id} is {state}: {view['decision']['reason']}")
    if state == TransferState.SIGNED:
        click.echo("It is in the outbox; a running worker or `caf-relay deliver` sends it.")
