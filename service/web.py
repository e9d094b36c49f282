"""The HTTP entrypoint: events in for case systems without AMQP, transfer status, public keys.

``POST /api/v1/events`` runs the same relay as the worker: the response says what was decided,
and delivery follows from the outbox (``caf-relay worker`` or ``caf-relay deliver``). Every
``/api`` call needs the bearer token.
"""

from __future__ import annotations

import hmac
from http import HTTPStatus

from flask import Flask, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from service.bootstrap import Services, build_services
from service.config import Settings
from service.metrics import registry_for
from service.relay import Rejection
from service.web_audit import audit_api

STATUS_BY_REJECTION = {
    Rejection.OVERSIZED: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    Rejection.NOT_JSON: HTTPStatus.BAD_REQUEST,
    Rejection.CONTRACT: HTTPStatus.UNPROCESSABLE_ENTITY,
    Rejection.UNKNOWN_AUTHORITY: HTTPStatus.UNPROCESSABLE_ENTITY,
}


def create_app(services: Services | None = None) -> Flask:
    """The Flask app; with no ``services`` given they are built from the environment."""
    if services is None:
        services = build_services(Settings.from_env())
        services.store.initialise()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = services.settings.max_event_bytes
    app.extensions["caf_relay"] = services

    @app.before_request
    def authenticate() -> Response | None:
        if not request.path.startswith("/api/"):
            return None
        expected = services.settings.api_token
        scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
        if (
            expected
            and scheme.lower() == "bearer"
            and hmac.compare_digest(supplied.strip().encode(), expected.encode())
        ):
            return None
        response = _problem(HTTPStatus.UNAUTHORIZED, "A valid bearer token is required.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="caf-relay"'
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return _problem(HTTPStatus(error.code or 500), error.description or error.name)

    app.add_url_rule("/api/v1/events", view_func=post_event, methods=["POST"])
    app.add_url_rule("/api/v1/transfers/<path:event_id>", view_func=get_transfer)
    app.add_url_rule(
        "/api/v1/transfers/<path:event_id>/redeliver", view_func=redeliver, methods=["POST"]
    )
    app.add_url_rule("/.well-known/jwks.json", view_func=jwks)
    app.add_url_rule("/healthz", view_func=healthz)
    registry = registry_for(services.store, services.clock)
    app.add_url_rule("/metrics", "metrics", lambda: _metrics(registry))
    app.register_blueprint(audit_api)
    return app


def _services() -> Services:
    return current_app.extensions["caf_relay"]


def _problem(status: HTTPStatus, detail: str, **extra) -> Response:
    body = {"status": status.value, "title": status.phrase, "detail": detail, **extra}
    response = jsonify(body)
    response.status_code = status.value
    response.content_type = "application/problem+json"
    return response


def post_event() -> Response:
    services = _services()
    received = services.relay.receive(request.get_data(cache=False))
    if received.rejection is not None:
        return _problem(
            STATUS_BY_REJECTION[received.rejection],
            received.reason,
            rejection=received.rejection.value,
            errors=received.errors,
        )
    view = services.store.transfer_view(received.event_id)
    status = HTTPStatus.OK if received.duplicate else HTTPStatus.ACCEPTED
    return jsonify({**view, "duplicate": received.duplicate}), status


def get_transfer(event_id: str) -> Response:
    view = _services().store.transfer_view(event_id)
    if view is None:
        return _problem(HTTPStatus.NOT_FOUND, f"No transfer with event id {event_id!r}.")
    return jsonify(view)


def redeliver(event_id: str) -> Response:
    store = _services().store
    if store.transfer_view(event_id) is None:
        return _problem(HTTPStatus.NOT_FOUND, f"No transfer with event id {event_id!r}.")
    if not store.outbox.redeliver(event_id, _services().clock(), requested_by="api"):
        return _problem(HTTPStatus.CONFLICT, "Only a failed transfer can be redelivered.")
    return jsonify(store.transfer_view(event_id)), HTTPStatus.ACCEPTED


def jwks() -> Response:
    response = jsonify(_services().keyring.jwks())
    response.content_type = "application/jwk-set+json"
    response.cache_control.max_age = 300
    return response


def healthz() -> Response:
    return jsonify({"status": "ok"})


def _metrics(registry) -> Response:
    """Counts only, no personal data; like /healthz it needs no token, for the scraper."""
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
