"""Delivery groups that finish together are recorded in one transaction, and one group whose
record fails sinks no other."""

import threading
import time

import pytest

from service.combined_records import CombinedRecords
from service.store.engine import StoreUnavailable


class _Transactions:
    """Stands in for ``Outbox.record``: keeps what each call stored; the first call waits until
    ``release`` is set, so that other groups finish meanwhile."""

    def __init__(self, refuse: str | None = None, error: Exception | None = None) -> None:
        self.calls: list[list[str]] = []
        self.release, self.writing = threading.Event(), threading.Event()
        self._refuse, self._error = refuse, error

    def __call__(self, settled, unattempted) -> None:
        self.writing.set()
        if not self.calls:
            self.release.wait(5)
        items = [*settled, *unattempted]
        self.calls.append(items)
        if self._error is not None:
            raise self._error
        if self._refuse in items:
            raise ValueError(f"cannot record {self._refuse}")


def _until(condition) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.001)


def _record_in_threads(records: CombinedRecords, transactions: _Transactions, groups):
    """Record the first group, then the others while the first is being written."""
    errors: dict[str, Exception | None] = {}

    def record(group):
        try:
            records.record(group)
            errors[group[0]] = None
        except Exception as exc:
            errors[group[0]] = exc

    first = threading.Thread(target=record, args=(groups[0],))
    first.start()
    _until(lambda: transactions.writing.is_set())
    others = [threading.Thread(target=record, args=(g,)) for g in groups[1:]]
    for thread in others:
        thread.start()
    _until(lambda: len(records._waiting) == len(others))  # all queued behind the first
    transactions.release.set()
    for thread in [first, *others]:
        thread.join(5)
    return errors


def test_groups_that_finish_while_one_is_written_go_together_into_the_next_transaction():
    transactions = _Transactions()
    records = CombinedRecords(transactions)

    errors = _record_in_threads(records, transactions, [["a1"], ["b1", "b2"], ["c1"]])

    assert errors == {"a1": None, "b1": None, "c1": None}
    first, combined = transactions.calls
    assert first == ["a1"]
    assert sorted(combined) == ["b1", "b2", "c1"]


def test_a_group_that_cannot_be_recorded_fails_alone():
    transactions = _Transactions(refuse="b2")
    records = CombinedRecords(transactions)

    errors = _record_in_threads(records, transactions, [["a1"], ["b1", "b2"], ["c1"]])

    assert errors["a1"] is None and errors["c1"] is None
    assert str(errors["b1"]) == "cannot record b2"
    assert ["c1"] in transactions.calls


def test_every_waiting_group_hears_that_the_database_is_unavailable():
    transactions = _Transactions(error=StoreUnavailable("down"))
    records = CombinedRecords(transactions)

    errors = _record_in_threads(records, transactions, [["a1"], ["b1"], ["c1"]])

    assert {type(e) for e in errors.values()} == {StoreUnavailable}
    assert len(transactions.calls) == 2, "no group was retried alone while the database is down"


def test_a_group_alone_is_recorded_at_once_and_hears_why_it_was_not():
    transactions = _Transactions(refuse="b1")
    transactions.release.set()
    records = CombinedRecords(transactions)

    records.record(["a1"], ["a2"])
    with pytest.raises(ValueError, match="cannot record b1"):
        records.record(["b1"])

    assert transactions.calls == [["a1", "a2"], ["b1"]]
