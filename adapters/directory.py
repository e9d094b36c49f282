"""Delivers into a folder, e.g. a share a borough's case system watches or an SFTP drop.

The file appears under its final name only once complete and on disk (write to a temporary file
in the same folder, fsync, rename), so a watcher never reads half an envelope.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from marshmallow import Schema, fields, validate

from adapters.base import Adapter, DeliveryFailed, OutboundEnvelope, Receipt


class DirectorySettingsSchema(Schema):
    path = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=1024),
            validate.Regexp(r"^/", error="Must be an absolute path."),
        ],
        metadata={"description": "Absolute folder path; created when missing."},
    )


class NoSecretsSchema(Schema):
    """An adapter with nothing secret accepts no secret fields at all."""


class DirectoryAdapter(Adapter):
    settings_schema = DirectorySettingsSchema
    secrets_schema = NoSecretsSchema
    operator_settings = frozenset({"path"})

    def __init__(self, path: Path) -> None:
        self._path = path

    @classmethod
    def from_config(cls, settings: dict[str, Any], secrets: dict[str, Any]) -> DirectoryAdapter:
        return cls(Path(settings["path"]))

    def deliver(self, envelope: OutboundEnvelope) -> Receipt:
        target = self._path / f"{envelope.envelope_id}.json"
        try:
            self._path.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self._path, prefix=".", suffix=".partial")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as file:
                    file.write(envelope.jws)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            _fsync_directory(self._path)
        except OSError as exc:
            raise DeliveryFailed(
                f"Cannot write {target}: {exc.strerror or exc}", retryable=True
            ) from exc
        return Receipt(f"written to {target}")


def _fsync_directory(path: Path) -> None:
    """Make the rename itself durable, not only the file's content."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
