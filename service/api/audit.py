"""The audit API for auditors and subject access: search, chain verification, a child's export.

An auditor reads its own authority's part of the trail: searches and exports hold only
transfers its authority sent or received, and asking for another authority's is refused. A
global admin reads everything. Each search that names a child, and each export, is recorded as
a read of the child's record (``service.child_reads``). Verifying the chain is of the whole
chain, since one missing or altered record anywhere breaks it; the answer carries no
transfer's details.

A child is named only in a ``POST`` body, never in a URL (see ``contracts.api.audit``). An
unknown, repeated or badly typed parameter, or a page size out of range, is a 422 problem from
the schema (``service.api.arguments`` reads query parameters strictly); a well-formed value
that makes no sense (refused by ``audit_query`` or the subject-access export with a
``ValueError``) is a 400 problem saying which.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from flask import Response, request, url_for
from flask_smorest import abort

from contracts.api.audit import (
    AuditFiltersSchema,
    AuditPageSchema,
    AuditSearchSchema,
    IdentifiedChildSchema,
    SubjectAccessSchema,
    VerificationSchema,
)
from service.access import Role
from service.api.blueprint import Blueprint
from service.api.guard import allow, app_services, principal, require_authority
from service.subject_access import render_html

blp = Blueprint("audit", __name__, url_prefix="/api/v1", description="The audit trail.")
PRINTABLE_OR_JSON = {
    "description": "The export, as JSON or (for Accept: text/html) a printable page.",
    "content": {
        "application/json": {"schema": SubjectAccessSchema},
        "text/html": {"schema": {"type": "string"}},
    },
}


def _search(params: dict[str, Any]) -> dict[str, Any]:
    """One page of the records the caller may read that ``params`` select."""
    if params.get("authority"):
        require_authority(params["authority"])
    else:
        params["authority"] = principal().authority  # None, for a global admin: every record
    try:
        page = app_services().audit_searches.page(params, principal())
    except ValueError as exc:
        abort(HTTPStatus.BAD_REQUEST, message=str(exc))
    return {"records": page.records, "next_after": page.next_after}


@blp.route("/audit")
@allow(Role.AUDITOR)
@blp.arguments(AuditFiltersSchema, location="query")
@blp.response(HTTPStatus.OK, AuditPageSchema)
def search(filters: dict[str, Any]):
    """Search the audit records by case, authority, basis and time; to search by child,
    ``POST /api/v1/audit/search``."""
    page = _search(dict(filters))
    following = None
    if page["next_after"] is not None:
        following = url_for("audit.search", **{**request.args, "after": page["next_after"]})
    return {**page, "next": following}


@blp.route("/audit/search", methods=["POST"])
@allow(Role.AUDITOR)
@blp.arguments(AuditSearchSchema)
@blp.response(HTTPStatus.OK, AuditPageSchema)
def search_by_body(search: dict[str, Any]):
    """Search the audit records, by child too; for the next page send ``after: next_after``."""
    return _search(search)


@blp.route("/audit/verify")
@allow(Role.AUDITOR)
@blp.response(HTTPStatus.OK, VerificationSchema)
def verify():
    """Walk the whole chain now; 200 either way, with ``intact`` and the first bad record."""
    return app_services().audit.verify().as_dict()


@blp.route("/subject-access", methods=["POST"])
@allow(Role.AUDITOR)
@blp.arguments(IdentifiedChildSchema)
@blp.response(HTTPStatus.OK, SubjectAccessSchema)
@blp.doc(responses={"200": PRINTABLE_OR_JSON})
def subject_access(child: dict[str, Any]):
    """One child's export: JSON, or a printable page for ``Accept: text/html``."""
    try:
        export = app_services().subject_access.export(child, principal())
    except ValueError as exc:
        abort(HTTPStatus.BAD_REQUEST, message=str(exc))
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        return Response(render_html(export), mimetype="text/html")
    return export
