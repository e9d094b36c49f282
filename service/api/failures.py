"""What the app answers when something beneath a view fails, in one place for every view.

The database unavailable (``StoreUnavailable``: unreachable, refusing every change, or a SQLite
file locked past the busy timeout) is the error the worker waits out, since the same call may
succeed later: here a 503 with ``Retry-After``, and one WARNING line saying so, not a traceback.
Any other error no view handles is a fault of the relay's: a 500 with an error id the caller can
quote, logged with that id as the worker logs a failure (``where_it_failed``), by its type and
frames, never its message, which can quote the request (a child's details) or a secret.
"""

from __future__ import annotations

import logging
import uuid
from http import HTTPStatus

from flask import Flask, Response, request

from service.api.problems import problem
from service.logs import where_it_failed
from service.store.engine import StoreUnavailable

# A few seconds: most outages are a restart or a failover, over in about that, and a caller
# trying again at once would only add to the load on a database coming back.
RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE = "The database is unavailable; try again in a few seconds."

log = logging.getLogger(__name__)


def answer_failures(app: Flask) -> None:
    """Have ``app`` answer failures beneath its views as problems. Flask's own errors (a 404,
    a 405) and the API's refusals are HTTP exceptions, answered by their own handler first."""
    app.register_error_handler(StoreUnavailable, database_unavailable)
    app.register_error_handler(Exception, unexpected_error)


def database_unavailable(exc: StoreUnavailable) -> Response:
    log.warning(
        "database unavailable; answered %s %s with 503: %s", request.method, request.path, exc
    )
    response = problem(HTTPStatus.SERVICE_UNAVAILABLE, DATABASE_UNAVAILABLE)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def unexpected_error(exc: Exception) -> Response:
    error_id = uuid.uuid4().hex
    log.error(
        "unexpected error %s in %s %s: %s",
        error_id,
        request.method,
        request.path,
        where_it_failed(exc),
    )
    return problem(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        f"The relay failed unexpectedly; quote error id {error_id} when you report it.",
        error_id=error_id,
    )
