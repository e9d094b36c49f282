"""Finds adapter types by entry point and turns stored configuration into adapters."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from marshmallow import ValidationError

from adapters.base import Adapter

ENTRY_POINT_GROUP = "caf_relay.adapters"


class AdapterConfigError(ValueError):
    """Configuration that no adapter could be built from; ``errors`` maps fields to messages."""

    def __init__(self, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


def adapter_type(name: str) -> type[Adapter]:
    """Load just the named adapter type, so one broken third-party adapter harms no other."""
    found = entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not found:
        known = ", ".join(sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)))
        raise AdapterConfigError(
            f"Unknown adapter type {name!r}; installed: {known}.",
            {"type": [f"Must be one of: {known}."]},
        )
    try:
        return next(iter(found)).load()
    except Exception as exc:
        raise AdapterConfigError(f"Adapter type {name!r} cannot be loaded: {exc}") from exc


def validate_config(
    name: str, settings: dict[str, Any], secrets: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a configuration against its adapter's schemas; return the cleaned settings/secrets."""
    cls = adapter_type(name)
    errors: dict[str, Any] = {}
    try:
        settings = cls.settings_schema().load(settings)
    except ValidationError as exc:
        errors["settings"] = exc.messages
    try:
        secrets = cls.secrets_schema().load(secrets)
    except ValidationError as exc:
        errors["secrets"] = exc.messages
    if errors:
        raise AdapterConfigError(f"Invalid {name} adapter configuration.", errors)
    return settings, secrets


def build_adapter(name: str, settings: dict[str, Any], secrets: dict[str, Any]) -> Adapter:
    settings, secrets = validate_config(name, settings, secrets)
    return adapter_type(name).from_config(settings, secrets)
