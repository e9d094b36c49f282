"""One SQLite transaction at a time across this machine's processes, queued in the kernel.

SQLite lets one transaction write at a time, and every store transaction starts with ``BEGIN
IMMEDIATE``. A connection that finds the lock taken sleeps in SQLite's busy handler, up to 100
ms a try, however soon the lock is freed. The worker's intake and its delivery process, the web
app and a second worker all write the one file, so each store transaction first takes its turn
here: a thread lock within the process, then an ``flock`` on a file beside the database, which
the kernel hands to the next waiter the moment it is released. SQLite's own locking still
guards the file against anything that does not queue here.
"""

from __future__ import annotations

import fcntl
import os
import threading

from sqlalchemy.engine import make_url


class WriteTurns:
    def __init__(self, url: str) -> None:
        self._threads = threading.RLock()
        self._depth = 0  # a thread may nest transactions; the file lock is taken once
        database = make_url(url).database
        self._fd = None
        if database and database != ":memory:":
            self._fd = os.open(f"{database}.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        self._threads.acquire()
        if self._depth == 0 and self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
        self._depth += 1

    def __exit__(self, *_) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
