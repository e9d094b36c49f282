"""Row helpers the store's parts share."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.store import tables as t


def insert_if_absent(session: Session, table: type[t.Base], values: dict) -> None:
    """Insert a row unless one with its primary key exists (another process may race us)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(table).values(**values).on_conflict_do_nothing())
