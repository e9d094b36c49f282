"""How the API reads its arguments: whole, and refused where they come in if the store could
not hold them.

marshmallow takes a string holding the NUL character, or an unpaired surrogate escape, as any
other; PostgreSQL refuses the first and UTF-8 cannot encode the second, so such a value in a
URL or a JSON body reached the database and came back as a server error. The API's
blueprints parse their arguments with ``StorableArgumentsParser`` (a 422 naming the problem;
it reads a JSON body with ``json_body``, as the views that read their own do), and
``refuse_nul_in_url`` runs before anything else looks at a request (a 400): even the
audit of a refused call would otherwise fail on its path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any, NoReturn

from flask import request
from flask_smorest import abort
from marshmallow import RAISE, ValidationError
from webargs.flaskparser import FlaskParser, is_json_request

from service.api.bodies import whole_body
from service.documents import GivenTwice, read_json
from service.domain.storable import unreadable, unstorable

ISPS = "/api/v1/isps"


def refuse_other_types() -> None:
    """A 415 for a body that is not JSON, where the view takes JSON: read otherwise as no body
    at all, a YAML ISP came back as every field "Missing data for required field" (and a
    judgement as "Invalid input type"). Call it once the body has been read whole."""
    if request.get_data(cache=True) and not is_json_request(request):
        hint = " (POST /api/v1/isps/import takes YAML)" if request.path.startswith(ISPS) else ""
        abort(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            message=f"The body must be JSON, sent as Content-Type: application/json; "
            f"it came as {request.mimetype or 'no type'}{hint}.",
        )


@contextmanager
def json_refusals() -> Iterator[None]:
    """A 400 problem saying why, for a JSON body that is not broken but cannot be read (nested
    too deeply, a number too long) or is read only by guessing (a key given twice in one
    object), rather than a server error or the last value; broken JSON passes through."""
    try:
        yield
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except GivenTwice as exc:
        abort(HTTPStatus.BAD_REQUEST, message=f"The JSON body gives a field twice: {exc}")
    except (ValueError, RecursionError) as exc:
        abort(HTTPStatus.BAD_REQUEST, message=f"The JSON body cannot be read: {unreadable(exc)}")


# What reading a JSON body can answer besides the view's own refusals: broken or unreadable (400),
# too long (413), not JSON (415). The API document declares them for each view that takes one.
JSON_BODY_REFUSALS = (
    HTTPStatus.BAD_REQUEST,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
)


def json_body() -> Any:
    """The request's JSON body, for every view that takes one: read whole (a chunked body
    longer than the limit is a 413, not parsed cut short), JSON (else a 415) and readable (else
    a 400, ``json_refusals``). Broken JSON raises ``json.JSONDecodeError`` or
    ``UnicodeDecodeError`` for the caller to answer; an empty body is one ("Expecting value",
    at 0)."""
    whole_body()
    refuse_other_types()
    with json_refusals():
        return read_json(request.get_data(cache=True))


QUERY = ("query", "querystring")  # webargs' two names for the URL's parameters


class StorableArgumentsParser(FlaskParser):
    """webargs' parser, reading a JSON body with ``json_body`` and refusing what the store
    could not hold; and a URL's parameters read as strictly as a body's fields: one the
    operation does not take (a misspelt filter) or one given twice (``state=signed&
    state=failed``) is a 422 naming it. webargs would ignore the one and read only the first
    value of the other, answering a question the caller did not ask."""

    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        **dict.fromkeys(QUERY, RAISE),
    }

    def _raw_load_json(self, req) -> Any:
        return json_body()  # no body at all is webargs' missing, as it is for its own parser

    def _handle_invalid_json_error(self, error, req, *args: Any, **kwargs: Any) -> NoReturn:
        """A 400 saying where the JSON breaks, or which byte is not UTF-8, for a client to
        fix; webargs' says only that "the browser (or proxy)" sent what was not understood."""
        abort(
            HTTPStatus.BAD_REQUEST,
            message=f"The body is not JSON: {error}.",
            messages={"json": ["Invalid JSON body."]},
        )

    def pre_load(self, location_data: Any, *, schema, req, location: str) -> Any:
        if location == "json":
            why = unstorable(location_data)
            if why:
                raise ValidationError(f"Not storable: {why}")
        if location in QUERY:
            twice = {
                name: ["Given more than once; give it once."]
                for name in req.args
                if len(req.args.getlist(name)) > 1 and name not in location_data.multiple_keys
            }
            if twice:
                raise ValidationError(twice)
        return location_data


def refuse_nul_in_url() -> None:
    """A 400 problem for a path, query parameter name or value holding the NUL character."""
    parts = [request.path, *(part for pair in request.args.items(multi=True) for part in pair)]
    if any("\x00" in part for part in parts):
        abort(
            HTTPStatus.BAD_REQUEST,
            message="The URL holds the NUL character (%00), which no valid request has.",
        )
