"""flask-smorest, made to answer every error as ``application/problem+json`` and document it so."""

from __future__ import annotations

import http
from http import HTTPStatus

from flask import Response, jsonify
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from werkzeug.exceptions import HTTPException

from contracts.api.problem import ProblemSchema

PROBLEM_TYPE = "application/problem+json"


def problem(status: HTTPStatus, detail: str, **extra) -> Response:
    body = {"status": status.value, "title": status.phrase, "detail": detail, **extra}
    response = jsonify(body)
    response.status_code = status.value
    response.content_type = PROBLEM_TYPE
    return response


# Headers an error answer always carries, declared with its response so a generated client
# knows them: a 401's challenge (``guard.authenticate``) says how to authenticate, and whether
# the token sent is the trouble (RFC 6750); a 503's (the database unavailable,
# ``service.api.failures``) when to try again.
ERROR_HEADERS = {
    HTTPStatus.UNAUTHORIZED: {
        "WWW-Authenticate": {
            "description": 'The bearer challenge: Bearer realm="caf-relay", with'
            ' error="invalid_token" when the token sent is unknown, revoked or expired.',
            "required": True,
            "schema": {"type": "string"},
        }
    },
    HTTPStatus.SERVICE_UNAVAILABLE: {
        "Retry-After": {
            "description": "Seconds to wait before trying the call again.",
            "required": True,
            "schema": {"type": "integer"},
        }
    },
}


class ProblemApi(Api):
    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Response:
        """Errors from webargs (bad parameters, bad bodies) keep their field-level messages, and
        every error the headers it is answered with."""
        data = getattr(error, "data", None) or {}
        extra = {}
        errors = data.get("errors") or data.get("messages")
        if errors:
            # webargs nests messages by location ("json", "query"); the body's are the usual case.
            errors = errors.get("json", errors) if isinstance(errors, dict) else errors
            # A whole-body error ("Invalid JSON body.") goes under marshmallow's own key for one.
            extra["errors"] = errors if isinstance(errors, dict) else {"_schema": errors}
        if data.get("rejection"):
            extra["rejection"] = data["rejection"]
        detail = data.get("message") or error.description or error.name
        response = problem(HTTPStatus(error.code or 500), detail, **extra)
        # Werkzeug's own headers for the error (a 405's Allow, which RFC 9110 requires) but
        # its HTML type, then any a view gave.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers.add(name, value)
        response.headers.update(data.get("headers", {}))
        return response

    def _register_responses(self) -> None:
        """As flask-smorest's, but documents error bodies as problem+json, which they are, with
        the headers they carry (``ERROR_HEADERS``), and the default (a 500) as
        ``service.api.failures`` answers it."""
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            if status in ERROR_HEADERS:
                response["headers"] = ERROR_HEADERS[status]
            prepare_response(response, self.spec, PROBLEM_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {
            "description": "An unexpected error: its error_id is the one to quote.",
            "schema": self.ERROR_SCHEMA,
        }
        prepare_response(response, self.spec, PROBLEM_TYPE)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)
