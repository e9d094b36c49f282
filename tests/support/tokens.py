"""API tokens for tests: a real token of each role, made through the store as an admin would."""

from __future__ import annotations

from datetime import timedelta

from service.access import OPERATOR, TOKEN_DAYS, Role
from service.bootstrap import Services


def bearer(services: Services, role: Role | str, authority: str | None = None) -> dict[str, str]:
    """Authorization headers for a new token with ``role`` acting for ``authority``, lasting
    as long as one made at the command line does by default."""
    now = services.clock()
    issued = services.store.access.create_token(
        name=f"test {role} {authority or 'global'}",
        role=Role(role),
        authority=authority,
        now=now,
        expires_at=now + timedelta(days=TOKEN_DAYS),
        by=OPERATOR,
    )
    return {"Authorization": f"Bearer {issued.secret}"}
