"""The embedded queue's dead letters straight from the table: what retention tests need to see
what is kept, and to have a letter arrive earlier than the test ran."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from service.store import tables as t
from service.store.store import Store


def kept(store: Store) -> list[tuple[datetime, bytes]]:
    """(received_at, body) of each dead letter kept, the first kept first."""
    with store._transaction() as session:
        letters = session.scalars(sa.select(t.DeadLetter).order_by(t.DeadLetter.id))
        return [(letter.received_at, letter.body) for letter in letters]


def age(store: Store, body: bytes, days: int) -> None:
    """Make the letter holding ``body`` arrive ``days`` earlier, as if kept that much longer."""
    with store._transaction() as session:
        for letter in session.scalars(sa.select(t.DeadLetter).where(t.DeadLetter.body == body)):
            letter.received_at -= timedelta(days=days)
