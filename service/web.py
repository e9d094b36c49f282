"""The HTTP entrypoint: builds the Flask app around the ``/api/v1`` blueprints.

Every ``/api`` call is authenticated (``service.api.guard``) and answered in JSON, errors as
problem details, those beneath a view too (``service.api.failures``: a 503 while the database
is unavailable, a 500 with an error id for a fault). The OpenAPI document, generated from the
marshmallow schemas in ``contracts.api``, is at ``/openapi.json`` with a browsable page at
``/docs``. Outside ``/api`` the public keys, the health checks, ``/openapi.json`` and ``/docs``
are open; ``/metrics`` needs a token too.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

from contracts.function_validators import function_validators
from service.api import audit, authorities, events, isps, operations, transfers
from service.api.arguments import refuse_nul_in_url
from service.api.failures import answer_failures
from service.api.guard import EXTENSION, app_services, authenticate
from service.api.problems import ProblemApi
from service.bootstrap import Services, services_from_env
from service.broker_probe import BrokerProbe

API_BLUEPRINTS = (events.blp, transfers.blp, audit.blp, authorities.blp, isps.blp)


API_SETTINGS = {
    "API_TITLE": "caf-relay",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    # An exact release: the page runs this script where admins may paste their tokens, so it
    # changes only when someone here changes it. The browser refuses any file whose digest is
    # not the release's (templates/swagger_ui.html), so a changed CDN cannot change the page;
    # a new release needs new digests, from its npm tarball (README, API documentation).
    "OPENAPI_SWAGGER_UI_URL": "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.36.0/",
    "SWAGGER_UI_INTEGRITY": {
        "swagger-ui.css": "sha384-z/AtSaOHGn5MJ5auAHXUypohywlIWLBZo1jeGmhdpVIbCnFhxAH92cwdV41oyINc",
        "swagger-ui-standalone-preset.js": (
            "sha384-My2aDM4r2Mbm3ybHcubKm9O9U8FEjvF/O5nGvE9YK5dzqOTbWEKa79RPJ1krdMaF"
        ),
        "swagger-ui-bundle.js": (
            "sha384-fUpRgC19yPykTqzdrUbdAg8NTiu16NEKf9U12J+IJWCg8/1mEI8f2+PEIz60Wyd+"
        ),
    },
    "API_SPEC_OPTIONS": {
        "info": {
            "description": "Moves CAF case transfers between authorities, on a recorded"
            " lawful basis, signed. Every call needs a bearer token (caf-relay token create)."
            " The events, judgements and ISPs taken here are also published as JSON Schema"
            " 2020-12 (contracts/published/ in the repository), which states the rules between"
            " fields that OpenAPI 3.0 cannot (a judgement to share names a category, consent"
            " not obtained is explained, and the like): the relay applies those too."
        },
        "security": [{"bearerAuth": []}],
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    },
}


def create_app(services: Services | None = None) -> Flask:
    """The Flask app; with no ``services`` given they are built from the environment."""
    if services is None:
        services = services_from_env()
        services.store.initialise()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = services.settings.max_event_bytes
    app.extensions[EXTENSION] = services
    if services.settings.broker_url:
        app.extensions[operations.BROKER_PROBE] = BrokerProbe(services.settings.broker_url)
    app.before_request(refuse_nul_in_url)
    app.before_request(authenticate)
    app.after_request(protect_answer)
    _add_api(app)
    answer_failures(app)
    app.register_blueprint(operations.blp)
    app.add_url_rule("/.well-known/jwks.json", view_func=jwks)
    return app


def openapi_document() -> dict:
    """The OpenAPI document ``/openapi.json`` serves, made without a database, for publishing."""
    return _add_api(Flask(__name__)).spec.to_dict()


def _add_api(app: Flask) -> ProblemApi:
    app.config.update(API_SETTINGS)
    api = ProblemApi(app)
    api.ma_plugin.converter.add_attribute_function(function_validators)
    for blueprint in API_BLUEPRINTS:
        api.register_blueprint(blueprint)
    return api


# The printable subject-access page needs its own inline styles and nothing else.
API_PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def protect_answer(response: Response) -> Response:
    """No browser sniffs an answer into another type; an API answer (transfers, judgements, a
    child's export) is kept by no cache, and a page of it runs no script and is framed by none."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"
        response.headers.setdefault("Content-Security-Policy", API_PAGE_POLICY)
    return response


def jwks() -> Response:
    response = jsonify(app_services().keyring.jwks())
    response.content_type = "application/jwk-set+json"
    response.cache_control.max_age = 300
    return response
