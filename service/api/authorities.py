"""Authorities, their receipt keys and broker publishers, and how each receives transfers.

Anyone with a token may read the register. Adding organisations and renaming them is for a
global admin; an authority's admin manages its own receipt keys, publishers and adapter.
Adapter secrets are write-only: no response carries them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

from flask_smorest import abort

from contracts.api.authorities import (
    AdapterConfigSchema,
    AdapterTestSchema,
    AdapterViewSchema,
    AuthorityEditSchema,
    AuthoritySummarySchema,
    AuthorityViewSchema,
    NewAuthoritySchema,
)
from service import authorities as admin
from service.access import Role
from service.api.blueprint import Blueprint
from service.api.guard import (
    CASE_ROLES,
    allow,
    allow_global_admin_only,
    app_services,
    principal,
    refuse,
    require_authority,
    require_global_admin,
)

blp = Blueprint(
    "authorities",
    __name__,
    url_prefix="/api/v1",
    description="Authorities, their receipt keys, broker publishers and delivery adapters.",
)

STATUS = {
    admin.NotFound: HTTPStatus.NOT_FOUND,
    admin.Conflict: HTTPStatus.CONFLICT,
    admin.Invalid: HTTPStatus.UNPROCESSABLE_ENTITY,
}


def _store():
    return app_services().store


def _for_authority(view: Callable) -> Callable:
    """Refuse a caller who does not act for the path's ``code`` before the body is read, so
    another authority's admin gets a 403 (audited), not advice on fixing the body."""

    @functools.wraps(view)
    def scoped(*args: Any, code: str, **kwargs: Any) -> Any:
        require_authority(code)
        return view(*args, code=code, **kwargs)

    return scoped


@contextmanager
def _as_problem() -> Iterator[None]:
    """The service layer's refusals, as problem details with their field-level errors."""
    try:
        yield
    except admin.NotPermitted as exc:
        refuse(HTTPStatus.FORBIDDEN, str(exc))
    except admin.AdministrationError as exc:
        abort(STATUS[type(exc)], message=str(exc), errors=exc.errors or None)


@blp.route("/authorities")
@allow(*CASE_ROLES)
@blp.response(HTTPStatus.OK, AuthoritySummarySchema(many=True))
def list_authorities():
    """Every authority and organisation, with the type of adapter each receives through."""
    return admin.authorities(_store())


@blp.route("/authorities", methods=["POST"])
@allow_global_admin_only()
@blp.arguments(NewAuthoritySchema)
@blp.response(HTTPStatus.CREATED, AuthorityViewSchema)
@blp.refuses(HTTPStatus.CONFLICT)
def add_authority(document):
    """Add an organisation beyond the 33 London authorities (health, police, a school...)."""
    with _as_problem():
        return admin.add_authority(_store(), document, by=principal())


@blp.route("/authorities/<code>")
@allow(*CASE_ROLES)
@blp.response(HTTPStatus.OK, AuthorityViewSchema)
@blp.refuses(HTTPStatus.NOT_FOUND)
def get_authority(code: str):
    """One authority: its receipt keys (JWKS), broker publishers and adapter type."""
    with _as_problem():
        return admin.authority(_store(), code)


@blp.route("/authorities/<code>", methods=["PATCH"])
@allow(Role.ADMIN)
@_for_authority
@blp.arguments(AuthorityEditSchema)
@blp.response(HTTPStatus.OK, AuthorityViewSchema)
@blp.refuses(HTTPStatus.NOT_FOUND)
def edit_authority(changes, code: str):
    """Change an authority's name or kind (global admin) or its receipt keys (its admin).

    Receipt keys must be public keys; a null ``jwks`` removes them.
    """
    if changes.keys() & {"name", "kind"}:
        require_global_admin()
    with _as_problem():
        return admin.edit_authority(_store(), code, changes, by=principal())


@blp.route("/authorities/<code>/publishers/<broker_user>", methods=["PUT"])
@allow(Role.ADMIN)
@_for_authority
@blp.response(HTTPStatus.OK, AuthorityViewSchema)
@blp.refuses(HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT, HTTPStatus.UNPROCESSABLE_ENTITY)
def set_publisher(code: str, broker_user: str):
    """Let a RabbitMQ user publish events from this authority (its ``user_id`` property)."""
    with _as_problem():
        return admin.set_publisher(_store(), code, broker_user, by=principal())


@blp.route("/authorities/<code>/publishers/<broker_user>", methods=["DELETE"])
@allow(Role.ADMIN)
@_for_authority
@blp.response(HTTPStatus.NO_CONTENT)
@blp.refuses(HTTPStatus.NOT_FOUND)
def remove_publisher(code: str, broker_user: str):
    """Stop a RabbitMQ user publishing for this authority; its messages are then refused."""
    with _as_problem():
        admin.remove_publisher(_store(), code, broker_user, by=principal())


@blp.route("/authorities/<code>/adapter")
@allow(Role.ADMIN)
@_for_authority
@blp.response(HTTPStatus.OK, AdapterViewSchema)
@blp.refuses(HTTPStatus.NOT_FOUND)
def get_adapter(code: str):
    """The adapter's type, settings and retry overrides, and the names of its secrets."""
    with _as_problem():
        return admin.adapter(_store(), code)


@blp.route("/authorities/<code>/adapter", methods=["PUT"])
@allow(Role.ADMIN)
@_for_authority
@blp.arguments(AdapterConfigSchema)
@blp.response(HTTPStatus.OK, AdapterViewSchema)
@blp.refuses(HTTPStatus.NOT_FOUND)
def put_adapter(config, code: str):
    """Set how this authority receives transfers, replacing any adapter it had.

    Settings and secrets are checked against the adapter type's schemas (422 with the fields
    at fault). Secrets are stored encrypted and never shown again, so give them every time.
    """
    with _as_problem():
        return admin.set_adapter(
            _store(),
            code,
            config["type"],
            config["settings"],
            config["secrets"],
            config["retry"],
            by=principal(),
        )


@blp.route("/authorities/<code>/adapter", methods=["DELETE"])
@allow(Role.ADMIN)
@_for_authority
@blp.response(HTTPStatus.NO_CONTENT)
@blp.refuses(HTTPStatus.NOT_FOUND)
def delete_adapter(code: str):
    """Remove the adapter. Transfers to this authority then wait in the outbox, retried under
    the retry policy, and fail when it gives up, unless an adapter is set again in time."""
    with _as_problem():
        admin.remove_adapter(_store(), code, by=principal())


@blp.route("/authorities/<code>/adapter/test", methods=["POST"])
@allow(Role.ADMIN)
@_for_authority
@blp.response(HTTPStatus.OK, AdapterTestSchema)
@blp.refuses(HTTPStatus.NOT_FOUND)
def test_adapter(code: str):
    """Send a signed test envelope (payload ``"test": true``, no case data, no transfer made)
    through the adapter, and report whether it arrived, how long it took, or the error."""
    with _as_problem():
        return admin.test_adapter(app_services(), code, by=principal())
