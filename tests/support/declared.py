"""Whether the API answers only statuses its OpenAPI document declares for the operation.

A borough generates its client from the document, so an error the API answers and the document
does not name is one that client cannot handle. ``answers_undeclared`` watches every answer of
every app in this process (the test client's and a real server's alike) while it is open.
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
def _operations() -> dict[str, Any]:
    return openapi_document()["paths"]


def declared(method: str, rule: str) -> set[int]:
    """The statuses the document declares for ``method`` on the Flask ``rule`` (an
    ``/api/v1`` rule, as ``url_map`` holds it), besides ``default``, which stands for server
    errors."""
    operation = _operations().get(RULE_VARIABLE.sub(r"{\1}", rule), {}).get(method.lower())
    if operation is None:
        return set()  # not in the document at all: nothing it answers is declared
    return {int(status) for status in operation["responses"] if status != "default"}


@contextmanager
def answers_undeclared() -> Iterator[list[str]]:
    """A list that fills, while the block runs, with each API answer whose status its
    operation does not declare. A server error (5xx) is the document's ``default``."""
    undeclared: list[str] = []

    def check(_app: Any, response: Response, **_: Any) -> None:
        rule = request.url_rule  # None for no route, or a method the route does not take
        checked = rule is not None and rule.rule.startswith("/api/")
        if not checked or request.method in AUTOMATIC or response.status_code >= 500:
            return
        if response.status_code not in declared(request.method, rule.rule):
            undeclared.append(f"{request.method} {rule.rule} answered {response.status_code}")

    request_finished.connect(check)
    try:
        yield undeclared
    finally:
        request_finished.disconnect(check)
