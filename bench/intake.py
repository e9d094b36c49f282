"""Intake's cost per event in one process: checked, decided, signed and stored, by batch size.

    .venv/bin/python bench/intake.py                  # CPU ms per event (about 15 s)
    .venv/bin/python bench/intake.py --instructions   # instructions per event (4-15 minutes)
    .venv/bin/python bench/intake.py --large          # events at the size limit, and peak RSS
    .venv/bin/python bench/intake.py --postgresql     # CPU ms per event on a PostgreSQL store

Takes the bench's routine events through ``Relay.receive_many`` on a SQLite store of its own,
in batches of each size asked for, as the worker does with what one read from the broker
brings: no broker, no delivery. The CPU time moves with the machine (by up to half from one hour
to the next on a shared virtual machine). ``--instructions`` instead counts the instructions
executed, with valgrind's callgrind, which gives the same count whatever else the machine is
doing: the difference between runs of two event counts, so that start-up is not counted. It
tells whether a change made intake cheaper when timings cannot. ``--large`` takes events just
under the relay's size limit instead, each batch size in a process of its own, and prints that
process's peak RSS too: intake's memory with the largest events, batch by batch.
``--postgresql`` stores on a database of its own on that PostgreSQL server instead of SQLite:
a batch there costs the client more CPU for the same statements (psycopg's protocol work and a
round trip each), so the fixed cost of a batch, and what batching saves, differ by store.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script: the imports below need the repo root, not bench/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import multiprocessing
import os
import re
import resource
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from itertools import islice

from cryptography.fernet import Fernet

from bench.caf import prepare_intake
from bench.isolation import BROKER_USER, POSTGRES_ADMIN_URL, own_database
from bench.traffic import large_routine_events, routine_events
from service.bootstrap import build_services
from service.config import DEFAULT_MAX_EVENT_BYTES, Settings
from service.senders import BrokerSenders

WARM_UP = 40
# Event counts for --instructions: the count per event is the difference over the difference.
FEWER, MORE = 40, 240


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, help="events per batch size (2000; --large: 200)")
    parser.add_argument("--batches", default="1,4,16,32", help="comma-separated batch sizes")
    parser.add_argument("--instructions", action="store_true", help="count them with callgrind")
    parser.add_argument("--large", action="store_true", help="events at the size limit; peak RSS")
    parser.add_argument(
        "--postgresql",
        nargs="?",
        const=POSTGRES_ADMIN_URL,
        metavar="ADMIN_URL",
        help=f"store on a new database on this server, not on SQLite ({POSTGRES_ADMIN_URL})",
    )
    options = parser.parse_args(argv)
    if options.postgresql and (options.large or options.instructions):
        parser.error("--postgresql times CPU only: not with --large or --instructions")
    batches = [int(size) for size in options.batches.split(",")]
    if options.large:
        events = options.events or 200
        print("events just under the size limit, one process per batch size, SQLite store:")
        for batch in batches:
            cpu_ms, peak_mb = _large_in_own_process(events, batch)
            print(f"  batch of {batch:2d}: {cpu_ms:6.3f} CPU ms/event, peak RSS {peak_mb:.0f} MB")
        return 0
    if options.instructions:
        print("instructions per event (callgrind), one process, SQLite store, no broker:")
        for batch in batches:
            per_event = (_instructions(MORE, batch) - _instructions(FEWER, batch)) / (MORE - FEWER)
            print(f"  batch of {batch:2d}: {per_event / 1e6:6.2f} million")
        return 0
    store = "PostgreSQL" if options.postgresql else "SQLite"
    print(f"CPU ms per event, one process, {store} store, no broker:")
    for batch in batches:
        # A new database per batch size, as a SQLite run has a new file; dropped afterwards.
        database = own_database(options.postgresql) if options.postgresql else nullcontext()
        with database as database_url:
            cpu_ms = _cpu_ms_per_event(options.events or 2000, batch, database_url=database_url)
        print(f"  batch of {batch:2d}: {cpu_ms:6.3f}")
    return 0


def _routine(prefix: str, count: int) -> Iterable[bytes]:
    return routine_events(prefix, count).values()


def _large(prefix: str, count: int) -> Iterable[bytes]:
    events = large_routine_events(prefix, count, DEFAULT_MAX_EVENT_BYTES)
    return (body for _, body in events)


def _large_in_own_process(events: int, batch: int) -> tuple[float, float]:
    """CPU ms per event and peak RSS MB of intake of the largest events, in a new process so
    that the peak is this batch size's alone."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_large_intake, events, batch).result()


def _large_intake(events: int, batch: int) -> tuple[float, float]:
    cpu_ms = _cpu_ms_per_event(events, batch, _large)
    return cpu_ms, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _cpu_ms_per_event(
    events: int,
    batch: int,
    make: Callable[[str, int], Iterable[bytes]] = _routine,
    *,
    database_url: str | None = None,
) -> float:
    """Intake's CPU per event over ``events`` events from ``make`` in batches of ``batch``,
    after a warm-up, on a store of its own (``database_url``, else a SQLite file)."""
    with tempfile.TemporaryDirectory(prefix="caf-intake-") as folder:
        services = build_services(
            Settings.from_env(
                {
                    "CAF_RELAY_INSTANCE_DIR": folder,
                    "CAF_RELAY_DATABASE_URL": database_url or f"sqlite:///{folder}/relay.db",
                    "CAF_RELAY_SECRETS_KEYS": Fernet.generate_key().decode(),
                    "CAF_RELAY_LOG_LEVEL": "WARNING",
                }
            )
        )
        try:
            prepare_intake(services.store)
            sender = BrokerSenders(trusted_users=())(BROKER_USER)  # as the worker makes it
            warm_up = -(-WARM_UP // batch) * batch  # whole batches
            # As many events are made for a count of FEWER as of MORE: making one takes about
            # 0.8 million instructions, which the difference (--instructions) must not count.
            bodies = iter(make(f"intake-{batch}", warm_up + max(events, MORE)))
            spent = 0.0  # in intake alone, not in making the events
            for start in range(0, warm_up + events, batch):
                messages = [(body, sender) for body in islice(bodies, batch)]
                began = time.process_time()
                outcomes = services.relay.receive_many(messages)
                if start >= warm_up:
                    spent += time.process_time() - began
                if any(getattr(outcome, "state", None) != "signed" for outcome in outcomes):
                    raise RuntimeError(f"an event was not signed: {outcomes}")
            return spent * 1000 / events
        finally:
            services.close()


def _instructions(events: int, batch: int) -> int:
    """Instructions executed by this script measuring ``events`` events in batches of ``batch``."""
    with tempfile.TemporaryDirectory(prefix="caf-callgrind-") as folder:
        run = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={folder}/callgrind.out",
                sys.executable,
                __file__,
                f"--events={events}",
                f"--batches={batch}",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    collected = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode != 0 or collected is None:
        raise RuntimeError(f"callgrind failed: {run.stderr[-500:]}")
    return int(collected.group(1))


if __name__ == "__main__":
    sys.exit(main())
