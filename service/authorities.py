"""Administration of authorities and their adapters: the one place the API and the CLI call.

Callers decide who may act (the API by the caller's token, the CLI as the operator); these
functions check that what is asked makes sense, make the change through the store together
with its audit record, and return what it looks like now. Adapter secrets pass through on the
way to being sealed and are never returned, logged or put in an error message.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from marshmallow import Schema, ValidationError

from adapters import registry
from adapters.base import OutboundEnvelope, Receipt
from adapters.registry import AdapterConfigError, build_adapter
from contracts.api.authorities import BROKER_USER_PATTERN, AuthorityEditSchema, NewAuthoritySchema
from service.access import Principal
from service.bootstrap import Services
from service.delivery import checked_receipt, try_delivery
from service.domain.isotime import iso
from service.domain.storable import unstorable
from service.store.access import PublishesElsewhere
from service.store.organisations import DuplicateAuthority, UnknownAuthority
from service.store.store import Store

TEST_JWS_TYP = "caf-test+jws"  # not an envelope's typ, so no receiver can take it for one


class AdministrationError(Exception):
    """A request that cannot be carried out as asked; ``errors`` maps fields to messages."""

    def __init__(self, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


class NotFound(AdministrationError):
    pass


class Conflict(AdministrationError):
    pass


class Invalid(AdministrationError):
    pass


class NotPermitted(AdministrationError):
    """The caller's role and authority allow the call, but not what it asks for."""


def _load(schema: Schema, document: dict[str, Any]) -> dict[str, Any]:
    _storable(_schema=document)
    try:
        return schema.load(document)
    except ValidationError as exc:
        raise Invalid("Invalid request.", exc.messages) from exc


def _storable(**documents: Any) -> None:
    """Invalid, by field, for a document the store could not hold (``domain.storable``)."""
    errors = {
        name: [f"Not storable: {why}"] for name, d in documents.items() if (why := unstorable(d))
    }
    if errors:
        raise Invalid("Invalid request.", errors)


def public_jwks(document: Any) -> dict[str, Any]:
    """``document`` as a JWKS of public keys only; private or symmetric key material is refused.

    An authority's receipt keys are published to the relay, so a private key given here has
    leaked already; storing it would only spread it further.
    """
    try:
        keys = KeySet.import_key_set(document)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise Invalid("Not a usable JWKS.", {"jwks": [f"Not a usable JWKS: {exc}"]}) from exc
    if any(key.is_private for key in keys):
        message = "Holds private or symmetric key material; give the public keys only."
        raise Invalid("The JWKS holds a private key.", {"jwks": [message]})
    return keys.as_dict(private=False)


def _existing(store: Store, code: str) -> dict[str, Any]:
    view = store.organisations.view(code)
    if view is None:
        raise NotFound(f"No authority {code}.")
    return view


# -- authorities ---------------------------------------------------------------------------------


def authorities(store: Store) -> list[dict[str, Any]]:
    return store.organisations.summaries()


def authority(store: Store, code: str) -> dict[str, Any]:
    return _existing(store, code)


def add_authority(store: Store, document: dict[str, Any], *, by: Principal) -> dict[str, Any]:
    """Register an organisation beyond the seeded London authorities (health, police, ...)."""
    new = _load(NewAuthoritySchema(), document)
    jwks = public_jwks(new["jwks"]) if new.get("jwks") is not None else None
    try:
        store.organisations.add(new["code"], new["name"], new["kind"], jwks, by=by)
    except DuplicateAuthority as exc:
        raise Conflict(f"An authority {new['code']} exists already.") from exc
    return _existing(store, new["code"])


def edit_authority(
    store: Store, code: str, document: dict[str, Any], *, by: Principal
) -> dict[str, Any]:
    """Change name, kind or receipt keys; a null ``jwks`` removes the keys."""
    changes = _load(AuthorityEditSchema(), document)
    if changes.get("jwks") is not None:
        changes["jwks"] = public_jwks(changes["jwks"])
    try:
        store.organisations.edit(code, changes, by=by)
    except UnknownAuthority as exc:
        raise NotFound(f"No authority {code}.") from exc
    return _existing(store, code)


def set_publisher(store: Store, code: str, broker_user: str, *, by: Principal) -> dict[str, Any]:
    """Let RabbitMQ user ``broker_user`` publish events from ``code``, and from no other.

    A user already publishing for another authority is not silently moved: that would let one
    borough's admin take over another's case system.
    """
    if not re.fullmatch(BROKER_USER_PATTERN, broker_user):
        raise Invalid(
            "Not a broker user name.",
            {"broker_user": ["Must be letters, digits, '.', '_', '@' or '-', at most 128."]},
        )
    _existing(store, code)
    try:
        store.access.set_broker_publisher(broker_user, code, by=by)
    except PublishesElsewhere as exc:
        raise Conflict(f"{exc} Remove it there first.") from exc
    return _existing(store, code)


def remove_publisher(store: Store, code: str, broker_user: str, *, by: Principal) -> None:
    _existing(store, code)
    if not store.access.remove_broker_publisher(broker_user, code, by=by):
        raise NotFound(f"Broker user {broker_user} does not publish for {code}.")


# -- adapters -------------------------------------------------------------------------------------


def adapter(store: Store, code: str) -> dict[str, Any]:
    _existing(store, code)
    view = store.organisations.adapter(code)
    if view is None:
        raise NotFound(f"{code} has no adapter configured.")
    return view


def set_adapter(
    store: Store,
    code: str,
    adapter_type: str,
    settings: dict[str, Any],
    secrets: dict[str, Any],
    retry: dict[str, Any] | None,
    *,
    by: Principal,
) -> dict[str, Any]:
    """Replace the authority's adapter, checked against its type's schemas first.

    Settings that name a place on the relay's own disk (``Adapter.operator_settings``: a
    directory adapter's ``path``, an https adapter's ``ca_bundle``) only a global admin may give.
    """
    _existing(store, code)
    _storable(settings=settings, secrets=secrets, retry=retry)
    _may_give(store, code, adapter_type, settings, by)
    try:
        store.organisations.set_adapter(code, adapter_type, settings, secrets, retry, by=by)
    except AdapterConfigError as exc:
        raise Invalid(str(exc), exc.errors) from exc
    return adapter(store, code)


def _may_give(store: Store, code: str, name: str, settings: dict[str, Any], by: Principal) -> None:
    """Refuse a borough admin a setting only a global admin may give, unless it keeps the value
    already stored (a token rotated, retries changed, the operator's path left as it was)."""
    if not isinstance(settings, dict):
        return  # not an object: validating the configuration says so
    try:
        cls = registry.adapter_type(name)
    except AdapterConfigError:
        return  # an unknown or broken type: validating the configuration says so
    stored = store.organisations.adapter(code)
    kept = stored["settings"] if stored is not None and stored["type"] == name else {}
    given = sorted(
        setting
        for setting in cls.operator_settings
        if settings.get(setting) is not None and settings[setting] != kept.get(setting)
    )
    if given and not by.is_global_admin:
        raise NotPermitted(
            f"The {name} adapter's {', '.join(given)} names a place on the relay's own disk, "
            "which only a global admin may set: ask the relay's operator."
        )


def remove_adapter(store: Store, code: str, *, by: Principal) -> None:
    """Stop delivering to ``code``: its transfers wait in the outbox, or fail, as retries allow."""
    _existing(store, code)
    if not store.organisations.remove_adapter(code, by=by):
        raise NotFound(f"{code} has no adapter configured.")


def test_adapter(services: Services, code: str, *, by: Principal) -> dict[str, Any]:
    """Send a signed test envelope through the configured adapter and say what happened.

    The payload says ``"test": true`` and carries no case data; it is signed with its own
    ``typ``, so a recipient cannot mistake it for a transfer. No transfer is created.
    """
    store = services.store
    configured = adapter(store, code)
    test_id = str(uuid.uuid4())
    payload = {
        "test": True,
        "test_id": test_id,
        "to": {"code": code, "name": _existing(store, code)["name"]},
        "issued_at": iso(services.clock()),
        "note": "A caf-relay test delivery: not a case transfer, no case data.",
    }
    jws = services.keyring.sign(payload, typ=TEST_JWS_TYP)
    envelope = OutboundEnvelope(
        envelope_id=test_id,
        event_id=f"test-{test_id}",
        to_authority=code,
        jws=jws,
        sha256=hashlib.sha256(jws.encode()).hexdigest(),
    )

    def deliver() -> Receipt:
        setting = store.organisations.adapter_setting(code)
        if setting is None:  # removed since ``configured`` was read
            raise AdapterConfigError(f"No adapter is configured for {code}.")
        delivering = build_adapter(setting.adapter_type, setting.settings, setting.secrets)
        try:
            return delivering.deliver(envelope)
        finally:
            delivering.close()

    tried = try_delivery(deliver, envelope, configured["type"])
    delivered = tried.receipt is not None
    signed = tried.receipt.signed if delivered else None
    result = {
        "authority": code,
        "adapter_type": configured["type"],
        "test_id": test_id,
        "duration_ms": tried.duration_ms,
        "delivered": delivered,
        "retryable": None if delivered else tried.retryable,
        "detail": tried.detail,
        "receipt": checked_receipt(store, signed, envelope) if signed is not None else None,
    }
    store.record_audit(None, "adapter_tested", {**result, "by": by.describe()})
    return result


def rotate_secrets(store: Store, *, by: Principal) -> list[str]:
    """Re-encrypt every adapter's secrets under the first secrets key; returns the authorities.

    Afterwards the older keys can be dropped from CAF_RELAY_SECRETS_KEYS.
    """
    return store.organisations.rotate_secrets(by=by)
