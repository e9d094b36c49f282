"""What verifying the audit chain costs as the log grows: peak memory and time.

    .venv/bin/python bench/audit_verify.py                 # about 1 minute
    .venv/bin/python bench/audit_verify.py --records 10000 100000 1000000

A SQLite store takes in the four example transfers through the relay, so its chain starts as a
real one; records chained as the relay chains them are then written straight into the table
(quicker than relaying that many events), and ``Audit.verify``, what ``caf-relay audit verify``
and ``GET /api/v1/audit/verify`` run, is timed with Python's allocations traced, once on the
intact chain and once with its seventh record edited (a break near the start, the costliest to
diagnose). The walk keeps only the latest hashes (``service.domain.audit_chain``), so its peak
should not grow with the records.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script: the imports below need the repo root, not bench/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet

from service.bootstrap import build_services
from service.config import Settings
from service.domain.audit_chain import record_hash
from service.senders import EMBEDDED
from service.store.tables import AuditChainHead, AuditRecord
from tests.support import examples

RECORDS = AuditRecord.__table__
HEAD = AuditChainHead.__table__
BATCH = 10_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    options = parser.parse_args(argv)
    print("  records  intact: peak MB  seconds  seq 7 edited: peak MB  seconds")
    for total in options.records:
        (intact_mb, intact_s), (edited_mb, edited_s) = measure(total)
        figures = f"{intact_mb:15.1f}  {intact_s:7.1f}  {edited_mb:21.1f}  {edited_s:7.1f}"
        print(f"{total:>9,}  {figures}")
    return 0


def measure(total: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(peak MB, seconds) of verifying a chain of about ``total`` records, intact and edited."""
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings.from_env(
            {
                "CAF_RELAY_INSTANCE_DIR": folder,
                "CAF_RELAY_DATABASE_URL": f"sqlite:///{folder}/audit.db",
                "CAF_RELAY_SECRETS_KEYS": Fernet.generate_key().decode(),
            }
        )
        services = build_services(settings)
        try:
            services.store.initialise()
            services.store.add_isp(examples.pan_london_isp())
            for name in examples.ALL_EVENTS:
                services.relay.receive(examples.encode(examples.event(name)), sender=EMBEDDED)
            engine = sa.create_engine(services.store.url)
            with engine.begin() as conn:
                _extend_chain(conn, total)
            intact = _peak_and_time(services.audit.verify)
            with engine.begin() as conn:
                conn.execute(
                    sa.update(RECORDS).where(RECORDS.c.seq == 7).values(detail={"edited": True})
                )
            edited = _peak_and_time(services.audit.verify)
            engine.dispose()
        finally:
            services.close()
    return intact, edited


def _extend_chain(conn: sa.Connection, count: int) -> None:
    """Chain ``count`` records onto the log, as appending would, and move the head to them."""
    head = sa.select(HEAD.c.seq, HEAD.c.hash, HEAD.c.latest_recorded_at)
    last, prev, at = conn.execute(head).one()
    rows: list[dict[str, Any]] = []
    for seq in range(last + 1, last + count + 1):
        at += timedelta(milliseconds=1)
        detail = {"envelope_id": f"envelope-{seq}", "attempt": 1}
        digest = record_hash(seq, at, f"event-{seq}", "delivered", detail, prev)
        rows.append(
            {
                "seq": seq,
                "recorded_at": at,
                "event_id": f"event-{seq}",
                "action": "delivered",
                "detail": detail,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
        if len(rows) == BATCH:
            conn.execute(sa.insert(RECORDS), rows)
            rows = []
    if rows:
        conn.execute(sa.insert(RECORDS), rows)
    conn.execute(sa.update(HEAD).values(seq=last + count, hash=prev, latest_recorded_at=at))


def _peak_and_time(verify: Callable[[], Any]) -> tuple[float, float]:
    tracemalloc.start()
    began = time.perf_counter()
    try:
        verify()
        return tracemalloc.get_traced_memory()[1] / 2**20, time.perf_counter() - began
    finally:
        tracemalloc.stop()


if __name__ == "__main__":
    sys.exit(main())
