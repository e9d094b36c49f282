"""Settings, read once from the environment; the README's configuration table lists them all.

With nothing set the service runs on the embedded default: a SQLite file, an in-process queue,
and a signing key and secrets key generated into the instance folder on first run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from service.secrets import SecretBox
from service.signing import KeyRing

PREFIX = "CAF_RELAY_"


@dataclass(frozen=True)
class Settings:
    instance_dir: Path
    database_url: str
    broker_url: str | None
    signing_key_file: Path
    secrets_keys: tuple[str, ...]
    api_token: str | None
    max_event_bytes: int
    prefetch: int
    log_level: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(PREFIX + name, "").strip()
            return value or default

        instance = Path(get("INSTANCE_DIR", "instance")).resolve()
        return cls(
            instance_dir=instance,
            database_url=get("DATABASE_URL", f"sqlite:///{instance / 'caf-relay.sqlite3'}"),
            broker_url=get("BROKER_URL"),
            signing_key_file=Path(get("SIGNING_KEY_FILE", str(instance / "signing-key.pem"))),
            secrets_keys=tuple(k.strip() for k in (get("SECRETS_KEYS") or "").split(",") if k),
            api_token=get("API_TOKEN"),
            max_event_bytes=_positive_int(get("MAX_EVENT_BYTES", "262144"), "MAX_EVENT_BYTES"),
            prefetch=_positive_int(get("PREFETCH", "32"), "PREFETCH"),
            log_level=get("LOG_LEVEL", "INFO").upper(),
        )

    def keyring(self) -> KeyRing:
        """The signing key; generated into the instance folder only when none was configured."""
        default = self.signing_key_file == self.instance_dir / "signing-key.pem"
        return KeyRing.from_file(self.signing_key_file, create=default)

    def secret_box(self) -> SecretBox:
        if self.secrets_keys:
            return SecretBox(list(self.secrets_keys))
        return SecretBox.from_file(self.instance_dir / "secrets.key", create=True)


def _positive_int(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"{PREFIX}{name} must be a positive integer, not {value!r}.")
    return number
