"""Whether the API answers only statuses its OpenAPI document declares for the operation, each
with the headers the document says it carries.

A borough generates its client from the document, so an error the API answers and the document
does not name is one that client cannot handle, and a header it declares required (a 401's
``WWW-Authenticate``) is one that client may rely on. ``answers_undeclared`` watches every
answer of every app in this process (the test client's and a real server's alike) while it is
open.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Response, request, request_finished

from service.web import openapi_document

# A Flask rule's ``<converter(arguments):name>`` is OpenAPI's ``{name}``.
RULE_VARIABLE = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
AUTOMATIC = frozenset({"HEAD", "OPTIONS"})  # Flask answers them for each route; no document does


@functools.cache
def _document() -> dict[str, Any]:
    return openapi_document()


def _responses(method: str, rule: str) -> dict[str, Any]:
    """The responses the document declares for ``method`` on the Flask ``rule`` (an
    ``/api/v1`` rule, as ``url_map`` holds it): none for an operation it does not hold."""
    path = _document()["paths"].get(RULE_VARIABLE.sub(r"{\1}", rule), {})
    return path.get(method.lower(), {}).get("responses", {})


def declared(method: str, rule: str) -> set[int]:
    """The statuses the document declares for ``method`` on the Flask ``rule`` (an
    ``/api/v1`` rule, as ``url_map`` holds it), besides ``default``, which stands for an
    unexpected error (500)."""
    return {int(status) for status in _responses(method, rule) if status != "default"}


def required_headers(method: str, rule: str, status: int) -> set[str]:
    """The headers the document says every ``status`` answer of ``method`` on ``rule`` has."""
    response = _responses(method, rule).get(str(status), {})
    if "$ref" in response:  # "#/components/responses/NAME"
        response = _document()["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    headers = response.get("headers", {})
    return {name for name, header in headers.items() if header.get("required")}


@contextmanager
def answers_undeclared() -> Iterator[list[str]]:
    """A list that fills, while the block runs, with each API answer whose status its
    operation does not declare, or that lacks a header the document says it has. An
    unexpected error (500) is the document's ``default``; any other server error (a 503 while
    the database is unavailable) must be declared."""
    undeclared: list[str] = []

    def check(_app: Any, response: Response, **_: Any) -> None:
        rule = request.url_rule  # None for no route, or a method the route does not take
        checked = rule is not None and rule.rule.startswith("/api/")
        if not checked or request.method in AUTOMATIC or response.status_code == 500:
            return
        answer = f"{request.method} {rule.rule} answered {response.status_code}"
        if response.status_code not in declared(request.method, rule.rule):
            undeclared.append(answer)
        required = required_headers(request.method, rule.rule, response.status_code)
        for missing in sorted(name for name in required if name not in response.headers):
            undeclared.append(f"{answer} without its {missing} header")

    request_finished.connect(check)
    try:
        yield undeclared
    finally:
        request_finished.disconnect(check)
