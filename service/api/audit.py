"""The audit API for auditors and subject access: search, chain verification, child's export.

A bad parameter is a 400 problem.
"""

from __future__ import annotations

from flask import Response, current_app, jsonify, request, url_for
from flask_smorest import Blueprint
from werkzeug.exceptions import BadRequest

from service.access import Role
from service.api.guard import allow
from service.audit import audit_query
from service.subject_access import render_html

blp = Blueprint("audit", __name__, url_prefix="/api/v1", description="The audit trail.")


def _services():
    return current_app.extensions["caf_relay"]


@blp.route("/audit")
@allow(Role.AUDITOR)
def search() -> Response:
    """Search the audit records."""
    services = _services()
    try:
        query = audit_query(request.args, services.child_keys)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    page = services.store.audit_search.search(query)
    following = (
        None
        if page.next_after is None
        else url_for("audit.search", **{**request.args, "after": page.next_after})
    )
    return jsonify({"records": page.records, "next_after": page.next_after, "next": following})


@blp.route("/audit/verify")
@allow(Role.AUDITOR)
def verify() -> Response:
    """Walk the chain now; 200 either way, with ``intact`` and the first bad record if any."""
    return jsonify(_services().audit.verify().as_dict())


@blp.route("/subject-access")
@allow(Role.AUDITOR)
def subject_access() -> Response:
    """One child's export: JSON, or a printable page for ``Accept: text/html``."""
    try:
        export = _services().subject_access.export(request.args)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        return Response(render_html(export), mimetype="text/html")
    return jsonify(export)
