"""Request bodies read whole, or refused for their size: never cut short.

Werkzeug refuses a declared length over the app's limit before reading, but a chunked body (no
Content-Length) it reads up to the limit and then quietly ends, so a view would take the first
part of an event, an ISP file or a judgement for the whole. Reading one byte past the limit
tells the two apart.
"""

from __future__ import annotations

from http import HTTPStatus

from flask import current_app, request
from flask_smorest import abort
from werkzeug.exceptions import RequestEntityTooLarge


def body_within() -> bytes | None:
    """The request's body, or None when it is longer than the app accepts (``MAX_CONTENT_LENGTH``,
    the event size limit). Call it before anything else reads the body (``files``, ``form``,
    ``get_json``): they then parse what it read."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    request.max_content_length = limit + 1
    try:
        body = request.get_data()
    except RequestEntityTooLarge:
        return None
    return body if len(body) <= limit else None


def whole_body() -> bytes:
    """The request's body, or a 413 problem when it is longer than the app accepts."""
    body = body_within()
    if body is None:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        abort(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            message=f"The request body is longer than {limit} bytes, the most accepted.",
        )
    return body
