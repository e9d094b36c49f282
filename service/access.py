"""Who may do what: API tokens, their roles and the one authority each acts for.

Kept free of Flask and SQLAlchemy so the rules can be read, and tested, on their own. A token is
a random secret shown once when made; only its SHA-256 is stored, which is enough for a secret
of 256 random bits (no password-style stretching is needed to stop guessing). A presented token
is looked up by that digest: how long the lookup takes could tell a caller at most how much of
the digest of what they sent matches a stored one, which brings them no nearer a secret, so no
constant-time comparison is needed.

A token expires: one copied into a script, a ticket or a laptop that is then forgotten stops
working on its own, not only when someone remembers to revoke it. The default of 90 days bounds
how long a leaked token is good for to a quarter, while leaving a borough's case-system supplier
time to fit a new one; a year is the most, for a supplier that cannot deploy more often. No
token is made that never expires: a case system changes tokens without a gap by being given the
new one before the old one is revoked (README, "HTTP API and access"). Tokens made before expiry
existed (migration 0009) were given one by migration 0013, 90 days after that upgrade.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from service.domain.isotime import iso

TOKEN_PREFIX = "cafr_"
TOKEN_DAYS = 90  # how long a token lasts unless its maker says otherwise
MAX_TOKEN_DAYS = 365


class Role(StrEnum):
    ADMIN = "admin"  # configures adapters, authorities, ISPs; global when it has no authority
    PUBLISHER = "publisher"  # a case system: sends events from its own authority
    PRACTITIONER = "practitioner"  # sees and decides its own authority's transfers
    AUDITOR = "auditor"  # reads the audit trail of its own authority
    # reads /metrics only, counts and no case: a global one (Prometheus) the whole deployment's
    MONITOR = "monitor"


@dataclass(frozen=True)
class Principal:
    """The caller an API request or a CLI command acts as."""

    name: str
    role: Role
    authority: str | None  # None only for a global admin or monitor
    token_id: str | None = None  # None for the operator at the command line

    @property
    def is_global_admin(self) -> bool:
        return self.role is Role.ADMIN and self.authority is None

    def acts_for(self, *authorities: str) -> bool:
        """True if the caller may act for (any one of) ``authorities``."""
        return self.is_global_admin or self.authority in authorities

    def describe(self) -> dict[str, str | None]:
        """Who it was, for the audit: never the token itself."""
        return {
            "name": self.name,
            "role": self.role.value,
            "authority": self.authority,
            "token_id": self.token_id,
        }


OPERATOR = Principal(name="command line", role=Role.ADMIN, authority=None)


def check_scope(role: Role, authority: str | None) -> None:
    """A token's role and authority must fit: only an admin or a monitor may be global."""
    if authority is None and role not in (Role.ADMIN, Role.MONITOR):
        raise ValueError(f"A {role.value} token must name the one authority it acts for.")


def new_token() -> tuple[str, str, str]:
    """A fresh token as (token id, the secret to hand over once, its digest to store)."""
    token_id = secrets.token_hex(6)
    secret = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    return token_id, secret, token_digest(secret)


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenExpired(Exception):
    """A token presented after its expiry: refused as an unknown one is, but saying so, so that
    its holder asks for a new one instead of looking for a typing mistake."""

    def __init__(self, expired_at: datetime) -> None:
        super().__init__(f"This token expired at {iso(expired_at)}; ask an admin for a new one.")
        self.expired_at = expired_at


def check_not_expired(expires_at: datetime, now: datetime) -> None:
    """Raise TokenExpired from ``expires_at`` on."""
    if now >= expires_at:
        raise TokenExpired(expires_at)
