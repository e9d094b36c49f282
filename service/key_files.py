"""Key files made by whichever process needs them first, for every process to read.

The web app's workers and the relay worker may all start at once on a new instance folder, and
each generates the keys it finds missing. A key is therefore written to a private draft, synced,
and linked into place: a process reading at the same moment sees no file or the whole of one,
never half of one, and of two racing, the first link wins and the other's key is discarded
before anything was done with it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def create_once(path: Path, content: bytes) -> bool:
    """Put ``content`` at ``path``, readable by its owner only, unless a file is already there;
    True if this call put it there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            return False
        return True
    finally:
        draft.unlink()


def read_key_file(path: Path, what: str, new: Callable[[], bytes] | None = None) -> bytes:
    """The bytes of the key file at ``path``, first made with ``new()`` if it is missing and
    ``new`` is given. A file that cannot be made or read (another user's, say) is a
    ``ValueError`` naming it, which every entrypoint reports in one line."""
    try:
        if new is not None and not path.exists():
            create_once(path, new())
    except OSError as exc:
        raise ValueError(f"{what} file {path} cannot be written: {exc.strerror}.") from exc
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{what} file {path} cannot be read: {exc.strerror}.") from exc
