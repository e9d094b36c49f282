"""Authentication and authorisation for every ``/api`` call, and the audit of each refusal.

A request's bearer token is looked up (by digest) before any view runs; no token, an unknown or
revoked one, or one past its expiry by the services' clock is a 401 (an expired one's says so,
found by the same lookup). Each view then declares the roles it admits with ``@allow(...)`` or
``@allow_global_admin_only()``, and checks the authority it touches with
``require_authority(...)``; a caller outside either gets a 403. Every 403 is written to the
audit trail with who asked for what, never with the token. A 401 names no one, so it is logged,
not audited: anyone who can reach the API could otherwise grow the permanent audit without end,
and hold up intake at the audit chain's head with every request.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, NoReturn

from flask import current_app, g, request
from flask_smorest import abort

from service.access import Principal, Role, TokenExpired
from service.bootstrap import Services

ROLES_ATTRIBUTE = "_caf_roles"
GUARDED_PATHS = frozenset({"/metrics"})  # besides everything under /api/
# Every role that acts on cases, i.e. all but a monitor, which sees counts and nothing else.
CASE_ROLES = tuple(role for role in Role if role is not Role.MONITOR)
EXTENSION = "caf_relay"  # where ``web.create_app`` keeps the services in the Flask app
CHALLENGE = 'Bearer realm="caf-relay"'
INVALID_TOKEN = f'{CHALLENGE}, error="invalid_token"'

log = logging.getLogger(__name__)


def app_services() -> Services:
    """The services the running app was built with."""
    return current_app.extensions[EXTENSION]


def authenticate() -> None:
    """Resolve the caller of a guarded request into ``g.principal``, or refuse with a 401."""
    if not (request.path.startswith("/api/") or request.path in GUARDED_PATHS):
        return
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if not (scheme.lower() == "bearer" and secret.strip()):
        _unauthorised("A valid bearer token is required.", CHALLENGE)
    services = app_services()
    try:
        caller = services.store.access.principal(secret.strip(), now=services.clock())
    except TokenExpired as expired:
        _unauthorised(str(expired), INVALID_TOKEN)
    if caller is None:
        _unauthorised("A valid bearer token is required.", INVALID_TOKEN)
    g.principal = caller


def _unauthorised(detail: str, challenge: str) -> NoReturn:
    """Log the refusal (it names no one, so it is not audited) and answer 401 with the
    challenge RFC 6750 asks for: with ``error="invalid_token"`` when a token was presented
    but is unknown, revoked or expired, so a client knows to get a new one."""
    log.warning(
        "refused %s %s from %s: %s", request.method, request.path, request.remote_addr, detail
    )
    abort(HTTPStatus.UNAUTHORIZED, message=detail, headers={"WWW-Authenticate": challenge})


def principal() -> Principal:
    return g.principal


def allow(*roles: Role, global_admin: bool = True) -> Callable:
    """Admit only callers with one of ``roles`` to the decorated view, and a global admin
    unless ``global_admin`` is False: one acts for no authority, so it may not send for one."""

    def check() -> None:
        caller = principal()
        if not (caller.role in roles or (global_admin and caller.is_global_admin)):
            refuse(
                HTTPStatus.FORBIDDEN,
                f"{_a(_kind(caller))} token may not do this; it needs the role "
                f"{' or '.join(r.value for r in roles)}.",
            )

    admitted = ", ".join(r.value for r in roles)
    return _guard(check, roles, f"{admitted} (and a global admin)" if global_admin else admitted)


def allow_global_admin_only() -> Callable:
    """Admit a global admin alone, and say so in the API document: what changes the register
    for everyone (adding an organisation) is no one authority's to do."""
    return _guard(require_global_admin, (Role.ADMIN,), "a global admin only")


def _guard(check: Callable[[], None], roles: tuple[Role, ...], admitted: str) -> Callable:
    """Run ``check`` before the decorated view. The view is marked with the ``roles`` it admits
    (``Blueprint.route`` declares its 403 by that mark) and its doc, the operation's
    description in the API document, ends by saying who is ``admitted``."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            check()
            return view(*args, **kwargs)

        setattr(guarded, ROLES_ATTRIBUTE, roles)
        guarded.__doc__ = f"{(view.__doc__ or '').strip()}\n\nRoles: {admitted}."
        return guarded

    return decorate


def _kind(caller: Principal) -> str:
    return "global admin" if caller.is_global_admin else caller.role.value


def _a(kind: str) -> str:
    """``kind`` with its indefinite article: "An admin", "An auditor", "A publisher"."""
    return f"{'An' if kind[0] in 'aeiou' else 'A'} {kind}"


def require_authority(*authorities: str) -> None:
    """Refuse unless the caller acts for one of ``authorities``."""
    caller = principal()
    if not caller.acts_for(*authorities):
        refuse(
            HTTPStatus.FORBIDDEN,
            f"This token acts for {caller.authority}, not for {' or '.join(authorities)}.",
        )


def require_global_admin() -> None:
    if not principal().is_global_admin:
        refuse(HTTPStatus.FORBIDDEN, "Only a global admin (a token with no authority) may do this.")


def refuse(status: HTTPStatus, detail: str) -> None:
    """Audit the refusal of the caller, then abort the request with it."""
    caller = principal()
    app_services().store.record_audit(
        None,
        "access_refused",
        {
            "status": status.value,
            "method": request.method,
            "path": request.path,
            "reason": detail,
            "caller": caller.describe(),
        },
    )
    abort(status, message=detail)
