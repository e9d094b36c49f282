"""API tokens and broker publishers: who the service lets in, as the store keeps them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from service.access import (
    Principal,
    Role,
    check_not_expired,
    check_scope,
    new_token,
    token_digest,
)
from service.domain.isotime import iso
from service.store import tables as t
from service.store.audit_log import AppendAudit, Transaction
from service.store.organisations import UnknownAuthority
from service.store.rows import insert_or_keep


class PublishesElsewhere(Exception):
    """The broker user publishes for another authority already."""

    def __init__(self, broker_user: str, authority: str) -> None:
        super().__init__(f"Broker user {broker_user} publishes for {authority}.")
        self.broker_user = broker_user
        self.authority = authority


@dataclass(frozen=True)
class IssuedToken:
    token_id: str
    secret: str  # shown once, to the one who made it; never stored


class Access:
    def __init__(self, transaction: Transaction, append_audit: AppendAudit) -> None:
        self._transaction = transaction
        self._append_audit = append_audit

    def create_token(
        self,
        *,
        name: str,
        role: Role,
        authority: str | None,
        now: datetime,
        expires_at: datetime,
        by: Principal,
    ) -> IssuedToken:
        check_scope(role, authority)
        token_id, secret, digest = new_token()
        with self._transaction() as session:
            if authority is not None and session.get(t.Authority, authority) is None:
                raise UnknownAuthority(authority)
            session.add(
                t.ApiToken(
                    token_id=token_id,
                    name=name,
                    role=role.value,
                    authority_code=authority,
                    digest=digest,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            self._append_audit(
                session,
                None,
                "token_created",
                {
                    "token_id": token_id,
                    "role": role.value,
                    "authority": authority,
                    "expires_at": iso(expires_at),
                    "by": by.describe(),
                },
            )
        return IssuedToken(token_id, secret)

    def principal(self, secret: str, *, now: datetime) -> Principal | None:
        """The caller a presented token stands for; None if it is unknown or revoked, and
        TokenExpired if it has expired by ``now``: the one query finds it either way."""
        with self._transaction() as session:
            row = session.scalar(
                sa.select(t.ApiToken).where(
                    t.ApiToken.digest == token_digest(secret), t.ApiToken.revoked_at.is_(None)
                )
            )
            if row is None:
                return None
            check_not_expired(row.expires_at, now)
            return Principal(row.name, Role(row.role), row.authority_code, row.token_id)

    def tokens(self) -> list[dict]:
        with self._transaction() as session:
            rows = session.scalars(sa.select(t.ApiToken).order_by(t.ApiToken.created_at))
            return [
                {
                    "token_id": row.token_id,
                    "name": row.name,
                    "role": row.role,
                    "authority": row.authority_code,
                    "created_at": iso(row.created_at),
                    "expires_at": iso(row.expires_at),
                    "revoked_at": iso(row.revoked_at) if row.revoked_at else None,
                }
                for row in rows
            ]

    def revoke_token(self, token_id: str, *, now: datetime, by: Principal) -> bool:
        """Revoke a token at once; False if there is no such live token.

        The row is locked first, so of two admins revoking it at once the second finds it
        revoked: one ``token_revoked`` record, and the revocation time is the first's.
        """
        with self._transaction() as session:
            row = session.get(t.ApiToken, token_id, with_for_update=True)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = now
            self._append_audit(
                session, None, "token_revoked", {"token_id": token_id, "by": by.describe()}
            )
            return True

    # -- broker publishers ---------------------------------------------------------------------

    def set_broker_publisher(self, broker_user: str, authority: str, *, by: Principal) -> None:
        """Let ``broker_user`` publish for ``authority``; ``PublishesElsewhere`` if it publishes
        for another authority, even one named at this very moment by another admin: a user is
        never moved from one authority to another, which would hand one borough's case system
        to another's admin. The row as stored, locked, is checked in this transaction."""
        with self._transaction() as session:
            if session.get(t.Authority, authority) is None:
                raise UnknownAuthority(authority)
            named = {"broker_user": broker_user, "authority_code": authority}
            current = insert_or_keep(session, t.BrokerPublisher, named, "authority_code")
            if current != authority:
                raise PublishesElsewhere(broker_user, current)
            self._append_audit(
                session,
                None,
                "broker_publisher_set",
                {"broker_user": broker_user, "authority": authority, "by": by.describe()},
            )

    def remove_broker_publisher(self, broker_user: str, authority: str, *, by: Principal) -> bool:
        """Stop ``broker_user`` publishing for ``authority``; False if it does not (any more):
        the row is locked and checked here, so that a user moved to another authority
        meanwhile is not removed from there."""
        with self._transaction() as session:
            row = session.get(t.BrokerPublisher, broker_user, with_for_update=True)
            if row is None or row.authority_code != authority:
                return False
            session.delete(row)
            self._append_audit(
                session,
                None,
                "broker_publisher_removed",
                {"broker_user": broker_user, "authority": row.authority_code, "by": by.describe()},
            )
            return True
