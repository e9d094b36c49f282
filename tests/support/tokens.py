"""API tokens for tests: a real token of each role, made through the store as an admin would."""

from __future__ import annotations

from datetime import timedelta

from service.access import OPERATOR, TOKEN_DAYS, Principal, Role
from service.bootstrap import Services
from service.store.access import IssuedToken


def bearer(services: Services, role: Role | str, authority: str | None = None) -> dict[str, str]:
    """Authorization headers for a new token with ``role`` acting for ``authority``, lasting
    as long as one made at the command line does by default."""
    return headers_for(issue(services, role, authority))


def issue(services: Services, role: Role | str, authority: str | None = None) -> IssuedToken:
    """A new token as ``bearer`` makes it, for a test that also needs its id; its name is
    ``token_name(role, authority)``."""
    now = services.clock()
    return services.store.access.create_token(
        name=token_name(role, authority),
        role=Role(role),
        authority=authority,
        now=now,
        expires_at=now + timedelta(days=TOKEN_DAYS),
        by=OPERATOR,
    )


def token_name(role: Role | str, authority: str | None = None) -> str:
    return f"test {role} {authority or 'global'}"


def headers_for(issued: IssuedToken) -> dict[str, str]:
    return {"Authorization": f"Bearer {issued.secret}"}


def reader(authority: str | None = None) -> Principal:
    """Who reads a child's record in a test that calls the services directly: an auditor of
    ``authority``, or the operator at the command line for None."""
    if authority is None:
        return OPERATOR
    return Principal(token_name(Role.AUDITOR, authority), Role.AUDITOR, authority, "tok-auditor")
