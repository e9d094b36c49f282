"""The blueprint every ``/api/v1`` resource is built on: flask-smorest's, with arguments read as
``service.api.arguments`` reads them, and each operation documenting the problems it answers.

A client generated from the OpenAPI document knows only the statuses the document names, so
every error an operation really answers is declared there, as ``application/problem+json``
(``ProblemApi`` registers a response component per status). Those every operation of a kind
answers are derived from how it is built, so none is forgotten and no view repeats them:

- every operation: 400 (a NUL character in its URL, ``refuse_nul_in_url``), 401 (no valid
  token, ``guard.authenticate``; its ``WWW-Authenticate`` challenge is declared with the
  response, ``problems.ERROR_HEADERS``) and 503 (the database unavailable,
  ``service.api.failures``: every call's token is looked up there), for every call under
  ``/api``;
- a view guarded by ``guard.allow``: 403 (the wrong role, or another authority);
- a view with ``@blp.arguments``: 422 (flask-smorest declares it), and for a JSON body also
  ``JSON_BODY_REFUSALS``: 400, 413, 415;
- every view: 422 for a query parameter it does not take. One that declares none takes
  ``NoQuerySchema``, so that ``?status=x`` is refused there as a misspelt filter is where
  filters are taken, rather than ignored (an answer to a question the caller did not ask). It is
  read before the view's role check (``guard.allow``), which the declared ones follow.

A view declares what is its own (404, 409, a 422 its handler raises) with ``@blp.refuses``. An
unexpected error (a 500, with an error id) is every operation's ``default``.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import flask_smorest
from marshmallow import Schema

from service.api.arguments import JSON_BODY_REFUSALS, QUERY, StorableArgumentsParser
from service.api.guard import ROLES_ATTRIBUTE

EVERY_CALL_ERRORS = (
    HTTPStatus.BAD_REQUEST,
    HTTPStatus.UNAUTHORIZED,
    HTTPStatus.SERVICE_UNAVAILABLE,
)


class NoQuerySchema(Schema):
    """The query of a call that takes no parameters there: any one given is unknown (a 422)."""


def _takes_query(view: Callable) -> bool:
    """Whether ``view`` declares query arguments (flask-smorest notes them on the view)."""
    declared = getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", [])
    return any(parameter.get("in") in QUERY for parameter in declared)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's blueprint, with arguments checked to be storable and refusals declared."""

    ARGUMENTS_PARSER = StorableArgumentsParser()

    def refuses(self, *statuses: HTTPStatus) -> Callable:
        """Declare that the view answers each of ``statuses`` with a problem."""

        def declare(view: Callable) -> Callable:
            for status in statuses:
                view = self.alt_response(status, status.name)(view)
            return view

        return declare

    def arguments(self, schema: Any, *, location: str = "json", **kwargs: Any) -> Callable:
        """flask-smorest's, which declares 422; a JSON body's reading refusals too."""
        parse = super().arguments(schema, location=location, **kwargs)
        if location != "json":
            return parse
        return lambda view: self.refuses(*JSON_BODY_REFUSALS)(parse(view))

    def route(self, rule: str, **options: Any) -> Callable:
        """flask-smorest's, declaring what every call may answer, and 403 for a guarded view;
        a view that declares no query arguments takes ``NoQuerySchema`` there."""
        register = super().route(rule, **options)

        def declare_and_register(view: Callable) -> Callable:
            if not _takes_query(view):
                view = self.arguments(NoQuerySchema, location="query", as_kwargs=True)(view)
            guarded = (HTTPStatus.FORBIDDEN,) if hasattr(view, ROLES_ATTRIBUTE) else ()
            return register(self.refuses(*EVERY_CALL_ERRORS, *guarded)(view))

        return declare_and_register
