"""Records the outcomes of delivery groups that finish together in one transaction.

Every delivery thread records its group's attempts before it takes another, so nothing is
delivered twice for want of a record. Recording a group costs a transaction, a turn at the
audit chain's head and a commit whatever its size, and groups are small when deliveries keep up
with intake. So while one thread writes, the groups that finish meanwhile queue up and the next
thread to write takes them all: each thread still returns only once its own outcomes are stored
(or raises why they are not), as with a transaction of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from service.store.engine import StoreUnavailable
from service.store.outbox import Claimed, Settled

log = logging.getLogger(__name__)

# Outbox.record: True if envelopes wait behind those it recorded.
Record = Callable[[Sequence[Settled], Sequence[Claimed]], bool]


@dataclass
class _Group:
    settled: Sequence[Settled]
    unattempted: Sequence[Claimed]
    done: bool = False
    error: Exception | None = None
    waiting_behind: bool = False


class CombinedRecords:
    def __init__(self, record: Record) -> None:
        self._record = record
        self._turn = threading.Condition()
        self._waiting: list[_Group] = []
        self._writing = False

    def record(self, settled: Sequence[Settled], unattempted: Sequence[Claimed] = ()) -> bool:
        """Store one group's outcomes, with any others waiting; raise if they were not. True if
        envelopes may wait behind them (or behind those stored with them)."""
        group = _Group(settled, unattempted)
        with self._turn:
            self._waiting.append(group)
            while self._writing and not group.done:
                self._turn.wait()
            if not group.done:
                self._writing = True
                batch, self._waiting = self._waiting, []
        if not group.done:
            try:
                self._write(batch)
            finally:
                with self._turn:
                    self._writing = False
                    self._turn.notify_all()
        if group.error is not None:
            raise group.error
        return group.waiting_behind

    def _write(self, batch: list[_Group]) -> None:
        """One transaction for the batch; if it fails other than for the database being
        unavailable, each group on its own, so that one group's fault sinks no other."""
        try:
            waiting_behind = self._record(
                [s for group in batch for s in group.settled],
                [c for group in batch for c in group.unattempted],
            )
        except StoreUnavailable as exc:
            self._finish(batch, exc)
        except Exception as exc:
            if len(batch) == 1:
                self._finish(batch, exc)
                return
            log.warning("recording %d groups together failed (%r); each alone", len(batch), exc)
            for group in batch:
                try:
                    self._finish([group], None, self._record(group.settled, group.unattempted))
                except Exception as alone:
                    self._finish([group], alone)
        else:
            self._finish(batch, None, waiting_behind)

    @staticmethod
    def _finish(batch: list[_Group], error: Exception | None, waiting_behind: bool = False) -> None:
        for group in batch:
            group.error, group.waiting_behind, group.done = error, waiting_behind, True
