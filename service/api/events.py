"""``POST /api/v1/events``: the relay for case systems without AMQP.

The same ``Relay.receive`` as the worker's: the response says what was decided, and delivery
follows from the outbox. A publisher may send only events from its own authority.
"""

from __future__ import annotations

from http import HTTPStatus

from flask import request
from flask_smorest import abort

from contracts.api.transfers import TransferViewSchema
from contracts.event import CaseTransferEventSchema
from service.access import Role
from service.api.blueprint import Blueprint
from service.api.bodies import body_within
from service.api.guard import allow, app_services, principal, refuse
from service.relay import Rejection
from service.senders import token_sender

blp = Blueprint("events", __name__, url_prefix="/api/v1", description="Case-transfer events in.")

STATUS_BY_REJECTION = {
    Rejection.OVERSIZED: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    Rejection.NOT_JSON: HTTPStatus.BAD_REQUEST,
    Rejection.CONTRACT: HTTPStatus.UNPROCESSABLE_ENTITY,
    Rejection.UNKNOWN_AUTHORITY: HTTPStatus.UNPROCESSABLE_ENTITY,
    Rejection.FORGED_SENDER: HTTPStatus.FORBIDDEN,
    Rejection.ID_CONFLICT: HTTPStatus.CONFLICT,
}


@blp.route("/events", methods=["POST"])
@allow(Role.PUBLISHER, global_admin=False)
@blp.doc(
    requestBody={
        "required": True,
        "content": {
            "application/cloudevents+json": {"schema": CaseTransferEventSchema},
            "application/json": {"schema": CaseTransferEventSchema},
        },
    }
)
@blp.response(HTTPStatus.ACCEPTED, TransferViewSchema, description="Stored and decided.")
@blp.alt_response(HTTPStatus.OK, schema=TransferViewSchema, description="Already received.")
@blp.refuses(
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE, HTTPStatus.CONFLICT, HTTPStatus.UNPROCESSABLE_ENTITY
)
def post_event():
    """Send one case-transfer event (a CloudEvent, structured JSON mode)."""
    caller = principal()
    services = app_services()
    sender = token_sender(caller.token_id, caller.name, caller.authority)
    body = body_within()
    if body is None:  # Content-Length is None for a chunked body
        received = services.relay.refuse_oversized(request.content_length, sender)
    else:
        received = services.relay.receive(body, sender=sender)
    if received.rejection is Rejection.FORGED_SENDER:
        refuse(HTTPStatus.FORBIDDEN, received.reason)
    if received.rejection is not None:
        abort(
            STATUS_BY_REJECTION[received.rejection],
            message=received.reason,
            errors=received.errors,
            rejection=received.rejection.value,
        )
    view = services.store.transfers.view(received.event_id)
    status = HTTPStatus.OK if received.duplicate else HTTPStatus.ACCEPTED
    return {**view, "duplicate": received.duplicate}, status
