"""The embedded queue's dead letters straight from the table: what retention tests need to see
what is kept, and to have a letter arrive earlier than the test ran; and a table that refuses
them, as a constraint would, for the embedded queue's tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


# A trigger refusing every new letter as a constraint violation: an IntegrityError, a fault the
# store does not take for an outage, on either database.
_REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse_dead_letters BEFORE INSERT ON dead_letters "
        "BEGIN SELECT RAISE(ABORT, 'dead letters refused'); END",
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_dead_letter() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'dead letters refused' USING ERRCODE = 'check_violation'; END $$",
        "CREATE TRIGGER refuse_dead_letters BEFORE INSERT ON dead_letters "
        "FOR EACH ROW EXECUTE FUNCTION refuse_dead_letter()",
    ],
}
_ALLOW = {
    "sqlite": ["DROP TRIGGER refuse_dead_letters"],
    "postgresql": [
        "DROP TRIGGER refuse_dead_letters ON dead_letters",
        "DROP FUNCTION refuse_dead_letter()",
    ],
}


@contextmanager
def refused(store: Store) -> Iterator[None]:
    """Every dead letter the store adds fails with an IntegrityError while entered."""
    engine = sa.create_engine(store.url)
    _run(engine, _REFUSE[engine.dialect.name])
    try:
        yield
    finally:
        _run(engine, _ALLOW[engine.dialect.name])
        engine.dispose()


def _run(engine: sa.Engine, statements: list[str]) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
