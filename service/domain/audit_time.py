"""How far the audit's times run backwards along its seq, so that a search from a time can
start at its first record without reading every record before it.

A record's time is taken when it is appended, its seq when its transaction commits; as
transactions commit in another order than they appended, and the clocks of several hosts
differ, the times along seq mostly rise but now and then fall back. ``TimeOrder`` keeps the
latest time so far and the most any record fell behind the latest before it (the lag).

Why that bounds the search: let ``x`` be the record with the earliest time at or after
``since`` and ``f`` the first record, in seq order, with a time at or after ``since``. If ``f``
is not ``x`` it comes before ``x``, and ``x`` fell behind ``f`` by the lag at most; so ``f``'s
time lies between ``since`` and ``x``'s time plus the lag, and ``f`` is the lowest seq of the
records in that span. No record before ``f`` is that recent, so a search may start at ``f``.

And a search up to ``until`` may stop before the first record ``z`` with a time at or after
``until`` plus the lag: a record after ``z`` fell behind ``z``'s time by the lag at most, so it
too is at or after ``until``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class TimeOrder:
    latest: datetime | None = None  # None before the first record
    lag: timedelta = timedelta(0)

    def after(self, times: Iterable[datetime]) -> TimeOrder:
        """The order once records with ``times`` (in seq order) follow."""
        latest, lag = self.latest, self.lag
        for moment in times:
            if latest is None or moment > latest:
                latest = moment
            else:
                lag = max(lag, latest - moment)
        return TimeOrder(latest, lag)

    def past(self, until: datetime) -> datetime | None:
        """The time whose first record, in seq order, ends a search up to ``until``: from it
        on, every record is at or after ``until`` (module docstring). None if that time is past
        the end of the calendar (``until`` late in year 9999): no record is that late, so the
        search reads on to the last."""
        try:
            return until + self.lag
        except OverflowError:
            return None

    def first_span(self, earliest: datetime) -> datetime:
        """The end of the span of times in which the first record from a time lies, given
        ``earliest``, the earliest time at or after it (module docstring)."""
        return earliest + self.lag
