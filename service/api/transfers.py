"""Transfers: what happened to each, and the actions on them, for their sender and, once sent,
their recipient."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from flask import request, url_for
from flask_smorest import abort

from contracts.api.transfers import (
    TransferListQuerySchema,
    TransferPageSchema,
    TransferViewSchema,
)
from contracts.judgement import JudgementSchema
from service.access import Role
from service.api.arguments import JSON_BODY_REFUSALS, json_body
from service.api.blueprint import Blueprint
from service.api.guard import (
    CASE_ROLES,
    allow,
    app_services,
    principal,
    refuse,
    require_authority,
)
from service.judgements import JudgementRefused, Refusal
from service.store.transfers import TransferQuery, UnknownCursor, as_its_recipient_sees
from service.store.withdrawals import UNSENT

blp = Blueprint(
    "transfers", __name__, url_prefix="/api/v1", description="Transfers and their timelines."
)


STATUS_BY_REFUSAL = {
    Refusal.UNKNOWN_TRANSFER: HTTPStatus.NOT_FOUND,
    Refusal.NOT_PERMITTED: HTTPStatus.FORBIDDEN,
    Refusal.NOT_PARKED: HTTPStatus.CONFLICT,
    Refusal.INVALID: HTTPStatus.UNPROCESSABLE_ENTITY,
    Refusal.NO_BASIS: HTTPStatus.UNPROCESSABLE_ENTITY,
}


def visible_transfer(event_id: str) -> dict[str, Any]:
    """The transfer, if the caller acts for its sender, or as its recipient sees it if the
    caller acts for that once it was sent.

    Anyone else is told there is no such transfer (404, audited as a refusal when there is one):
    a 403 would confirm that an event id exists and name the authorities at its ends.
    """
    view = app_services().store.transfers.view(event_id)
    caller = principal()
    unknown = f"No transfer with event id {event_id!r}."
    if view is None:
        abort(HTTPStatus.NOT_FOUND, message=unknown)
    for_sender = caller.acts_for(view["from_authority"])
    sent = view["state"] not in UNSENT
    if not (for_sender or (sent and caller.acts_for(view["to_authority"]))):
        refuse(HTTPStatus.NOT_FOUND, unknown)
    return view if for_sender else as_its_recipient_sees(view)


@blp.route("/transfers")
@allow(*CASE_ROLES)
@blp.arguments(TransferListQuerySchema, location="query", as_kwargs=True)
@blp.response(HTTPStatus.OK, TransferPageSchema)
def list_transfers(authority: str | None = None, **filters: Any):
    """Transfers, oldest received first; a caller with an authority sees only its own."""
    if authority is not None:
        require_authority(authority)
    own = principal().authority
    query = TransferQuery(authority=authority or own, as_authority=own is not None, **filters)
    try:
        page = app_services().store.transfers.page(query)
    except UnknownCursor as exc:
        abort(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            message=f"after: {exc}",
            errors={"query": {"after": [str(exc)]}},
        )
    following = None
    if page.next_after is not None:
        following = url_for(
            "transfers.list_transfers", **{**request.args, "after": page.next_after}
        )
    return {"transfers": page.transfers, "next_after": page.next_after, "next": following}


@blp.route("/transfers/<path:event_id>")
@allow(*CASE_ROLES)
@blp.response(HTTPStatus.OK, TransferViewSchema)
@blp.refuses(HTTPStatus.NOT_FOUND)
def get_transfer(event_id: str):
    """One transfer: its state, basis, deliveries and timeline."""
    return visible_transfer(event_id)


@blp.route("/transfers/<path:event_id>/redeliver", methods=["POST"])
@allow(Role.ADMIN)
@blp.response(HTTPStatus.ACCEPTED, TransferViewSchema)
@blp.refuses(HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT)
def redeliver(event_id: str):
    """Put a failed transfer back in the outbox, to be delivered again now."""
    visible_transfer(event_id)
    services = app_services()
    if not services.store.outbox.redeliver(event_id, services.clock(), by=principal()):
        # Its state says why: not failed, or parked by the expiry of its ISP just now, which
        # makes it its sender's alone, as if unknown to its recipient.
        state = visible_transfer(event_id)["state"]
        abort(
            HTTPStatus.CONFLICT,
            message=f"It is {state}; only a failed transfer can be redelivered.",
        )
    return visible_transfer(event_id)


@blp.route("/transfers/<path:event_id>/judgement", methods=["POST"])
@allow(Role.PRACTITIONER)
@blp.doc(
    requestBody={
        "required": True,
        "content": {"application/json": {"schema": JudgementSchema}},
        "description": "The practitioner-judgement record (contracts/judgement.py).",
    }
)
@blp.response(HTTPStatus.OK, TransferViewSchema, description="Decided: signed or withheld.")
@blp.refuses(
    *JSON_BODY_REFUSALS, HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT, HTTPStatus.UNPROCESSABLE_ENTITY
)
def record_judgement(event_id: str):
    """Record a judgement for a parked transfer: share sends it on, not_share withholds it.

    Only a practitioner of the sending authority may decide. A judgement that gives no basis
    (another recipient, another purpose, or a share of no category the transfer carries) is
    refused with why, and the transfer stays parked.
    """
    visible_transfer(event_id)  # its recipient, not yet sent it, is told of no such transfer
    services = app_services()
    try:
        document = json_body()
    except (json.JSONDecodeError, UnicodeDecodeError):
        document = None  # not a judgement: refused by its contract, and audited, as any such
    try:
        services.judgements.record(event_id, document, by=principal())
    except JudgementRefused as refused:
        if refused.refusal is Refusal.NOT_PERMITTED:
            refuse(HTTPStatus.FORBIDDEN, refused.reason)
        abort(STATUS_BY_REFUSAL[refused.refusal], message=refused.reason, errors=refused.errors)
    return visible_transfer(event_id)
