"""Changing a stored transfer behind the relay's back, as someone with access to its database
could: with SQL on a connection of its own, not through the store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

_transfers = sa.table(
    "transfers",
    sa.column("event_id", sa.String()),
    sa.column("decision", sa.JSON()),
    sa.column("event", sa.JSON()),
)


def rewrite_transfer(url: str, event_id: str, change: Callable[[Any], dict[str, Any]]) -> None:
    """Set the columns ``change`` returns, given the transfer's row (``decision``, ``event``)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            row = conn.execute(sa.select(_transfers).where(_transfers.c.event_id == event_id)).one()
            conn.execute(
                sa.update(_transfers).where(_transfers.c.event_id == event_id).values(**change(row))
            )
    finally:
        engine.dispose()


def necessity_rewritten(row: Any) -> dict[str, Any]:
    """The transfer's decision with its judgement's reasons rewritten: why it was decided."""
    decision = row.decision
    decision["judgement"]["reasons"]["necessity"] = "The family asked us not to; nothing else."
    return {"decision": decision}
