"""Authorities and their adapters, as administrators read and change them.

Each change is one transaction with its audit record, naming who made it. Adapter secrets are
sealed before they are written and opened only for delivery (``adapter_setting``): a view names
the secrets that are set, never their values, and a rotation re-seals them without opening them.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError

from adapters.registry import AdapterConfigError, validate_config
from service.access import Principal
from service.domain.isotime import iso
from service.retry_settings import RetrySettingsSchema
from service.secrets import SecretBox, SecretsKeyError
from service.store import tables as t
from service.store.audit_log import AppendAudit, Transaction
from service.store.rows import upsert


class UnknownAuthority(KeyError):
    """An authority code the service does not know."""


class DuplicateAuthority(Exception):
    """An authority with this code is already registered."""


def _kids(jwks: dict[str, Any] | None) -> list[str]:
    return [str(key.get("kid")) for key in (jwks or {}).get("keys", [])]


@dataclass(frozen=True)
class AdapterSetting:
    authority: str
    adapter_type: str
    settings: dict[str, Any]
    secrets: dict[str, Any] = dataclass_field(repr=False)  # opened: never in a log or traceback
    updated_at: datetime


class Organisations:
    def __init__(
        self, transaction: Transaction, append_audit: AppendAudit, secret_box: SecretBox
    ) -> None:
        self._transaction = transaction
        self._append_audit = append_audit
        self._box = secret_box

    def set_adapter(
        self,
        authority: str,
        adapter_type: str,
        settings: dict[str, Any],
        secrets: dict[str, Any],
        retry: dict[str, Any] | None = None,
        *,
        by: Principal | None = None,
    ) -> None:
        """Validate and store an authority's adapter; secrets are sealed before they are written.

        ``retry`` overrides the service's default retry policy for this authority only; ``by`` is
        who set it, for the audit (None for set-up code such as the demo's).
        """
        settings, secrets = validate_config(adapter_type, settings, secrets)
        try:
            retry = RetrySettingsSchema().load(retry) if retry else None
        except ValidationError as exc:
            raise AdapterConfigError("Invalid retry settings.", {"retry": exc.messages}) from exc
        with self._transaction() as session:
            values = {
                "authority_code": authority,
                "adapter_type": adapter_type,
                "settings": settings,
                "secrets_sealed": self._box.seal(secrets),
                "retry": retry,
                "updated_at": datetime.now(UTC),
            }
            upsert(session, t.AdapterConfig, values)
            detail = {"authority": authority, "adapter_type": adapter_type}
            detail.update(secrets=sorted(secrets), by=by and by.describe())
            self._append_audit(session, None, "adapter_set", detail)

    def adapter_setting(self, authority: str) -> AdapterSetting | None:
        with self._transaction() as session:
            row = session.get(t.AdapterConfig, authority)
            if row is None:
                return None
            return AdapterSetting(
                authority=authority,
                adapter_type=row.adapter_type,
                settings=row.settings,
                secrets=self._box.open(row.secrets_sealed),
                updated_at=row.updated_at,
            )

    def summaries(self) -> list[dict[str, Any]]:
        with self._transaction() as session:
            rows = session.execute(
                sa.select(t.Authority, t.AdapterConfig.adapter_type)
                .outerjoin(t.AdapterConfig, t.AdapterConfig.authority_code == t.Authority.code)
                .order_by(t.Authority.code)
            )
            return [
                {"code": a.code, "name": a.name, "kind": a.kind, "adapter_type": adapter_type}
                for a, adapter_type in rows
            ]

    def view(self, code: str) -> dict[str, Any] | None:
        """One authority with its receipt keys, broker publishers and adapter type."""
        with self._transaction() as session:
            row = session.get(t.Authority, code)
            if row is None:
                return None
            adapter_type = session.scalar(
                sa.select(t.AdapterConfig.adapter_type).where(
                    t.AdapterConfig.authority_code == code
                )
            )
            publishers = session.scalars(
                sa.select(t.BrokerPublisher.broker_user)
                .where(t.BrokerPublisher.authority_code == code)
                .order_by(t.BrokerPublisher.broker_user)
            )
            return {
                "code": row.code,
                "name": row.name,
                "kind": row.kind,
                "jwks": row.jwks,
                "publishers": list(publishers),
                "adapter_configured": adapter_type is not None,
                "adapter_type": adapter_type,
            }

    def add(
        self, code: str, name: str, kind: str, jwks: dict[str, Any] | None, *, by: Principal
    ) -> None:
        try:
            with self._transaction() as session:
                if session.get(t.Authority, code) is not None:
                    raise DuplicateAuthority(code)
                session.add(t.Authority(code=code, name=name, kind=kind, jwks=jwks))
                session.flush()
                self._append_audit(
                    session,
                    None,
                    "authority_added",
                    {
                        "authority": code,
                        "name": name,
                        "kind": kind,
                        "kids": _kids(jwks),
                        "by": by.describe(),
                    },
                )
        except IntegrityError as exc:  # another admin added the same code at the same moment
            raise DuplicateAuthority(code) from exc

    def edit(self, code: str, changes: dict[str, Any], *, by: Principal) -> None:
        """Apply ``changes`` (any of name, kind, jwks; a None jwks removes the keys)."""
        with self._transaction() as session:
            row = session.get(t.Authority, code)
            if row is None:
                raise UnknownAuthority(code)
            for field, value in changes.items():
                setattr(row, field, value)
            detail: dict[str, Any] = {"authority": code, "changed": sorted(changes)}
            detail.update({f: changes[f] for f in ("name", "kind") if f in changes})
            if "jwks" in changes:
                detail["kids"] = _kids(changes["jwks"])
            self._append_audit(session, None, "authority_edited", {**detail, "by": by.describe()})

    # -- adapters -------------------------------------------------------------------------------

    def adapter(self, code: str) -> dict[str, Any] | None:
        """The adapter's configuration with the names of its secrets; never their values."""
        with self._transaction() as session:
            row = session.get(t.AdapterConfig, code)
            if row is None:
                return None
            try:
                secret_names, readable = sorted(self._box.open(row.secrets_sealed)), True
            except SecretsKeyError:
                secret_names, readable = [], False
            return {
                "authority": code,
                "type": row.adapter_type,
                "settings": row.settings,
                "retry": row.retry,
                "secrets": secret_names,
                "secrets_readable": readable,
                "updated_at": iso(row.updated_at),
            }

    def remove_adapter(self, code: str, *, by: Principal) -> bool:
        """Remove the adapter; False if there was none. The row is locked first, so of two
        admins removing it at once the second finds none: one ``adapter_removed`` record."""
        with self._transaction() as session:
            row = session.get(t.AdapterConfig, code, with_for_update=True)
            if row is None:
                return False
            session.delete(row)
            self._append_audit(
                session,
                None,
                "adapter_removed",
                {"authority": code, "adapter_type": row.adapter_type, "by": by.describe()},
            )
            return True

    def rotate_secrets(self, *, by: Principal) -> list[str]:
        """Re-encrypt every adapter's secrets under the first key; all or none of them.

        Raises ``SecretsKeyError`` naming the authority whose secrets no configured key opens,
        and rotates nothing then, so the old key is still needed and must not be dropped.
        """
        with self._transaction() as session:
            # Locked: an adapter set meanwhile would otherwise get its old secrets back.
            rows = session.scalars(
                sa.select(t.AdapterConfig)
                .order_by(t.AdapterConfig.authority_code)
                .with_for_update()
            ).all()
            for row in rows:
                try:
                    row.secrets_sealed = self._box.rotate(row.secrets_sealed)
                except SecretsKeyError as exc:
                    raise SecretsKeyError(f"{row.authority_code}: {exc}") from exc
            rotated = [row.authority_code for row in rows]
            self._append_audit(
                session,
                None,
                "adapter_secrets_rotated",
                {"authorities": rotated, "by": by.describe()},
            )
            return rotated
