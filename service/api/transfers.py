"""Transfers: what happened to each, and the actions on them, for their two authorities."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from flask import current_app
from flask_smorest import Blueprint, abort

from contracts.api.transfers import TransferViewSchema
from service.access import Role
from service.api.guard import allow, principal, require_authority

blp = Blueprint(
    "transfers", __name__, url_prefix="/api/v1", description="Transfers and their timelines."
)


def _services():
    return current_app.extensions["caf_relay"]


def visible_transfer(event_id: str) -> dict[str, Any]:
    """The transfer, if the caller acts for its sender or its recipient; else 404 or 403."""
    view = _services().store.transfer_view(event_id)
    if view is None:
        abort(HTTPStatus.NOT_FOUND, message=f"No transfer with event id {event_id!r}.")
    require_authority(view["from_authority"], view["to_authority"])
    return view


@blp.route("/transfers/<path:event_id>")
@allow(Role.ADMIN, Role.PUBLISHER, Role.PRACTITIONER, Role.AUDITOR)
@blp.response(HTTPStatus.OK, TransferViewSchema)
def get_transfer(event_id: str):
    """One transfer: its state, basis, deliveries and timeline."""
    return visible_transfer(event_id)


@blp.route("/transfers/<path:event_id>/redeliver", methods=["POST"])
@allow(Role.ADMIN)
@blp.response(HTTPStatus.ACCEPTED, TransferViewSchema)
def redeliver(event_id: str):
    """Put a failed transfer back in the outbox, to be delivered again now."""
    visible_transfer(event_id)
    services = _services()
    if not services.store.outbox.redeliver(
        event_id, services.clock(), requested_by=principal().name
    ):
        abort(HTTPStatus.CONFLICT, message="Only a failed transfer can be redelivered.")
    return services.store.transfer_view(event_id)
