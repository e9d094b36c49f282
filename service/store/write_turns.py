"""One SQLite transaction at a time across this machine's processes.

SQLite lets one transaction write at a time, and every store transaction starts with ``BEGIN
IMMEDIATE``. A connection that finds the lock taken sleeps in SQLite's busy handler, up to 100
ms a try, however soon the lock is freed. The worker's intake and its delivery process, the web
app and a second worker all write the one file, so each store transaction first takes its turn
here: a thread lock within the process, then an ``flock`` on a file beside the database, asked
for again every millisecond while another process holds it (four processes writing in turn
committed more transactions a second so than with a blocking ``flock``). SQLite's own locking
still guards the file against anything that does not queue here.

A turn is waited for at most ``BUSY_SECONDS``, as the write lock is: a blocking ``flock`` has
no time limit, and a call behind another process's long write would wait as long as it wrote.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time

from sqlalchemy.engine import make_url

from service.store.engine import BUSY_SECONDS, StoreUnavailable

RETRY_SECONDS = 0.001


class WriteTurns:
    def __init__(self, url: str) -> None:
        self._threads = threading.RLock()
        self._depth = 0  # a thread may nest transactions; the file lock is taken once
        database = make_url(url).database
        self._fd = None
        if database and database != ":memory:":
            self._fd = os.open(f"{database}.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        deadline = time.monotonic() + BUSY_SECONDS
        if not self._threads.acquire(timeout=BUSY_SECONDS):
            raise self._busy()
        if self._depth == 0 and self._fd is not None:
            try:
                self._lock_file(deadline)
            except BaseException:
                self._threads.release()
                raise
        self._depth += 1

    def __exit__(self, *_) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def _lock_file(self, deadline: float) -> None:
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise self._busy() from None
            time.sleep(RETRY_SECONDS)

    @staticmethod
    def _busy() -> StoreUnavailable:
        return StoreUnavailable(
            f"The database is busy: this call waited {BUSY_SECONDS} s for its turn to write."
        )

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
