"""Who may do what: API tokens, their roles and the one authority each acts for.

Kept free of Flask and SQLAlchemy so the rules can be read, and tested, on their own. A token is
a random secret shown once when made; only its SHA-256 is stored, which is enough for a secret
of 256 random bits (no password-style stretching is needed to stop guessing).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

TOKEN_PREFIX = "cafr_"


class Role(StrEnum):
    ADMIN = "admin"  # configures adapters, authorities, ISPs; global when it has no authority
    PUBLISHER = "publisher"  # a case system: sends events from its own authority
    PRACTITIONER = "practitioner"  # sees and decides its own authority's transfers
    AUDITOR = "auditor"  # reads the audit trail of its own authority


@dataclass(frozen=True)
class Principal:
    """The caller an API request or a CLI command acts as."""

    name: str
    role: Role
    authority: str | None  # None only for a global admin
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
    """A token's role and authority must fit: only an admin may be global."""
    if authority is None and role is not Role.ADMIN:
        raise ValueError(f"A {role.value} token must name the one authority it acts for.")


def new_token() -> tuple[str, str, str]:
    """A fresh token as (token id, the secret to hand over once, its digest to store)."""
    token_id = secrets.token_hex(6)
    secret = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    return token_id, secret, token_digest(secret)


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
