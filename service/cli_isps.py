"""``caf-relay isp ...``: the register of Information Sharing Protocols."""

from __future__ import annotations

import json

import click
from marshmallow import ValidationError

from contracts.isp import IspSchema
from service.cli_common import load_services as _services


@click.group()
def isp() -> None:
    """Information Sharing Protocols."""


@isp.command("add")
@click.argument("file", type=click.File("r"))
def isp_add(file) -> None:
    """Validate an ISP (JSON, see contracts/README.md) and add it to the register."""
    document = json.load(file)
    try:
        IspSchema().load(document)
    except ValidationError as exc:
        raise click.ClickException(f"Not a valid ISP: {json.dumps(exc.messages)}") from exc
    services = _services()
    services.store.add_isp(document)
    click.echo(f"Added ISP {document['id']} v{document['version']}")
    services.close()
