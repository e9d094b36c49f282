"""The audit API for auditors and subject access: search, chain verification, child's export.

Behind the same bearer token as the rest of ``/api``; a bad parameter is a 400 problem.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from werkzeug.exceptions import BadRequest

from service.audit import audit_query
from service.bootstrap import Services
from service.subject_access import render_html

audit_api = Blueprint("audit_api", __name__)


def _services() -> Services:
    return current_app.extensions["caf_relay"]


@audit_api.get("/api/v1/audit")
def search() -> Response:
    services = _services()
    try:
        query = audit_query(request.args, services.child_keys)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    page = services.store.audit_search.search(query)
    following = (
        None
        if page.next_after is None
        else url_for("audit_api.search", **{**request.args, "after": page.next_after})
    )
    return jsonify({"records": page.records, "next_after": page.next_after, "next": following})


@audit_api.get("/api/v1/audit/verify")
def verify() -> Response:
    """Walk the chain now; 200 either way, with ``intact`` and the first bad record if any."""
    return jsonify(_services().audit.verify().as_dict())


@audit_api.get("/api/v1/subject-access")
def subject_access() -> Response:
    """One child's export: JSON, or a printable page for ``Accept: text/html``."""
    try:
        export = _services().subject_access.export(request.args)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        return Response(render_html(export), mimetype="text/html")
    return jsonify(export)
