"""Encrypts adapter secrets at rest with Fernet; several keys allow rotation.

The first key encrypts; every key decrypts, so an operator rotates by putting a new key in
front and dropping the old one once everything stored has been rewritten. Ciphertext never
leaves the store and plaintext never reaches a log or an API response.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from service.key_files import read_key_file

UNREADABLE = "Stored adapter secrets cannot be decrypted with the configured keys."


class SecretsKeyError(ValueError):
    """No usable key, or stored secrets that none of the configured keys can open."""


class SecretBox:
    def __init__(self, keys: list[str], source: str = "The secrets keys") -> None:
        """``source`` names where the keys came from, for an operator told one is wrong."""
        if not keys:
            raise SecretsKeyError("At least one Fernet key is needed to encrypt adapter secrets.")
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        except ValueError as exc:
            raise SecretsKeyError(
                f"{source} holds a key that is not a valid Fernet key: {exc}"
            ) from exc

    @classmethod
    def from_file(cls, path: Path, *, create: bool = False) -> SecretBox:
        """Keys from a file, one a line; with ``create``, a new file with one key if absent."""
        new = (lambda: Fernet.generate_key() + b"\n") if create else None
        lines = read_key_file(path, "Secrets key", new).decode().splitlines()
        return cls([line.strip() for line in lines if line.strip()], f"Secrets key file {path}")

    def seal(self, secrets: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode()

    def rotate(self, token: str) -> str:
        """The same secrets sealed again under the first key, without exposing them."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretsKeyError(UNREADABLE) from exc

    def open(self, token: str) -> dict[str, Any]:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise SecretsKeyError(UNREADABLE) from exc
