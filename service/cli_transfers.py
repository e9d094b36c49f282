"""``caf-relay transfer ...``: transfers and the actions on them."""

from __future__ import annotations

import click

from service.cli_common import load_services as _services


@click.group()
def transfer() -> None:
    """Transfers."""


@transfer.command("redeliver")
@click.argument("event_id")
def transfer_redeliver(event_id: str) -> None:
    """Put a failed transfer back in the outbox, to be delivered again with the same envelope."""
    services = _services()
    if not services.store.outbox.redeliver(event_id, services.clock(), requested_by="cli"):
        view = services.store.transfer_view(event_id)
        state = view["state"] if view else "unknown"
        raise click.ClickException(f"{event_id} is {state}; only a failed transfer is redelivered.")
    click.echo(f"{event_id} is back in the outbox.")
    services.close()
