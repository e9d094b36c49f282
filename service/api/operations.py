"""Endpoints for operators and their tools: metrics, liveness, readiness."""

from __future__ import annotations

from http import HTTPStatus

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.access import Role
from service.api.guard import allow, app_services, principal
from service.broker_probe import BrokerProbe
from service.metrics import registry_for
from service.readiness import check_broker, check_database

blp = Blueprint("operations", __name__)
# Where ``web.create_app`` keeps the app's ``BrokerProbe``, when the app uses a broker.
BROKER_PROBE = "caf_relay.broker_probe"


@blp.get("/metrics")
@allow(Role.AUDITOR, Role.MONITOR)
def metrics() -> Response:
    """Prometheus metrics; counts only, never personal data. A global monitor's or admin's are
    the whole deployment's; an auditor's or an authority's monitor's, its authority's."""
    services = app_services()
    registry = registry_for(services.store, services.clock, _broker(), principal().authority)
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


@blp.get("/healthz")
def healthz() -> Response:
    """The process is up; ``/readyz`` says whether it can do its work."""
    return jsonify({"status": "ok"})


@blp.get("/readyz")
def readyz() -> tuple[Response, HTTPStatus]:
    """200 when the database (and the broker, if one is configured) answer; else 503 saying
    which check failed and why. Open like ``/healthz``: it says nothing but that, and its
    broker check is the app's ``BrokerProbe``'s reading, so that calling it cannot have the
    relay open a broker connection."""
    services = app_services()
    checks = {"database": check_database(services.store)}
    if broker := _broker():
        checks["broker"] = check_broker(broker.reading(), services.settings.broker_url)
    ready = all(check.ok for check in checks.values())
    body = {
        "status": "ready" if ready else "not_ready",
        "checks": {name: check.as_dict() for name, check in checks.items()},
    }
    return jsonify(body), HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE


def _broker() -> BrokerProbe | None:
    return current_app.extensions.get(BROKER_PROBE)
