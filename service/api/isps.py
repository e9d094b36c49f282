"""The ISP register: read by anyone, kept by admins of its parties (rules in ``service.isps``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus

from flask import request
from flask_smorest import abort

from contracts.api.isps import (
    ApplicabilitySchema,
    ApplicableQuerySchema,
    ImportedIspSchema,
    IspHistorySchema,
    IspSummarySchema,
    SuspendSchema,
)
from contracts.isp import IspSchema
from service import isps
from service.access import Role
from service.api.blueprint import Blueprint
from service.api.bodies import whole_body
from service.api.guard import CASE_ROLES, allow, app_services, principal, refuse
from service.domain.basis import decision_day

blp = Blueprint(
    "isps", __name__, url_prefix="/api/v1", description="The register of sharing protocols."
)

ONE_OR_MANY = {"oneOf": [IspSchema, {"type": "array", "items": IspSchema}]}
IMPORT_BODY = {
    "required": True,
    "description": "One ISP or a list of them, as a file upload or as the body itself.",
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
        "application/yaml": {"schema": ONE_OR_MANY},
        "application/json": {"schema": ONE_OR_MANY},
    },
}


@contextmanager
def _register_errors() -> Iterator[None]:
    """The register's refusals as problems; a caller who is not a party is audited."""
    try:
        yield
    except isps.NotAParty as exc:
        refuse(HTTPStatus.FORBIDDEN, str(exc))
    except isps.UnknownIsp as exc:
        abort(HTTPStatus.NOT_FOUND, message=str(exc))
    except isps.UnknownAuthorities as exc:
        abort(HTTPStatus.UNPROCESSABLE_ENTITY, message=str(exc), errors=exc.errors)
    except isps.InvalidIsp as exc:
        abort(HTTPStatus.UNPROCESSABLE_ENTITY, message=str(exc), errors=exc.errors)
    except isps.IspConflict as exc:
        abort(HTTPStatus.CONFLICT, message=str(exc), errors=exc.errors)


@blp.route("/isps")
@allow(*CASE_ROLES)
@blp.response(HTTPStatus.OK, IspSummarySchema(many=True))
def list_isps():
    """The newest version of every ISP, with its status."""
    services = app_services()
    return isps.register(services.store, decision_day(services.clock()))


@blp.route("/isps", methods=["POST"])
@allow(Role.ADMIN)
@blp.arguments(IspSchema)
@blp.response(HTTPStatus.CREATED, IspSummarySchema)
@blp.refuses(HTTPStatus.CONFLICT)
def create_isp(document):
    """Add a new ISP, at version 1; an admin of one of its parties may."""
    services = app_services()
    with _register_errors():
        return isps.create(services.store, document, by=principal(), now=services.clock())


@blp.route("/isps/import", methods=["POST"])
@allow(Role.ADMIN)
@blp.doc(requestBody=IMPORT_BODY)
@blp.response(HTTPStatus.CREATED, ImportedIspSchema(many=True))
@blp.refuses(
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    HTTPStatus.CONFLICT,
    HTTPStatus.UNPROCESSABLE_ENTITY,
)
def import_isps():
    """Import ISPs from a JSON or YAML file: new ISPs or next versions; all of them or none."""
    body = whole_body()  # first: a form's file is then parsed from what it read
    upload = request.files.get("file")
    if upload is not None:
        data, name = upload.read(), upload.filename or "upload"
        file_format = isps.file_format(upload.filename, upload.mimetype)
    else:
        data, name = body, "request body"
        file_format = isps.file_format(None, request.mimetype)
    if file_format is None:
        abort(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            message="Send JSON or YAML: a file named *.json, *.yaml or *.yml, or a body of type "
            "application/json or application/yaml.",
        )
    services = app_services()
    with _register_errors():
        return isps.import_isps(
            services.store,
            data,
            file_format,
            source=name,
            by=principal(),
            now=services.clock(),
        )


@blp.route("/isps/applicable")
@allow(*CASE_ROLES)
@blp.arguments(ApplicableQuerySchema, location="query")
@blp.response(HTTPStatus.OK, ApplicabilitySchema)
def applicable(query):
    """Which ISPs a routine transfer from one authority to another rests on, and why."""
    services = app_services()
    on = query.pop("on", None) or decision_day(services.clock())
    with _register_errors():
        return isps.applicable(services.store, on=on, **query)


@blp.route("/isps/<isp_id>")
@allow(*CASE_ROLES)
@blp.response(HTTPStatus.OK, IspHistorySchema)
@blp.refuses(HTTPStatus.NOT_FOUND)
def show_isp(isp_id: str):
    """One ISP with every version ever recorded."""
    services = app_services()
    with _register_errors():
        return isps.history(services.store, isp_id, decision_day(services.clock()))


@blp.route("/isps/<isp_id>/versions", methods=["POST"])
@allow(Role.ADMIN)
@blp.arguments(IspSchema)
@blp.response(HTTPStatus.CREATED, IspSummarySchema)
@blp.refuses(HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT)
def amend_isp(document, isp_id: str):
    """Amend an ISP: record its next version; an admin of a party to the current one may."""
    services = app_services()
    with _register_errors():
        return isps.amend(services.store, isp_id, document, by=principal(), now=services.clock())


@blp.route("/isps/<isp_id>/versions/<int(min=1):version>/confirm", methods=["POST"])
@allow(Role.ADMIN)
@blp.response(HTTPStatus.OK, IspSummarySchema)
@blp.refuses(HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT)
def confirm_isp(isp_id: str, version: int):
    """Confirm your authority's signature on one version: until then it does not bind you."""
    services = app_services()
    with _register_errors():
        return isps.confirm(services.store, isp_id, version, by=principal(), now=services.clock())


@blp.route("/isps/<isp_id>/suspend", methods=["POST"])
@allow(Role.ADMIN)
@blp.arguments(SuspendSchema)
@blp.response(HTTPStatus.CREATED, IspSummarySchema)
@blp.refuses(HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT)
def suspend_isp(body, isp_id: str):
    """Suspend an active ISP: a new, suspended version; no transfer is shared under it."""
    services = app_services()
    with _register_errors():
        return isps.suspend(
            services.store, isp_id, body["reason"], by=principal(), now=services.clock()
        )
