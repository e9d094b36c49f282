"""Endpoints for operators and their tools: metrics, liveness, readiness."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.access import Role
from service.api.guard import allow
from service.metrics import registry_for

blp = Blueprint("operations", __name__)


@blp.record_once
def _build_registry(state) -> None:
    services = state.app.extensions["caf_relay"]
    state.app.extensions["caf_relay_metrics"] = registry_for(services.store, services.clock)


@blp.get("/metrics")
@allow(Role.AUDITOR)
def metrics() -> Response:
    """Prometheus metrics; counts only, never personal data."""
    registry = current_app.extensions["caf_relay_metrics"]
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


@blp.get("/healthz")
def healthz() -> Response:
    """The process is up; ``/readyz`` says whether it can do its work."""
    return jsonify({"status": "ok"})
