"""Intake's cost per event in one process: checked, decided, signed and stored, by batch size.

    .venv/bin/python bench/intake.py                  # CPU ms per event (about 15 s)
    .venv/bin/python bench/intake.py --instructions   # instructions per event (4-15 minutes)

Takes the bench's routine events through ``Relay.receive_many`` on a SQLite store of its own,
in batches of each size asked for, as the worker does with what one read from the broker
brings: no broker, no delivery. The CPU time moves with the machine (by up to half from one hour
to the next on a shared virtual machine). ``--instructions`` instead counts the instructions
executed, with valgrind's callgrind, which gives the same count whatever else the machine is
doing: the difference between runs of two event counts, so that start-up is not counted. It
tells whether a change made intake cheaper when timings cannot.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script: the imports below need the repo root, not bench/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import os
import re
import subprocess
import tempfile
import time

from cryptography.fernet import Fernet

from bench.caf import prepare_intake
from bench.isolation import BROKER_USER
from bench.traffic import routine_events
from service.bootstrap import build_services
from service.config import Settings
from service.relay import Sender

WARM_UP = 40
# Event counts for --instructions: the count per event is the difference over the difference.
FEWER, MORE = 40, 240


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="events per batch size")
    parser.add_argument("--batches", default="1,4,16,32", help="comma-separated batch sizes")
    parser.add_argument("--instructions", action="store_true", help="count them with callgrind")
    options = parser.parse_args(argv)
    batches = [int(size) for size in options.batches.split(",")]
    if options.instructions:
        print("instructions per event (callgrind), one process, SQLite store, no broker:")
        for batch in batches:
            per_event = (_instructions(MORE, batch) - _instructions(FEWER, batch)) / (MORE - FEWER)
            print(f"  batch of {batch:2d}: {per_event / 1e6:6.2f} million")
        return 0
    print("CPU ms per event, one process, SQLite store, no broker:")
    for batch in batches:
        print(f"  batch of {batch:2d}: {_cpu_ms_per_event(options.events, batch):6.3f}")
    return 0


def _cpu_ms_per_event(events: int, batch: int) -> float:
    """Intake's CPU per event over ``events`` routine events in batches of ``batch``, after a
    warm-up, on a store of its own."""
    with tempfile.TemporaryDirectory(prefix="caf-intake-") as folder:
        services = build_services(
            Settings.from_env(
                {
                    "CAF_RELAY_INSTANCE_DIR": folder,
                    "CAF_RELAY_DATABASE_URL": f"sqlite:///{folder}/relay.db",
                    "CAF_RELAY_SECRETS_KEYS": Fernet.generate_key().decode(),
                    "CAF_RELAY_LOG_LEVEL": "WARNING",
                }
            )
        )
        try:
            prepare_intake(services.store)
            sender = Sender("the bench's publisher", broker_user=BROKER_USER)
            warm_up = -(-WARM_UP // batch) * batch  # whole batches
            bodies = list(routine_events(f"intake-{batch}", warm_up + events).values())
            started = time.process_time()
            for start in range(0, len(bodies), batch):
                if start == warm_up:
                    started = time.process_time()
                outcomes = services.relay.receive_many(
                    [(body, sender) for body in bodies[start : start + batch]]
                )
                if any(getattr(outcome, "state", None) != "signed" for outcome in outcomes):
                    raise RuntimeError(f"an event was not signed: {outcomes}")
            return (time.process_time() - started) * 1000 / events
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
